"""One enrollment whose stored data cannot be read is held with its reason; the rest go out."""

import json
from pathlib import Path

import sqlalchemy as sa
from support import SmtpHandler, cli_env, run_drip, utc

from drip.app import App
from drip.sending.run import send_due
from tests.sending.test_run import rows, setup_cohort, smtp_app

MONDAY_8 = "2026-11-30T08:00:00Z"
PEOPLE = [(f"p{i}@example.com", None) for i in range(4)] + [("mars@example.com", None)]


def _cohort_with_one_on_mars(tmp_path: Path, db_url: str, port: int) -> App:
    """Five people due on Monday, one of them with a timezone the worker cannot read."""
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, PEOPLE)
    _break_timezone(app, "mars@example.com")
    return app


def _break_timezone(app: App, address: str, zone: str = "Mars/Olympus_Mons") -> None:
    # A zone the worker's tzdata does not know, as written by a newer machine.
    with app.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE person SET timezone = :z WHERE email = :e"), {"z": zone, "e": address}
        )


def test_a_bad_timezone_is_held_and_the_other_four_are_sent(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = _cohort_with_one_on_mars(tmp_path, db_url, port)
    env = cli_env(app.settings)

    result = run_drip(["send-due", "--now", MONDAY_8, "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == [p for p, _ in PEOPLE[:4]]
    assert rows(app.engine, "SELECT status FROM enrollment WHERE status = 'held'") == [("held",)]

    shown = run_drip(["people", "show", "mars@example.com"], env)
    assert shown.returncode == 0, shown.stderr
    assert "held" in shown.stdout and "Mars/Olympus_Mons" in shown.stdout
    report = run_drip(["report", "board", "--format", "json"], env)
    assert report.returncode == 0, report.stderr
    person = next(p for p in json.loads(report.stdout)["people"] if p["email"].startswith("mars"))
    assert person["status"] == "held" and "Mars/Olympus_Mons" in person["reason"]
    log = run_drip(["log", "--person", "mars@example.com", "--kind", "hold"], env)
    assert log.returncode == 0 and "Mars/Olympus_Mons" in log.stdout

    # The next passes neither stall on it nor send it.
    again = run_drip(["send-due", "--now", "2026-12-01T08:00:00Z"], env)
    assert again.returncode == 0, again.stderr
    assert len(handler.messages) == 8
    assert all(m.rcpt_tos != ["mars@example.com"] for m in handler.messages)


def test_resuming_a_held_person_says_what_to_fix_without_a_traceback(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = _cohort_with_one_on_mars(tmp_path, db_url, port)
    env = cli_env(app.settings, DRIP_NOW=MONDAY_8)  # fixed before the pass at 09:00
    assert run_drip(["send-due", "--now", MONDAY_8], env).returncode == 0

    resumed = run_drip(["people", "resume", "mars@example.com"], env)
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr + resumed.stdout
    assert "timezone 'Mars/Olympus_Mons'" in resumed.stderr
    assert "drip people set-timezone" in resumed.stderr

    bad = run_drip(["people", "set-timezone", "mars@example.com", "Mars/Olympus"], env)
    assert bad.returncode != 0 and "Mars/Olympus" in bad.stderr

    fixed = run_drip(["people", "set-timezone", "mars@example.com", "Europe/Paris"], env)
    assert fixed.returncode == 0, fixed.stderr
    assert "released" in fixed.stdout
    shown = run_drip(["people", "show", "mars@example.com", "--format", "json"], env)
    assert json.loads(shown.stdout)[0]["status"] == "active"
    assert run_drip(["send-due", "--now", "2026-11-30T09:00:00Z"], env).returncode == 0
    mine = [m for m in handler.messages if m.rcpt_tos == ["mars@example.com"]]
    assert len(mine) == 1


def test_a_bad_send_time_on_the_cohort_holds_only_that_cohort(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, PEOPLE)
    with app.engine.begin() as conn:
        conn.execute(sa.text("UPDATE cohort SET send_time = '25:99'"))
    result = send_due(app.dispatcher(), utc(2026, 11, 30, 8, 0))
    assert result.sent == 0
    assert rows(app.engine, "SELECT count(*) FROM enrollment WHERE status = 'held'") == [(5,)]
    assert handler.messages == []


def test_cohort_resume_and_timed_pauses_survive_one_bad_timezone(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = _cohort_with_one_on_mars(tmp_path, db_url, port)
    env = cli_env(app.settings)
    assert run_drip(["cohort", "pause", "board"], env).returncode == 0
    resumed = run_drip(["cohort", "resume", "board"], env)
    assert resumed.returncode == 0, resumed.stderr
    # Everyone paused until Tuesday; the pass on Tuesday wakes them all, bad zone or not.
    with app.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE enrollment SET status = 'paused', paused_until = '2026-12-01'")
        )
    result = send_due(app.dispatcher(), utc(2026, 12, 1, 8, 0))
    assert (result.sent, result.held) == (4, 1)
    assert len(handler.messages) == 4


def test_the_digest_goes_out_with_a_held_person_in_the_cohort(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    from drip.reports.digest import send_digests

    handler, port = smtp
    app = _cohort_with_one_on_mars(tmp_path, db_url, port)
    with app.engine.begin() as conn:
        conn.execute(sa.text("UPDATE cohort SET manager_email = 'boss@example.com'"))
    send_due(app.dispatcher(), utc(2026, 11, 30, 8, 0))
    with app.transport() as transport:
        (result,) = send_digests(app.engine, transport, app.settings, utc(2026, 12, 7, 8, 0))
    assert result.outcome == "accepted"
    digest = handler.messages[-1]
    assert digest.rcpt_tos == ["boss@example.com"]
    import email
    from email import policy

    message = email.message_from_bytes(digest.data, policy=policy.default)
    (attachment,) = list(message.iter_attachments())
    html = attachment.get_content()
    assert "mars@example.com" in html and "held" in html
