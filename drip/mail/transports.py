"""Where messages go: an outbox folder of .eml files or an SMTP server; one result per message."""

from __future__ import annotations

import enum
import itertools
import os
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from drip.errors import ConfigError


class Outcome(enum.StrEnum):
    accepted = "accepted"
    retry = "retry-later"
    rejected = "rejected"


@dataclass(frozen=True)
class SendResult:
    """What happened to one message, with the server's reply."""

    outcome: Outcome
    code: int | None = None
    reply: str = ""

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.outcome.value}: {code}{self.reply}".strip()


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


class Transport(Protocol):
    """Sends message bytes to one recipient; a context manager that closes its connection."""

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """`with transport:` closes it, whatever happened inside."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class OutboxTransport(Closing):
    """Writes each message to FOLDER/<time>-<seq>.eml; names sort in sending order."""

    _seq = itertools.count()
    _lock = threading.Lock()

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
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


@dataclass(frozen=True)
class SmtpOptions:
    """How to reach an SMTP server, parsed from DRIP_MAIL_URL."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    verify: bool
    timeout: float


def smtp_options(url: str, timeout: float) -> SmtpOptions:
    """Parse smtp://user:pass@host:587 (STARTTLS), smtps://host:465, smtp://host:25 (plain)."""
    parts = urlsplit(url)
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "smtps"
    port = parts.port or (465 if implicit else 587)
    starttls = not implicit and port == 587
    if "starttls" in query:
        starttls = query["starttls"] in ("1", "yes", "true", "on")
    return SmtpOptions(
        host=parts.hostname or "localhost",
        port=port,
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        verify=query.get("verify", "yes") not in ("0", "no", "false", "off"),
        timeout=timeout,
    )


class SmtpTransport(Closing):
    """Sends over one SMTP connection reused across a batch, reconnecting after a drop."""

    def __init__(self, options: SmtpOptions) -> None:
        self.options = options
        self._conn: smtplib.SMTP | None = None

    def describe(self) -> str:
        o = self.options
        mode = "TLS" if o.implicit_tls else ("STARTTLS" if o.starttls else "plain")
        return f"SMTP {o.host}:{o.port} ({mode})"

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.options.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        conn: smtplib.SMTP
        if o.implicit_tls:
            conn = smtplib.SMTP_SSL(o.host, o.port, timeout=o.timeout, context=self._context())
        else:
            conn = smtplib.SMTP(o.host, o.port, timeout=o.timeout)
        try:
            conn.ehlo()
            if o.starttls:
                conn.starttls(context=self._context())
                conn.ehlo()
            if o.username:
                conn.login(o.username, o.password or "")
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                # Failing to connect, greet, start TLS or log in is the relay's or our
                # configuration's problem, never the recipient's: always retry later.
                said = _text(getattr(exc, "smtp_error", b"")) or str(exc) or type(exc).__name__
                return SendResult(
                    Outcome.retry,
                    getattr(exc, "smtp_code", None),
                    f"cannot connect to {self.describe()}: {said}",
                )
        try:
            self._conn.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(recipient, (550, b"recipient refused"))
            return classify(code, reply, at_rcpt=True)
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            return SendResult(
                Outcome.retry, exc.smtp_code, f"SMTP login failed: {_text(exc.smtp_error)}"
            )
        except smtplib.SMTPSenderRefused as exc:
            # The relay refusing our own From is our configuration, not the recipient's fault.
            return SendResult(
                Outcome.retry, exc.smtp_code, f"sender refused: {_text(exc.smtp_error)}"
            )
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            return SendResult(Outcome.retry, None, f"connection dropped: {exc}")
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                self._drop()
            return classify(exc.smtp_code, exc.smtp_error)
        except TimeoutError as exc:
            self._drop()
            return SendResult(Outcome.retry, None, f"timed out: {exc or 'no answer'}")
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return SendResult(Outcome.retry, None, f"{type(exc).__name__}: {exc}")
        return SendResult(Outcome.accepted, 250, "accepted")

    def _drop(self) -> None:
        if self._conn is not None:
            _quietly_close(self._conn)
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()


class RateLimited(Closing):
    """Spaces sends to at most `rate` messages a second."""

    def __init__(self, inner: Transport, rate: float) -> None:
        self.inner = inner
        self.interval = 1.0 / rate
        self._next = 0.0

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval
        return self.inner.send(sender, recipient, data)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()}, at most {1 / self.interval:g} msg/s"


def _quietly_close(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except OSError:
        pass


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def open_transport(mail_url: str, timeout: float = 30.0, max_per_second: float = 0.0) -> Transport:
    """The transport DRIP_MAIL_URL names."""
    transport: Transport
    if mail_url.startswith("outbox:"):
        transport = OutboxTransport(Path(mail_url[len("outbox:") :]).expanduser())
    elif mail_url.startswith(("smtp://", "smtps://")):
        transport = SmtpTransport(smtp_options(mail_url, timeout))
    else:
        raise ConfigError(
            f"DRIP_MAIL_URL has value '{mail_url}': use outbox:FOLDER or smtp://host:587"
        )
    if max_per_second > 0:
        transport = RateLimited(transport, max_per_second)
    return transport
