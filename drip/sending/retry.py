"""The retry policy, pure: what a send's outcome means for its delivery and its person."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from drip.mail.transports import Outcome, SendResult, policy_block

FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=1)
HOLD = timedelta(hours=1)  # how long a lesson that cannot be built or loaded waits
JITTER = 0.25  # each delay is spread over +-25 %, so a batch that failed together comes back apart


POLICY_WAVE = 3  # content or policy refusals, with nothing accepted, that pause a pass


@dataclass
class Wave:
    """One pass's content and policy refusals. A relay refusing our message or our domain
    refuses it for everyone, so such a refusal is deferred, not bounced, unless the message just
    before it was accepted (then it is about that recipient and bounces as any 5xx); `after` of
    them in a row pause the pass."""

    after: int = POLICY_WAVE
    streak: int = 0
    first: str = ""
    last_accepted: bool = False

    @property
    def tripped(self) -> bool:
        return self.streak >= self.after

    def why(self) -> str:
        return (
            f"{self.streak} messages in a row refused with what looks like a content or policy "
            f"block ({self.first}); the pass and this lesson are paused for "
            f"{HOLD.total_seconds() / 60:g} minutes, nobody is bounced; check the relay's reason"
        )

    def judge(self, result: SendResult) -> SendResult:
        """Count one outcome; a content or policy refusal that is not right after an accepted
        message comes back as a temporary failure, with the server's reply."""
        if result.outcome is Outcome.accepted:
            self.streak, self.first, self.last_accepted = 0, "", True
            return result
        if not policy_block(result):
            self.last_accepted = False
            return result
        self.streak += 1
        self.first = self.first or str(result)
        if self.last_accepted:
            self.last_accepted = False
            return result
        return SendResult(
            Outcome.retry,
            result.code,
            f"deferred, not bounced (looks like a content or policy block): {result.reply}",
        )


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


def backoff(attempts: int, key: int | None = None) -> timedelta:
    """Delay before the next attempt: 5 minutes, doubling, capped at one hour; with a key (the
    delivery's id) spread by up to +-25 %, the same for the same key and attempt, so hundreds of
    messages deferred by one outage do not all come back in the same second."""
    delay: timedelta = min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)
    if key is None:
        return delay
    digest = hashlib.blake2b(f"{key}:{attempts}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
    return timedelta(seconds=round(delay.total_seconds() * (1 - JITTER + 2 * JITTER * fraction)))


def decide(
    result: SendResult,
    *,
    lesson: str,
    attempts: int,
    first_try: datetime,
    sent_at: datetime,
    now: datetime,
    lifetime: timedelta,
    key: int | None = None,
) -> Decision:
    """Accepted is sent; a temporary failure is retried with backoff until `lifetime` has
    passed since the first try; a permanent one, or one that outlived it, has failed."""
    if result.outcome is Outcome.accepted:
        return Decision(Verdict.sent)
    if result.outcome is Outcome.retry and now - first_try < lifetime:
        return Decision(Verdict.retry, retry_at=sent_at + backoff(attempts + 1, key))
    if result.outcome is Outcome.retry:
        hours = lifetime.total_seconds() / 3600
        return Decision(
            Verdict.failed,
            reason=f"gave up on lesson '{lesson}' after {hours:g} h of failures: {result}",
        )
    return Decision(Verdict.failed, reason=f"lesson '{lesson}' {result}")
