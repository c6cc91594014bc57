"""Where messages go: an outbox folder of .eml files or an SMTP server; one result per message.

A transport takes messages a step at a time: `start(messages)` puts them on the wire (up to
`width` at once, one per SMTP connection) and `finish()` waits for their replies, so the caller
can build the next step and record the last one while the server works. A relay that cannot be
reached, greeted, secured or logged in to trips the breaker: `down` then says why, and the rest
of the step comes back `unsent` without touching the network."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from drip.errors import ConfigError
from drip.mail.protocol import (
    ACCEPTED,
    Base,
    Closing,
    Outcome,
    Outgoing,
    SendResult,
    Transport,
    classify,
    policy_block,
)
from drip.mail.smtp import SmtpOptions, SmtpTransport, smtp_options

__all__ = [
    "ACCEPTED",
    "Base",
    "Closing",
    "OutboxTransport",
    "Outcome",
    "Outgoing",
    "RateLimited",
    "SendResult",
    "SmtpOptions",
    "SmtpTransport",
    "Transport",
    "classify",
    "policy_block",
    "open_transport",
    "smtp_options",
]


class OutboxTransport(Base):
    """Writes each message to FOLDER/<time>-<seq>.eml; names sort in sending order."""

    _seq = itertools.count()
    _lock = threading.Lock()

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._results: list[SendResult] = []

    def start(self, messages: Sequence[Outgoing]) -> None:
        self._results.extend(self._write(data) for _sender, _recipient, data in messages)

    def finish(self) -> list[SendResult]:
        results, self._results = self._results, []
        return results

    def _write(self, data: bytes) -> SendResult:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._lock:
                name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._seq):08d}.eml"
            tmp = self.folder / f".{name}.tmp"
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self.folder / name)
            except OSError:
                tmp.unlink(missing_ok=True)  # never leave half a message behind
                raise
        except OSError as exc:
            return SendResult(Outcome.retry, None, f"cannot write to outbox {self.folder}: {exc}")
        return SendResult(Outcome.accepted, 250, f"written to {self.folder / name}")

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"outbox folder {self.folder}"


class Paced(Base):
    """A transport that waits before each message goes out (`wait`), then hands it on; every
    other step goes straight to the transport inside."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.width = inner.width

    @property
    def down(self) -> str | None:  # type: ignore[override]
        return self.inner.down

    def wait(self) -> None:
        raise NotImplementedError

    def offer(self, messages: Sequence[Outgoing]) -> None:
        self.inner.offer(messages)

    def start(self, messages: Sequence[Outgoing]) -> None:
        for message in messages:
            self.wait()
            self.inner.start([message])

    def finish(self) -> list[SendResult]:
        return self.inner.finish()

    def close(self) -> None:
        self.inner.close()


class RateLimited(Paced):
    """Spaces messages to at most `rate` a second, each on its own moment within a step."""

    def __init__(self, inner: Transport, rate: float) -> None:
        super().__init__(inner)
        self.interval = 1.0 / rate
        self._next = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval

    def describe(self) -> str:
        return f"{self.inner.describe()}, at most {1 / self.interval:g} msg/s"


def open_transport(
    mail_url: str,
    timeout: float = 30.0,
    max_per_second: float = 0.0,
    *,
    connections: int = 1,
    connect_tries: int = 2,
) -> Transport:
    """The transport DRIP_MAIL_URL names."""
    transport: Transport
    if mail_url.startswith("outbox:"):
        transport = OutboxTransport(Path(mail_url[len("outbox:") :]).expanduser())
    elif mail_url.startswith(("smtp://", "smtps://")):
        options = smtp_options(mail_url, timeout)
        transport = SmtpTransport(options, connections, connect_tries)
    else:
        raise ConfigError(
            f"DRIP_MAIL_URL has value '{mail_url}': use outbox:FOLDER or smtp://host:587"
        )
    if max_per_second > 0:
        transport = RateLimited(transport, max_per_second)
    return transport
