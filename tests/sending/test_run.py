import email
import email.policy
import io
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
import sqlalchemy as sa
from support import SmtpHandler, cli_env, make_settings, run_drip, utc
from support_peers import Script, scripted_smtp

from drip import checkpoints
from drip.app import App
from drip.config import Settings
from drip.db import session
from drip.people.cohorts import create_cohort, get_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.schedule import local_date
from drip.sending.claims import claim
from drip.sending.run import send_due

MONDAY = utc(2026, 11, 30, 0, 0)


def setup_cohort(app: App, people: list[tuple[str, str | None]], course: str = "sample") -> None:
    create_cohort(
        app.engine,
        name="board",
        course=course,
        start=date(2026, 11, 30),
        timezone="Europe/London",
        now=MONDAY,
    )
    with session(app.engine) as db:
        cohort = get_cohort(db, "board")
    rows = [
        Row(i + 2, address, address.split("@")[0].title(), tz)
        for i, (address, tz) in enumerate(people)
    ]
    enroll_rows(app.engine, cohort, rows, now=MONDAY)


def smtp_app(tmp_path: Path, db_url: str, port: int, **extra: str) -> App:
    s = make_settings(tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{port}", **extra)
    return App.open(s)


def rows(engine: sa.Engine, query: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query)).all()]


def test_one_lesson_a_day_in_order_then_completed(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", "Asia/Kolkata"), ("bo@example.com", None)])
    d = app.dispatcher()
    clock = MONDAY
    while clock < MONDAY + timedelta(days=8):
        send_due(d, clock)
        clock += timedelta(minutes=30)
    d.transport.close()
    assert len(handler.messages) == 8  # three lessons and the completion each
    for person, zone in (("ada@example.com", "Asia/Kolkata"), ("bo@example.com", "Europe/London")):
        mine = [
            email.message_from_bytes(m.data, policy=email.policy.default)
            for m in handler.messages
            if m.rcpt_tos == [person]
        ]
        subjects = [m["Subject"] for m in mine]
        assert subjects == [
            "What a drip course is",
            "Reading a lesson in two minutes",
            "Answering the check",
            "You completed Sample: three quick lessons",
        ]
        days = [local_date(m["Date"].datetime, zone) for m in mine]
        assert days == [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]
        assert all(
            m["Date"].datetime.astimezone(__import__("zoneinfo").ZoneInfo(zone)).strftime("%H:%M")
            == "07:30"
            for m in mine
        )
    assert rows(app.engine, "select status, lessons_sent from enrollment order by id") == [
        ("completed", 3),
        ("completed", 3),
    ]
    assert rows(app.engine, "select count(*) from event where kind = 'sent'") == [(6,)]


def test_downtime_sends_one_lesson_not_three(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(
        app,
        [("ada@example.com", "Europe/London"), ("bo@example.com", "America/New_York")],
        course="social-media-for-executives",
    )
    d = app.dispatcher()
    assert send_due(d, utc(2026, 11, 30, 15, 0)).sent == 2  # Monday
    # drip is down Tuesday to Thursday; it comes back Friday 14:00 UTC.
    friday = utc(2026, 12, 4, 14, 0)
    first = send_due(d, friday)
    again = send_due(d, friday + timedelta(minutes=30))
    assert (first.sent, again.sent) == (2, 0)
    sent = rows(
        app.engine,
        "select p.email, d.lesson_slug from delivery d join enrollment e on e.id = d.enrollment_id join person p on p.id = e.person_id order by p.email, d.id",
    )
    assert sent == [
        ("ada@example.com", "why-it-matters-now"),
        ("ada@example.com", "the-landscape"),
        ("bo@example.com", "why-it-matters-now"),
        ("bo@example.com", "the-landscape"),
    ]
    # Next lessons on Monday morning, local time.
    due = dict(
        rows(
            app.engine,
            "select p.email, e.next_due_at from enrollment e join person p on p.id = e.person_id",
        )
    )
    assert str(due["ada@example.com"]).startswith("2026-12-07 07:30")
    assert str(due["bo@example.com"]).startswith("2026-12-07 12:30")


def test_outside_window_is_held_until_the_next_morning(tmp_path: Path, db_url: str) -> None:
    app = App.open(make_settings(tmp_path, db_url))
    setup_cohort(app, [("ada@example.com", "Europe/London")])
    result = send_due(
        app.dispatcher(), utc(2026, 12, 1, 19, 0)
    )  # Tuesday 19:00, window closed at 18:00
    assert result.sent == 0 and result.rescheduled == 1
    assert str(rows(app.engine, "select next_due_at from enrollment")[0][0]).startswith(
        "2026-12-02 07:30"
    )


def test_two_concurrent_send_due_processes_send_each_lesson_once(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port, batch_size="7")
    setup_cohort(app, [(f"p{i}@example.com", None) for i in range(60)])
    env = cli_env(app.settings)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "drip.cli", "-q", "send-due", "--now", "2026-11-30T08:00:00Z"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [email.message_from_bytes(m.data)["Message-ID"] for m in handler.messages]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert rows(app.engine, "select count(*) from delivery where status = 'sent'") == [(60,)]


def test_a_dead_worker_is_recovered_when_its_lease_expires(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None), ("bo@example.com", None)])
    now = utc(2026, 11, 30, 8, 0)
    assert len(claim(app.engine, now, 10, timedelta(minutes=5), "dead-worker")) == 2  # then it dies
    d = app.dispatcher()
    assert send_due(d, now + timedelta(minutes=1)).sent == 0
    assert send_due(d, now + timedelta(minutes=5, seconds=1)).sent == 2
    assert len(handler.messages) == 2


def test_451_then_250_delivers_once_with_the_same_message_id(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = ["451 4.7.1 greylisted, try again"]
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None)])
    d = app.dispatcher()
    now = utc(2026, 11, 30, 8, 0)
    assert send_due(d, now).retried == 1
    assert send_due(d, now + timedelta(minutes=2)).sent == 0  # backoff: 5 minutes +-25 %
    assert send_due(d, now + timedelta(minutes=7)).sent == 1
    assert send_due(d, now + timedelta(minutes=30)).sent == 0
    assert len(handler.attempts) == 2 and len(handler.messages) == 1
    ids = {email.message_from_bytes(a)["Message-ID"] for a in handler.attempts}
    dates = {email.message_from_bytes(a)["Date"] for a in handler.attempts}
    assert len(ids) == 1 and len(dates) == 1
    assert rows(app.engine, "select status, attempts from delivery") == [("sent", 2)]
    assert rows(app.engine, "select kind from event where kind != 'enrol' order by id") == [
        ("retry",),
        ("sent",),
    ]


def test_550_bounces_and_people_show_says_why(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = ["550 5.1.1 mailbox unavailable"]
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None), ("bo@example.com", None)])
    d = app.dispatcher()
    now = utc(2026, 11, 30, 8, 0)
    result = send_due(d, now)
    assert (result.sent, result.failed) == (1, 1)  # one failure never stops the batch
    bounced = rows(
        app.engine,
        "select p.email, e.status, e.status_reason from enrollment e join person p on p.id = e.person_id where e.status <> 'active'",
    )
    assert len(bounced) == 1 and bounced[0][1] == "bounced" and "550" in bounced[0][2]
    who = bounced[0][0]
    env = cli_env(app.settings, DRIP_NOW="2026-11-30T09:00:00Z")  # a fixed clock for the CLI
    shown = run_drip(["people", "show", who], env)
    assert (
        shown.returncode == 0
        and "bounced" in shown.stdout
        and "550 5.1.1 mailbox unavailable" in shown.stdout
    )
    assert send_due(d, now + timedelta(days=1)).sent == 1  # only the other person
    resumed = run_drip(["people", "resume", who], env)
    assert resumed.returncode == 0, resumed.stderr
    later = send_due(d, now + timedelta(days=1, minutes=1))
    assert [i.email for i in later.items if i.outcome == "sent"] == [who]
    assert rows(
        app.engine,
        f"select d.lesson_slug, d.status from delivery d join enrollment e on e.id = d.enrollment_id join person p on p.id = e.person_id where p.email = '{who}'",
    ) == [("what-a-drip-course-is", "sent")]


def test_gives_up_after_the_retry_lifetime(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = ["451 try later"] * 100
    app = smtp_app(tmp_path, db_url, port, retry_lifetime_hours="2")
    setup_cohort(app, [("ada@example.com", None)])
    d = app.dispatcher()
    clock = utc(2026, 11, 30, 8, 0)
    while clock < utc(2026, 11, 30, 11, 0):
        send_due(d, clock)
        clock += timedelta(minutes=5)
    status = rows(app.engine, "select status, status_reason from enrollment")[0]
    assert status[0] == "bounced" and "gave up" in status[1]
    attempts = rows(app.engine, "select attempts, status from delivery")[0]
    assert attempts[1] == "failed" and 4 <= attempts[0] <= 6  # 5, 10, 20, 40, 60 minute gaps
    assert handler.messages == []


def test_pause_and_unsubscribe_from_the_cli(tmp_path: Path, db_url: str) -> None:
    app = App.open(make_settings(tmp_path, db_url))
    setup_cohort(app, [("ada@example.com", None), ("bo@example.com", None)])
    env = cli_env(app.settings, DRIP_NOW="2026-11-30T09:00:00Z")  # before the pass below
    assert run_drip(["people", "pause", "ada@example.com"], env).returncode == 0
    assert run_drip(["people", "unsubscribe", "bo@example.com"], env).returncode == 0
    assert send_due(app.dispatcher(), utc(2026, 11, 30, 8, 0)).sent == 0
    assert run_drip(["people", "resume", "ada@example.com"], env).returncode == 0
    result = run_drip(["send-due", "--now", "2026-12-01T08:00:00Z", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    assert '"email": "ada@example.com"' in result.stdout and "bo@example.com" not in result.stdout
    missing = run_drip(["people", "show", "nobody@example.com"], env)
    assert (
        missing.returncode == 1 and "no person with e-mail 'nobody@example.com'" in missing.stderr
    )


def test_cohort_pause_holds_everyone(tmp_path: Path, db_url: str) -> None:
    app = App.open(make_settings(tmp_path, db_url))
    setup_cohort(app, [("ada@example.com", None)])
    env = cli_env(app.settings, DRIP_NOW="2026-11-30T07:00:00Z")  # before the passes below
    assert run_drip(["cohort", "pause", "board"], env).returncode == 0
    assert send_due(app.dispatcher(), utc(2026, 11, 30, 8, 0)).sent == 0
    assert run_drip(["cohort", "resume", "board"], env).returncode == 0
    assert send_due(app.dispatcher(), utc(2026, 12, 1, 8, 0)).sent == 1


def test_send_due_without_schema_says_run_init(tmp_path: Path) -> None:
    s: Settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = run_drip(["send-due"], cli_env(s))
    assert result.returncode == 1 and "run `drip init`" in result.stderr


def test_demo_shows_the_whole_learning_loop(tmp_path: Path) -> None:
    env = cli_env(make_settings(tmp_path))
    result = run_drip(["demo", "--dir", str(tmp_path / "demo")], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    per_person: dict[str, list[email.message.EmailMessage]] = {}
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        per_person.setdefault(msg["To"].addresses[0].addr_spec, []).append(msg)
    assert len(per_person) == 12
    for address, messages in per_person.items():
        subjects = [str(m["Subject"]).strip() for m in messages]
        assert subjects[0].startswith("Welcome to"), address
        assert subjects[1] == "Why social media is now a leadership issue", address
        assert len(subjects) == len(set(subjects)), address  # nothing sent twice
        days = [m["Date"].datetime.date() for m in messages]
        assert len(days) == len(set(days)), f"two e-mails on one day to {address}"
    # Each kind of e-mail is there, and the demo says where to look.
    for label in ("welcome", "lesson with a review question", "lesson with a catch-up line",
                  "automatic pause note", "completion with certificate",
                  "review e-mail after the course"):  # fmt: skip
        assert f"  {label}: " in result.stdout, label
    completion = next(
        m for ms in per_person.values() for m in ms if str(m["Subject"]).startswith("You completed")
    )
    pdf = next(part for part in completion.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(pdf.get_content())).pages[0].extract_text()
    name = completion["To"].addresses[0].display_name
    assert name in text and "Social media for executives" in text
    assert "emails in" in result.stdout


def test_an_unsubscribe_while_the_lesson_is_on_the_wire_stands(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    from drip.people.directory import change_person

    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None)])
    now = utc(2026, 11, 30, 8, 0)
    handler.on_data = lambda rcpts: change_person(app.engine, rcpts[0], "unsubscribe", now=now)
    assert send_due(app.dispatcher(), now).sent == 1
    handler.on_data = None
    assert rows(app.engine, "select status, next_due_at from enrollment") == [
        ("unsubscribed", None)
    ]
    assert send_due(app.dispatcher(), utc(2026, 12, 1, 8, 0)).sent == 0
    assert len(handler.messages) == 1


def test_pause_and_resume_during_a_send_never_send_twice(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    from drip.people.directory import change_person

    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None)])
    now = utc(2026, 11, 30, 8, 0)
    other = App.open(make_settings(tmp_path / "w2", db_url)).dispatcher()  # a second worker
    second: list[int] = []

    def meanwhile(rcpts: list[str]) -> None:
        change_person(app.engine, rcpts[0], "pause", now=now)
        change_person(app.engine, rcpts[0], "resume", now=now)
        second.append(send_due(other, now).sent)

    handler.on_data = meanwhile
    assert send_due(app.dispatcher(), now).sent == 1
    handler.on_data = None
    assert second == [0] and not list((tmp_path / "w2" / "outbox").glob("*.eml"))
    assert rows(app.engine, "select lesson_slug, status from delivery") == [
        ("what-a-drip-course-is", "sent")
    ]
    assert len(handler.messages) == 1


def test_a_timed_pause_ends_on_the_persons_own_calendar(tmp_path: Path, db_url: str) -> None:
    app = App.open(make_settings(tmp_path, db_url))
    setup_cohort(app, [("kate@example.com", "America/Los_Angeles")])
    with app.engine.begin() as conn:
        conn.execute(
            sa.text(
                "update enrollment set status = 'paused', paused_until = '2026-12-08', next_due_at = null"
            )
        )
    d = app.dispatcher()
    assert send_due(d, utc(2026, 12, 8, 0, 30)).sent == 0  # Monday 16:30 in Los Angeles
    assert rows(app.engine, "select status from enrollment") == [("paused",)]
    assert send_due(d, utc(2026, 12, 8, 15, 30)).sent == 1  # Tuesday 07:30 there


def test_a_resend_records_the_lesson_version_it_carries(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    import shutil

    from support import LESSONS

    handler, port = smtp
    lessons = tmp_path / "lessons"
    shutil.copytree(LESSONS / "sample", lessons / "sample")
    first = lessons / "sample" / "01-what-a-drip-course-is.md"
    first.write_text(first.read_text() + "\nRead [the brief](https://old.example/brief).\n")
    app = smtp_app(tmp_path, db_url, port, lessons_dir=str(lessons))
    setup_cohort(app, [("ada@example.com", None)])
    handler.replies = ["451 later"]
    now = utc(2026, 11, 30, 8, 0)
    assert send_due(app.dispatcher(), now).retried == 1
    first.write_text(
        first.read_text().replace("https://old.example/brief", "https://new.example/memo")
    )
    assert send_due(app.dispatcher(), now + timedelta(minutes=6)).sent == 1
    with app.engine.connect() as conn:
        links = conn.execute(
            sa.text(
                "select v.links from delivery d join lesson_version v on v.content_hash = d.content_hash"
            )
        ).scalar_one()
    assert "https://new.example/memo" in links


def test_pipelined_mixed_replies_with_three_connections_then_retries_keep_the_message_id(
    tmp_path: Path, db_url: str
) -> None:
    people = ["ada", "bo", "cy", "di", "ed", "fay", "gus"]
    script = Script(
        rcpt={"bo@example.com": ["451 4.2.1 busy"], "cy@example.com": ["550 5.1.1 no such user"]},
        data={
            "di@example.com": ["451 4.3.0 queue full"],
            "ed@example.com": ["550 5.1.1 mailbox unavailable"],
        },
    )
    with scripted_smtp(script) as (_, seen, port):
        app = smtp_app(tmp_path, db_url, port, smtp_connections="3", send_window="4")
        setup_cohort(app, [(f"{p}@example.com", None) for p in people])
        d = app.dispatcher()
        now = utc(2026, 11, 30, 8, 0)
        first = send_due(d, now)
        outcomes = {i.email.split("@")[0]: i.outcome for i in first.items}
        assert outcomes == {
            "ada": "sent", "bo": "retry", "cy": "failed", "di": "retry",
            "ed": "failed", "fay": "sent", "gus": "sent",
        }  # fmt: skip
        again = send_due(d, now + timedelta(minutes=7))  # 5 minutes, +-25 % jitter
        d.transport.close()
    assert sorted(i.email for i in again.items if i.outcome == "sent") == [
        "bo@example.com",
        "di@example.com",
    ]
    assert ["MAIL", "RCPT", "DATA"] in seen.flights and seen.connections == 3
    recorded = dict(
        rows(
            app.engine,
            "select p.email, d.message_id from delivery d join enrollment e on e.id = "
            "d.enrollment_id join person p on p.id = e.person_id",
        )
    )
    # Every body the server saw carries the Message-ID recorded for its delivery, on retry too.
    assert seen.bodies.count(("di@example.com", recorded["di@example.com"])) == 2
    assert sorted(seen.accepted) == sorted(
        (who, recorded[who])
        for who in recorded
        if who.split("@")[0] in ("ada", "bo", "di", "fay", "gus")
    )
    bounced = rows(app.engine, "select count(*) from enrollment where status = 'bounced'")
    assert bounced == [(2,)]


def test_a_relay_that_never_greets_ends_the_pass_and_leaves_everyone_due(
    tmp_path: Path, db_url: str
) -> None:
    with scripted_smtp(Script(greet=False)) as (_, seen, port):
        app = smtp_app(tmp_path, db_url, port, smtp_timeout="0.5", smtp_connect_tries="2")
        setup_cohort(app, [(f"p{n:03d}@example.com", None) for n in range(200)])
        due_before = rows(app.engine, "select id, next_due_at from enrollment order by id")
        result = run_drip(["send-due", "--now", "2026-11-30T08:00:00Z"], cli_env(app.settings))
    assert result.returncode == 1
    assert seen.connections == 2  # not 200
    assert "after 2 tries" in result.stderr and "stays due for the next pass" in result.stderr
    assert rows(app.engine, "select id, next_due_at from enrollment order by id") == due_before
    assert rows(app.engine, "select count(*) from enrollment where claimed_by is not null") == [
        (0,)
    ]
    assert rows(app.engine, "select count(*) from event where kind in ('retry', 'sent')") == [(0,)]


def test_a_failed_login_is_tried_once_per_pass_and_everyone_stays_due(
    tmp_path: Path, db_url: str
) -> None:
    script = Script(auth="535 5.7.8 authentication credentials invalid")
    with scripted_smtp(script) as (_, seen, port):
        app = App.open(
            make_settings(
                tmp_path,
                db_url,
                mail_url=f"smtp://drip:wrong@127.0.0.1:{port}?starttls=no",
                smtp_connections="4",
            )
        )
        setup_cohort(app, [(f"p{n:03d}@example.com", None) for n in range(50)])
        result = run_drip(["send-due", "--now", "2026-11-30T08:00:00Z"], cli_env(app.settings))
    assert result.returncode == 1 and seen.auths == 1
    assert "cannot log in" in result.stderr and "535 5.7.8" in result.stderr
    assert rows(app.engine, "select count(*) from event where kind in ('retry', 'sent')") == [(0,)]
    # The next pass, once the login works, sends everyone their first lesson.
    with scripted_smtp() as (_, seen, port):
        settings = app.settings.replace(mail_url=f"smtp://127.0.0.1:{port}")
        again = run_drip(["send-due", "--now", "2026-11-30T08:01:00Z"], cli_env(settings))
    assert again.returncode == 0, again.stderr
    assert len(seen.accepted) == 50


def test_a_pass_leaves_its_checkpoints_to_a_thread_and_its_connection_as_it_found_it(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no WAL checkpoints to move")
    monkeypatch.setattr(checkpoints, "PASS_EVERY", 3)
    app = App.open(make_settings(tmp_path, db_url))
    setup_cohort(app, [(f"p{i}@example.com", None) for i in range(30)])
    database = Path(sa.engine.make_url(db_url).database or "")
    # Held open throughout, so no connection closing last checkpoints on its way out.
    bystander = sqlite3.connect(database, isolation_level=None)
    bystander.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = database.stat().st_size
    automatic: list[int] = []

    def committing(conn: sa.Connection) -> None:
        raw = conn.connection.dbapi_connection
        automatic.append(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])  # type: ignore[union-attr]

    started: list[checkpoints.Checkpointer] = []

    class Counted(checkpoints.Checkpointer):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            started.append(self)

    monkeypatch.setattr(checkpoints, "Checkpointer", Counted)
    d = app.dispatcher()
    d.batch_size = 5  # several claims, plans and records: a few dozen commits
    assert send_due(d, MONDAY).sent == 0  # before anyone's window: an idle tick
    assert started == []  # too few commits for a thread
    sa.event.listen(app.engine, "commit", committing)
    assert send_due(d, MONDAY + timedelta(hours=8)).sent == 30
    sa.event.remove(app.engine, "commit", committing)
    assert len(started) == 1
    # The pass's commits made no checkpoint of their own (far below the 1,000 pages of the
    # automatic ones anyway): the thread moved the WAL into the file, the last time on the way out.
    assert automatic.count(0) >= 10 and set(automatic) <= {0, 1000}
    assert database.stat().st_size > size
    frames = bystander.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames[1] == frames[2]  # every frame in the WAL was already in the file
    pooled = app.engine.raw_connection()  # the pass's connection, back in the pool
    assert pooled.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    pooled.close()
    bystander.close()
