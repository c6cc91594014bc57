"""What a transport is: one message's outcome, the step-at-a-time protocol every transport
follows, and the base class that makes one message a step and closes on `with`."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self


class Outcome(enum.StrEnum):
    accepted = "accepted"
    retry = "retry-later"
    rejected = "rejected"
    unsent = "unsent"  # never left: the relay is down; the message stays due as it was


# How an outcome reads in a message to a person (the enum's values are internal labels).
SAYS = {
    Outcome.accepted: "accepted",
    Outcome.retry: "temporary failure, will retry",
    Outcome.rejected: "rejected",
    Outcome.unsent: "not sent",
}


@dataclass(frozen=True)
class SendResult:
    """What happened to one message, with the server's reply."""

    outcome: Outcome
    code: int | None = None
    reply: str = ""

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{SAYS[self.outcome]}: {code}{self.reply}".strip()


ACCEPTED = SendResult(Outcome.accepted, 250, "accepted")


def classify(code: int, reply: bytes | str, *, at_rcpt: bool = False) -> SendResult:
    """Map an SMTP reply code to accepted, retry-later (4xx) or rejected (5xx); at RCPT a 552
    is temporary (RFC 5321 4.5.3.1.10: "too many recipients" or a full mailbox, try later)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    if 200 <= code < 300:
        return SendResult(Outcome.accepted, code, text)
    if code == 552 and at_rcpt:
        return SendResult(Outcome.retry, code, text)
    if 500 <= code < 600:
        return SendResult(Outcome.rejected, code, text)
    return SendResult(Outcome.retry, code, text)


# Enhanced status 5.6.x (content) and 5.7.x (security and policy), or words that say the same:
# the message or the sender was refused, not the recipient's address.
POLICY_STATUS = re.compile(r"(?<![\d.])5\.[67]\.\d{1,3}(?![\d.])")
POLICY_WORDS = re.compile(
    r"\b(spam|content|policy|policies|blocked|block ?list(ed)?|black ?list(ed)?|reputation|"
    r"virus|malware|phishing|dmarc|spf|dkim|not authori[sz]ed)\b",
    re.IGNORECASE,
)


def policy_block(result: SendResult) -> bool:
    """Whether a permanent refusal looks like a content or policy block (the message or the
    sender refused) rather than a bad address: one of those for everyone is not a bounce wave."""
    if result.outcome is not Outcome.rejected or result.code is None:
        return False
    return bool(POLICY_STATUS.search(result.reply) or POLICY_WORDS.search(result.reply))


# (envelope sender, recipient, message bytes)
Outgoing = tuple[str, str, bytes]


class Transport(Protocol):
    """Sends messages a step at a time; a context manager that closes its connections."""

    @property
    def width(self) -> int:
        """How many messages one step may carry."""

    @property
    def down(self) -> str | None:
        """Why the relay cannot be used for the rest of this pass, once it cannot."""

    def offer(self, messages: Sequence[Outgoing]) -> None: ...

    def start(self, messages: Sequence[Outgoing]) -> None: ...

    def finish(self) -> list[SendResult]: ...

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Base:
    """`with transport:` closes it, whatever happened inside; `send` is a one-message step."""

    width = 1
    down: str | None = None

    def offer(self, messages: Sequence[Outgoing]) -> None:
        """Announce the next step while this one is on the wire (SMTP pipelines its envelopes
        behind the bodies); `start` must follow with the same messages. Optional."""

    def start(self, messages: Sequence[Outgoing]) -> None:
        raise NotImplementedError

    def finish(self) -> list[SendResult]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        """Send one message and wait for its result (a relay that is down means retry later)."""
        self.start([(sender, recipient, data)])
        (result,) = self.finish()
        if result.outcome is Outcome.unsent:
            return SendResult(Outcome.retry, result.code, result.reply)
        return result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# Kept for wrappers written against the older name.
Closing = Base
