"""The weekly digest is claimed and recorded like a lesson: retried after a 4xx with the same
Message-ID, failed for good after a 5xx, sent once per week per cohort."""

import email
from datetime import date, timedelta
from email import policy
from pathlib import Path

import sqlalchemy as sa
from support import SmtpHandler, make_settings, utc

from drip.app import App
from drip.people.cohorts import create_cohort
from drip.reports.digest import claim_week
from drip.scheduler import retry_digests

MONDAY_8 = utc(2026, 11, 30, 8, 0)


def _app(tmp_path: Path, db_url: str, port: int) -> tuple[App, int]:
    app = App.open(make_settings(tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{port}"))
    create_cohort(app.engine, name="board", course="sample", start=date(2026, 11, 30),
                  timezone="UTC", manager="boss@example.com", now=MONDAY_8)  # fmt: skip
    with app.engine.connect() as conn:
        cohort_id = conn.execute(sa.text("SELECT id FROM cohort")).scalar_one()
    return app, cohort_id


def _message_id(data: bytes) -> str:
    return str(email.message_from_bytes(data, policy=policy.default)["Message-ID"])


def _log(app: App) -> list[tuple]:
    with app.engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(sa.text("SELECT week, status, attempts FROM digest_log"))
        ]


def test_a_451_digest_is_retried_with_the_same_message_id_and_sent_once(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app, cohort_id = _app(tmp_path, db_url, port)
    handler.replies = ["451 4.3.0 try again later"]
    _send_one_at(app, cohort_id, MONDAY_8)
    assert handler.messages == []
    assert _log(app) == [("2026-W49", "retry", 1)]

    # Not before its backoff, then once; the Monday job running again changes nothing.
    assert retry_digests(app, MONDAY_8 + timedelta(minutes=2)) == 0
    assert retry_digests(app, MONDAY_8 + timedelta(minutes=10)) == 1
    assert retry_digests(app, MONDAY_8 + timedelta(minutes=20)) == 0
    _send_one_at(app, cohort_id, MONDAY_8 + timedelta(hours=1))
    assert [m.rcpt_tos for m in handler.messages] == [["boss@example.com"]]
    assert _log(app) == [("2026-W49", "sent", 2)]
    first, second = handler.attempts
    assert _message_id(first) == _message_id(second) == _message_id(handler.messages[0].data)


def test_a_550_digest_is_marked_failed_and_not_retried(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app, cohort_id = _app(tmp_path, db_url, port)
    handler.replies = ["550 5.1.1 no such user"]
    _send_one_at(app, cohort_id, MONDAY_8)
    assert _log(app)[0][:2] == ("2026-W49", "failed")
    assert retry_digests(app, MONDAY_8 + timedelta(hours=2)) == 0
    assert len(handler.attempts) == 1
    # Next week is a new digest.
    _send_one_at(app, cohort_id, MONDAY_8 + timedelta(days=7))
    assert len(handler.messages) == 1


def test_a_digest_left_by_a_dead_worker_is_sent_after_its_lease(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app, cohort_id = _app(tmp_path, db_url, port)
    claim = claim_week(app.engine, cohort_id, MONDAY_8)  # ... and the worker dies here
    assert claim is not None
    _send_one_at(app, cohort_id, MONDAY_8 + timedelta(minutes=1))  # another worker: held
    assert handler.messages == []
    assert retry_digests(app, MONDAY_8 + timedelta(minutes=15)) == 1
    (received,) = handler.messages
    assert _message_id(received.data) == claim.message_id


def _send_one_at(app: App, cohort_id: int, now) -> None:  # type: ignore[no-untyped-def]
    from drip.reports.digest import send_digests

    with app.transport() as transport:
        send_digests(app.engine, transport, app.settings, now, cohort_id, once_per_week=True)
