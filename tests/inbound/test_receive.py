"""`drip inbound serve`: bounces, complaints, auto-replies and replies sent to it over SMTP."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from support import SmtpHandler, cli_env, free_port, run_drip, utc
from support_inbound import (
    AFTER_THE_FOUR,
    BOUNCE_DOMAIN,
    db_rows,
    returned_mail,
    send_first_lessons,
    statuses,
)

from drip.config import Settings

PEOPLE = ["gone@corp.example", "angry@corp.example", "away@corp.example", "curious@corp.example"]
NOW = "2026-12-15T09:00:00Z"


@contextmanager
def inbound_server(env: dict[str, str]) -> Iterator[int]:
    """`drip inbound serve` as a real process on a free port; stopped with SIGTERM."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "drip.cli", "inbound", "serve", "--port", str(port), "--now", NOW],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.communicate()[1]) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "drip inbound stopped" in out


def deliver(port: int, rcpt: str, data: bytes, mail_from: str = "") -> tuple[int, bytes]:
    """Send one message; (code, reply) of the first refusal, or of the accepted DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mx.corp.example")
        client.mail(mail_from)
        code, reply = client.rcpt(rcpt)
        if code != 250:
            return code, reply
        return client.data(data)


def test_bounce_complaint_out_of_office_and_question_each_do_their_job(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, smtp_port = smtp
    settings, sent = send_first_lessons(tmp_path, db_url, smtp_port, PEOPLE)
    # Each lesson left with its own signed return path as the envelope sender.
    assert sorted(m.mail_from for m in handler.messages) == sorted(
        s.return_path for s in sent.values()
    )
    handler.messages.clear()
    gone, angry, away, curious = (sent[p] for p in PEOPLE)
    with inbound_server(cli_env(settings)) as port:
        code, _ = deliver(port, gone.return_path, returned_mail("postfix_user_unknown.eml", gone))
        assert code == 250
        code, _ = deliver(port, angry.return_path, returned_mail("arf_yahoo_abuse.eml", angry,
                                                                 **{"exec@yahoo.com": angry.email}))  # fmt: skip
        assert code == 250
        code, _ = deliver(port, away.return_path, returned_mail("exchange_oof_en.eml", away))
        assert code == 250
        reply = returned_mail("outlook_human_reply.eml", curious)
        code, _ = deliver(port, f"reply@{BOUNCE_DOMAIN}", reply, curious.email)
        assert code == 250
        # The same bounce again (a relay that retries) is taken but not counted twice.
        code, _ = deliver(port, gone.return_path, returned_mail("postfix_user_unknown.eml", gone))
        assert code == 250

    assert statuses(db_url) == AFTER_THE_FOUR
    reasons = dict(
        db_rows(db_url, "SELECT p.email, e.status_reason FROM enrollment e JOIN person p ON p.id = e.person_id")
    )  # fmt: skip
    assert "5.1.1" in reasons["gone@corp.example"]
    assert "User unknown" in reasons["gone@corp.example"]
    # "Back on 12 January" has no year: the next 12 January from the day the reply came in.
    today = datetime.now(UTC).date()
    back = date(today.year, 1, 12)
    back = back if back >= today else date(today.year + 1, 1, 12)
    paused_until = db_rows(db_url, "SELECT paused_until FROM enrollment WHERE status = 'paused'")
    assert paused_until[0][0] in (back.isoformat(), back)
    suppressed = run_drip(["suppress", "list", "--format", "csv"], cli_env(settings))
    assert suppressed.returncode == 0
    lines = suppressed.stdout.splitlines()
    assert lines[0] == "email,source,since,reason"
    assert sorted(line.split(",")[:2] for line in lines[1:]) == [
        ["angry@corp.example", "complaint"],
        ["gone@corp.example", "bounce"],
    ]
    bounces = db_rows(db_url, "SELECT count(*) FROM event WHERE kind = 'bounce'")
    assert bounces == [(1,)]
    # The question reached the coach, threaded under the lesson, and is in the person's log.
    (forwarded,) = handler.messages
    assert forwarded.rcpt_tos == ["coach@example.com"]
    message = email.message_from_bytes(forwarded.data, policy=email.policy.default)
    assert message["In-Reply-To"] == curious.message_id
    assert message["Reply-To"] == "Curious <curious@corp.example>"
    assert "legal team already approved" in message.get_body(("plain",)).get_content()
    timeline = run_drip(["report", "--person", curious.email, "--format", "csv"], cli_env(settings))
    assert ",question," in timeline.stdout
    digest = weekly_digest(settings)
    assert digest["Questions asked (forwarded to the coach)"] == "1"
    assert digest["Unreachable (their address bounced)"] == "1 (gone@corp.example)"
    assert digest["Behind"] == "0"


def weekly_digest(settings: Settings) -> dict[str, str]:
    """The headline figures of the board cohort's weekly digest, as a manager reads them."""
    from drip.db import make_engine
    from drip.reports.digest import figures
    from drip.reports.queries import cohort_report

    engine = make_engine(settings.database_url)
    try:
        report = cohort_report(engine, "board", settings.lessons_path, utc(2026, 12, 15, 9, 0))
    finally:
        engine.dispose()
    return dict(figures(report))


def test_forged_return_paths_and_forged_bounces_change_nothing(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    _, smtp_port = smtp
    settings, sent = send_first_lessons(tmp_path, db_url, smtp_port, ["victim@corp.example"])
    victim = sent["victim@corp.example"]
    before = db_rows(db_url, "SELECT id, status, status_reason FROM enrollment")
    forged = f"b-{victim.delivery_id}-{'0' * 20}@{BOUNCE_DOMAIN}"
    with inbound_server(cli_env(settings)) as port:
        # A return path with a made-up signature, or another delivery's id, is refused at RCPT.
        code, reply = deliver(port, forged, returned_mail("postfix_user_unknown.eml", victim))
        assert (code, reply) == (550, b"5.1.1 no such mailbox here")
        other = victim.return_path.replace(
            f"b-{victim.delivery_id}-", f"b-{victim.delivery_id + 1}-"
        )
        assert deliver(port, other, b"Subject: x\r\n\r\nx\r\n")[0] == 550
        # drip is no open relay.
        assert deliver(port, "someone@example.org", b"Subject: x\r\n\r\nx\r\n")[0] == 550
        # A bounce sent to the reply address naming the victim, without the lesson's
        # Message-ID or return path, is taken and ignored.
        stranger = returned_mail(
            "postfix_user_unknown.eml",
            None,
            **{"exec@corp.example": victim.email, "b-17-0a1b2c3d4e5f60718293": "reply"},
        )
        assert deliver(port, f"reply@{BOUNCE_DOMAIN}", stranger)[0] == 250
    assert db_rows(db_url, "SELECT id, status, status_reason FROM enrollment") == before
    assert db_rows(db_url, "SELECT count(*) FROM suppression") == [(0,)]
    assert db_rows(db_url, "SELECT kind, email, outcome FROM inbound_message") == [
        ("hard_bounce", "", "matched no delivery (unsigned or forged return path): changed nothing")
    ]


def test_a_bounced_person_is_unreachable_and_refused_at_the_next_enrolment(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    _, smtp_port = smtp
    settings, sent = send_first_lessons(tmp_path, db_url, smtp_port, ["gone@corp.example"])
    gone = sent["gone@corp.example"]
    with inbound_server(cli_env(settings)) as port:
        deliver(port, gone.return_path, returned_mail("exim_plain.eml", gone))
    env = cli_env(settings)
    report = run_drip(["report", "board", "--format", "csv", "--section", "people"], env)
    header, row = report.stdout.splitlines()
    person = dict(zip(header.split(","), row.split(","), strict=False))
    assert person["status"] == "bounced"
    assert person["unreachable"] == "yes"
    assert person["behind"] == "no"
    summary = run_drip(["report", "--format", "json"], env)
    assert '"unreachable": 1' in summary.stdout
    csv_file = tmp_path / "more.csv"
    csv_file.write_text("email,name\nnew@corp.example,New\ngone@corp.example,Gone\n")
    enrolled = run_drip(["enroll", "board", str(csv_file)], env)
    assert enrolled.returncode == 0
    assert f"{csv_file}:3: 'gone@corp.example' is suppressed (hard bounce: 5.1.1" in enrolled.stderr
    assert "enrolled 1 of 2 people" in enrolled.stdout
    assert "1 suppressed and refused" in enrolled.stdout


@pytest.mark.parametrize("limit", [2])
def test_soft_bounces_in_a_row_become_a_bounce(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int], limit: int
) -> None:
    _, smtp_port = smtp
    settings, sent = send_first_lessons(
        tmp_path, db_url, smtp_port, ["full@corp.example"], soft_bounce_limit=str(limit)
    )
    full = sent["full@corp.example"]
    with inbound_server(cli_env(settings)) as port:
        first = returned_mail("postfix_mailbox_full_4_2_2.eml", full)
        deliver(port, full.return_path, first)
        assert db_rows(db_url, "SELECT status FROM enrollment") == [("active",)]
        second = returned_mail("gmail_delayed_4_4_7.eml", full)
        deliver(port, full.return_path, second)
    assert db_rows(db_url, "SELECT status FROM enrollment") == [("bounced",)]
    (reason,) = db_rows(db_url, "SELECT status_reason FROM enrollment")[0]
    assert reason.startswith("2 soft bounces in a row, the last: 4.4.7")


def test_a_bounce_of_mail_sent_before_a_key_rotation_still_finds_its_delivery(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    from support import SECRET

    _, smtp_port = smtp
    settings, sent = send_first_lessons(tmp_path, db_url, smtp_port, ["gone@corp.example"])
    gone = sent["gone@corp.example"]
    env = cli_env(settings)
    # The key rotates after the lesson went out: its return path was signed with the old one.
    env["DRIP_SECRET_KEY"], env["DRIP_SECRET_KEY_PREVIOUS"] = "n" * 40, SECRET
    with inbound_server(env) as port:
        assert deliver(port, gone.return_path, returned_mail("exim_plain.eml", gone))[0] == 250
    assert db_rows(db_url, "SELECT status FROM enrollment") == [("bounced",)]
    # Without the previous key, the same return path is a stranger's.
    env.pop("DRIP_SECRET_KEY_PREVIOUS")
    with inbound_server(env) as port:
        assert deliver(port, gone.return_path, b"Subject: x\r\n\r\nx\r\n")[0] == 550
