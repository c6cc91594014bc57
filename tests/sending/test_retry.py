"""The retry policy's delays: doubling, capped, and spread so one outage's deferrals come back apart."""

from datetime import timedelta

from drip.sending.retry import backoff


def test_backoff_doubles_from_five_minutes_to_an_hour_without_a_key() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 5, 9)] == [
        timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)
    ]


def test_deliveries_deferred_together_come_back_spread_over_half_the_delay() -> None:
    delays = [backoff(1, key).total_seconds() for key in range(1, 501)]
    assert min(delays) >= 225 and max(delays) <= 375  # 5 min +-25 %
    assert len(set(delays)) > 100  # not one thundering second
    assert backoff(1, 42) == backoff(1, 42)  # the same delivery, the same delay
    late = [backoff(9, key) for key in range(1, 200)]
    assert max(late) <= timedelta(minutes=75) and min(late) >= timedelta(minutes=45)


# -- content and policy refusals, against a real SMTP server -----------------------------------

import email  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from support import SmtpHandler, cli_env, free_port, run_drip, utc  # noqa: E402

from drip.sending.run import send_due  # noqa: E402
from tests.sending.test_run import rows, setup_cohort, smtp_app  # noqa: E402

MONDAY_8 = utc(2026, 11, 30, 8, 0)
FIVE = [(f"p{i}@example.com", None) for i in range(5)]
SPAM = "554 5.7.1 Message rejected: content looks like spam"


class RcptHandler(SmtpHandler):
    """Also scripts the answers to RCPT TO ("250 OK" when the script is empty)."""

    rcpt_replies: list[str]

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.pop(0) if self.rcpt_replies else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply


@pytest.fixture
def rcpt_smtp() -> Any:
    handler = RcptHandler()
    handler.rcpt_replies = []
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def _statuses(engine: sa.Engine) -> list[str]:
    return [r[0] for r in rows(engine, "SELECT status FROM enrollment ORDER BY id")]


def test_552_at_rcpt_is_retried_not_bounced(tmp_path: Path, db_url: str, rcpt_smtp: Any) -> None:
    handler, port = rcpt_smtp
    handler.rcpt_replies = ["552 4.5.3 Too many recipients, try again later"]
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None)])
    d = app.dispatcher()
    assert send_due(d, MONDAY_8).retried == 1
    assert _statuses(app.engine) == ["active"]
    assert send_due(d, MONDAY_8 + timedelta(minutes=7)).sent == 1
    d.transport.close()
    (received,) = handler.messages
    assert received.rcpt_tos == ["ada@example.com"]


def test_a_content_block_for_everyone_pauses_the_pass_and_bounces_nobody(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = [SPAM] * 5
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, FIVE)
    d = app.dispatcher()
    result = send_due(d, MONDAY_8)
    # The pass stopped after 3; the one built ahead was already on the wire.
    assert (result.sent, result.failed) == (0, 0) and result.retried in (3, 4)
    assert len(handler.attempts) == result.retried
    assert "messages in a row refused" in result.stopped and "5.7.1" in result.stopped
    assert _statuses(app.engine) == ["active"] * 5
    # The block is lifted; an hour later everyone gets the lesson, the deferred ones with the
    # Message-ID of their first try.
    handler.replies = []
    later = send_due(d, MONDAY_8 + timedelta(hours=1, minutes=5))
    d.transport.close()
    assert later.sent == 5 and _statuses(app.engine) == ["active"] * 5
    first_ids = {email.message_from_bytes(a)["Message-ID"] for a in handler.attempts}
    sent_ids = {email.message_from_bytes(m.data)["Message-ID"] for m in handler.messages}
    assert first_ids <= sent_ids


def test_a_lone_content_block_after_an_acceptance_bounces(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = ["250 OK", SPAM]
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [("ada@example.com", None), ("bo@example.com", None)])
    d = app.dispatcher()
    result = send_due(d, MONDAY_8)
    d.transport.close()
    assert (result.sent, result.failed, result.stopped) == (1, 1, "")
    assert sorted(_statuses(app.engine)) == ["active", "bounced"]


def test_resume_bounced_since_undoes_a_wave(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, FIVE)
    # The resume happens Tuesday 08:30, between the passes, whatever the wall clock says.
    env = cli_env(app.settings, DRIP_NOW="2026-12-01T08:30:00Z")
    handler.replies = ["550 5.1.1 no such user"]  # p0 really bounced, on Monday
    handler.replies += ["250 OK"] * 4
    # A pass that ran exits 0 even when recipients bounced (issue 15); the bounces are in the report.
    assert run_drip(["send-due", "--now", "2026-11-30T08:00:00Z"], env).returncode == 0
    handler.replies = ["550 mailbox unavailable"] * 4  # Tuesday: a wave of nonsense refusals
    assert run_drip(["send-due", "--now", "2026-12-01T08:00:00Z"], env).returncode == 0
    assert _statuses(app.engine) == ["bounced"] * 5

    undo = run_drip(["people", "resume", "--bounced-since", "2026-12-01T07:00:00Z"], env)
    assert undo.returncode == 0, undo.stderr
    assert "resumed 4 enrolment(s) bounced since 2026-12-01T07:00:00Z" in undo.stdout
    assert _statuses(app.engine) == ["bounced"] + ["active"] * 4
    handler.replies = []
    again = run_drip(["send-due", "--now", "2026-12-01T09:00:00Z"], env)
    assert again.returncode == 0, again.stderr
    assert len(handler.messages) == 8  # 4 on Monday, the 4 undone on Tuesday
    usage = run_drip(["people", "resume"], env)
    assert usage.returncode == 2 and "--bounced-since" in usage.stderr


def test_a_block_starting_mid_pass_bounces_at_most_one_and_pauses_the_rest(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    handler.replies = ["250 OK", "250 OK"] + [SPAM] * 10
    app = smtp_app(tmp_path, db_url, port)
    setup_cohort(app, [(f"p{i}@example.com", None) for i in range(10)])
    d = app.dispatcher()
    result = send_due(d, MONDAY_8)
    d.transport.close()
    assert result.sent == 2 and result.failed <= 1 and result.stopped
    statuses = _statuses(app.engine)
    assert statuses.count("bounced") <= 1 and statuses.count("active") >= 9
