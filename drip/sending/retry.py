"""The retry policy, pure: what a send's outcome means for its delivery and its person."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from drip.mail.transports import Outcome, SendResult

FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=1)
HOLD = timedelta(hours=1)  # how long a lesson that cannot be built or loaded waits


class Verdict(enum.StrEnum):
    sent = "sent"
    retry = "retry"
    failed = "failed"


@dataclass(frozen=True)
class Decision:
    """What to record: sent, retry at `retry_at`, or failed for `reason`."""

    verdict: Verdict
    retry_at: datetime | None = None
    reason: str = ""


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt: 5 minutes, doubling, capped at one hour."""
    delay: timedelta = FIRST_RETRY * (2 ** max(0, attempts - 1))
    return min(delay, MAX_RETRY)


def decide(
    result: SendResult,
    *,
    lesson: str,
    attempts: int,
    first_try: datetime,
    sent_at: datetime,
    now: datetime,
    lifetime: timedelta,
) -> Decision:
    """Accepted is sent; a temporary failure is retried with backoff until `lifetime` has
    passed since the first try; a permanent one, or one that outlived it, has failed."""
    if result.outcome is Outcome.accepted:
        return Decision(Verdict.sent)
    if result.outcome is Outcome.retry and now - first_try < lifetime:
        return Decision(Verdict.retry, retry_at=sent_at + backoff(attempts + 1))
    if result.outcome is Outcome.retry:
        hours = lifetime.total_seconds() / 3600
        return Decision(
            Verdict.failed,
            reason=f"gave up on lesson '{lesson}' after {hours:g} h of failures: {result}",
        )
    return Decision(Verdict.failed, reason=f"lesson '{lesson}' {result}")
