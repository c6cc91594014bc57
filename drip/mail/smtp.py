"""SMTP delivery: several connections kept across a pass, PIPELINING (RFC 2920) when offered,
each reply classified as before (4xx retry, 5xx reject), and a breaker for a relay that is down."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from drip.mail.message import DotSafe
from drip.mail.protocol import Base, Outcome, Outgoing, SendResult, classify


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


class ConnectFailed(Exception):
    """Connecting, greeting, starting TLS or logging in failed; `login` when it was the login."""

    def __init__(self, message: str, code: int | None, login: bool) -> None:
        super().__init__(message)
        self.code = code
        self.login = login


class Connection:
    """One SMTP session that sends a message per step, pipelined (RFC 2920) when advertised:
    MAIL, RCPT and DATA go in one write, their replies are read in order, then the body."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.pipelining = smtp.has_extn("pipelining")
        self.size = smtp.has_extn("size")
        self.utf8 = smtp.has_extn("smtputf8")
        self.dirty = False  # a transaction was left open by a refusal: RSET first
        self.waiting = False  # a body is on the wire, its reply not read yet
        self.used = False  # it has carried a message: the server may have closed it since
        self.alive = True

    def begin(self, sender: str, recipient: str, data: bytes) -> SendResult | None:
        """Send the envelope and, once the server says 354, the body; None means the body is
        on the wire and `end()` reads its reply, a result means the server refused first."""
        refused = self.offer(sender, recipient, data)
        return refused if refused is not None else self.accept()

    def offer(self, sender: str, recipient: str, data: bytes) -> SendResult | None:
        """Write the envelope (RSET when needed, MAIL, RCPT, DATA) without waiting when the
        server pipelines, so several connections wait for their replies at the same time."""
        self.used = True
        body = _dot_stuffed(data)
        options = f" SIZE={len(body)}" if self.size else ""
        if not (sender + recipient).isascii():
            if not self.utf8:
                return SendResult(
                    Outcome.rejected, None, f"{recipient}: the relay does not offer SMTPUTF8"
                )
            options += " SMTPUTF8"
        commands = [f"MAIL FROM:<{sender}>{options}\r\n", f"RCPT TO:<{recipient}>\r\n", "DATA\r\n"]
        if self.dirty:
            commands.insert(0, "RSET\r\n")
        encoded = [c.encode("utf-8") for c in commands]
        if self.pipelining:
            self.smtp.send(b"".join(encoded))
            self._offered: tuple[bytes, list[tuple[int, bytes]] | None] = (body, None)
        else:
            self._offered = (body, self._one_by_one(encoded))
        self._reset = self.dirty  # the envelope starts with RSET: one more reply to read
        return None

    def accept(self) -> SendResult | None:
        """Read the envelope's replies and, after a 354, send the body (None) or say why not."""
        body, replies = self._offered
        if replies is None:
            replies = [self.smtp.getreply() for _ in range(4 if self._reset else 3)]
        if self._reset:
            code, text = replies.pop(0)
            if code == 421 or code >= 500:
                raise _closed(code, text)
            self.dirty = False
        refused = _refusal(replies + [(503, b"not sent")] * (3 - len(replies)))
        if refused is None:
            self.smtp.send(body)
            self.waiting = True
            return None
        self.dirty = True
        if len(replies) == 3 and replies[2][0] == 354:  # a server that opens DATA anyway
            self.smtp.send(b".\r\n")
            self.smtp.getreply()
        return refused

    def end(self) -> SendResult:
        """Read the reply to the body sent by `begin`."""
        self.waiting = False
        code, text = self.smtp.getreply()
        if code == 421:
            raise _closed(code, text)
        return classify(code, text)

    def _one_by_one(self, commands: list[bytes]) -> list[tuple[int, bytes]]:
        replies = []
        for command in commands:
            self.smtp.send(command)
            code, text = self.smtp.getreply()
            replies.append((code, text))
            if not (200 <= code < 400) and not command.startswith(b"RSET"):
                break  # without pipelining, what follows a refusal is never sent
        return replies

    def close(self, polite: bool) -> None:
        self.alive = False
        try:
            if polite and not self.waiting:
                self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        try:
            self.smtp.close()
        except OSError:
            pass


class Closed(Exception):
    """The server closed (421) or the connection broke; `result` is the message's outcome."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(str(result))
        self.result = result


def _refusal(replies: list[tuple[int, bytes]]) -> SendResult | None:
    """The outcome of a refused envelope (MAIL, RCPT, DATA replies in order), None when the
    server is ready for the body; a 421 anywhere closes the connection."""
    (mail, mail_text), (rcpt, rcpt_text), (go, go_text) = replies
    for code, text in replies:
        if code == 421:
            raise _closed(code, text)
    if not 200 <= mail < 300:
        # The relay refusing our own From is our configuration, not the recipient's fault.
        return SendResult(Outcome.retry, mail, f"sender refused: {_flat(mail_text)}")
    if not 200 <= rcpt < 300:
        return classify(rcpt, rcpt_text, at_rcpt=True)
    if go != 354:
        return classify(go, go_text)
    return None


def _closed(code: int, text: bytes) -> Closed:
    return Closed(SendResult(Outcome.retry, code, f"the relay is closing: {_flat(text)}"))


class SmtpTransport(Base):
    """Sends over `connections` SMTP connections kept across a pass, one message per
    connection per step; a dropped or closed (421) connection reconnects for the next message."""

    def __init__(self, options: SmtpOptions, connections: int = 1, connect_tries: int = 2) -> None:
        self.options = options
        self.width = max(1, connections)
        self.connect_tries = max(1, connect_tries)
        self.down: str | None = None
        self._failures = 0  # connection attempts that failed since the last one that worked
        self._idle: list[Connection] = []
        self._busy: list[tuple[Connection | None, SendResult | None]] = []
        self._ahead: dict[int, Connection] = {}  # id(message) -> its envelope's connection

    def describe(self) -> str:
        o = self.options
        mode = "TLS" if o.implicit_tls else ("STARTTLS" if o.starttls else "plain")
        many = f", {self.width} connections" if self.width > 1 else ""
        return f"SMTP {o.host}:{o.port} ({mode}{many})"

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.options.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> Connection:
        o = self.options
        login = False
        try:
            smtp: smtplib.SMTP
            if o.implicit_tls:
                smtp = smtplib.SMTP_SSL(o.host, o.port, timeout=o.timeout, context=self._context())
            else:
                smtp = smtplib.SMTP(o.host, o.port, timeout=o.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectFailed(_said(exc), getattr(exc, "smtp_code", None), False) from None
        try:
            smtp.ehlo()
            if o.starttls:
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if o.username:
                login = True
                _login(smtp, o.username, o.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(smtp)
            what = "login failed" if login else "greeting failed"
            raise ConnectFailed(
                f"{what}: {_said(exc)}", getattr(exc, "smtp_code", None), login
            ) from None
        return Connection(smtp)

    def _connection(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        try:
            conn = self._connect()
        except ConnectFailed as exc:
            self._failures += 1
            tries = f"{self._failures} tr{'y' if self._failures == 1 else 'ies'}"
            if exc.login:
                # The same credentials will fail the same way: never try them again this pass.
                self.down = f"cannot log in to {self.describe()}: {exc}"
            elif self._failures >= self.connect_tries:
                self.down = f"cannot reach {self.describe()} after {tries}: {exc}"
            raise
        self._failures = 0
        return conn

    def start(self, messages: Sequence[Outgoing]) -> None:
        # Every connection gets its envelope first, then each reply is read and its body sent:
        # the connections wait for the server at the same time, not one after another.
        offered: list[tuple[int, Connection, Outgoing, bool]] = []
        for message in messages:
            entry = len(self._busy)
            ahead = self._ahead.pop(id(message), None)
            if ahead is not None:  # its envelope went out behind the last step's body
                self._busy.append((ahead, None))
                offered.append((entry, ahead, message, False))
                continue
            if self.down is not None:
                self._busy.append((None, SendResult(Outcome.unsent, None, self.down)))
                continue
            try:
                conn = self._connection()
            except ConnectFailed as exc:
                # Failing to connect, greet, start TLS or log in is the relay's or our
                # configuration's problem, never the recipient's: it stays due as it was.
                self._busy.append((None, self._unsent(exc)))
                continue
            self._busy.append((conn, None))
            reused = conn.used
            if self._step(entry, conn, lambda c=conn, m=message: c.offer(*m)):
                offered.append((entry, conn, message, reused))
        for conn in self._ahead.values():  # announced but not sent after all
            conn.close(polite=False)
        self._ahead = {}
        for entry, conn, message, reused in offered:
            self._step(
                entry, conn, lambda e=entry, c=conn, m=message, r=reused: self._accept(e, c, m, r)
            )

    def offer(self, messages: Sequence[Outgoing]) -> None:
        """Write the next step's envelopes behind the bodies on the wire (RFC 2920 allows
        commands after the end of DATA), so their 354s come back with this step's replies."""
        carrying = [c for c, r in self._busy if c is not None and r is None and c.pipelining]
        for conn, message in zip(carrying, messages, strict=False):
            try:
                if conn.offer(*message) is None:
                    self._ahead[id(message)] = conn
            except (OSError, smtplib.SMTPException):
                pass  # finish() finds the broken connection; start() sends it afresh

    def _step(self, entry: int, conn: Connection, action: Any) -> bool:
        """Run one stage for the message at `entry`; False when it has its result already."""
        try:
            refused = action()
        except ConnectFailed as exc:
            self._busy[entry] = (None, self._unsent(exc))
        except Closed as closed:
            conn.close(polite=False)
            self._busy[entry] = (None, closed.result)
        except (OSError, smtplib.SMTPException) as exc:
            conn.close(polite=False)
            self._busy[entry] = (None, _broken(exc))
        else:
            if refused is None:
                return True
            self._busy[entry] = (self._busy[entry][0], refused)
        return False

    def _accept(
        self, entry: int, conn: Connection, message: Outgoing, reused: bool
    ) -> SendResult | None:
        try:
            return conn.accept()
        except smtplib.SMTPServerDisconnected:
            if conn.waiting or not reused:
                raise
        # A connection kept idle was closed by the server before this message reached it.
        conn.close(polite=False)
        fresh = self._connection()
        self._busy[entry] = (fresh, None)
        refused = fresh.begin(*message)
        if refused is not None:
            self._busy[entry] = (fresh, refused)
        return refused

    def _unsent(self, exc: ConnectFailed) -> SendResult:
        return SendResult(Outcome.unsent, exc.code, f"cannot connect to {self.describe()}: {exc}")

    def finish(self) -> list[SendResult]:
        results = []
        for conn, result in self._busy:
            if conn is not None and result is None:
                try:
                    result = conn.end()
                except Closed as closed:
                    conn.close(polite=False)
                    result, conn = closed.result, None
                except (OSError, smtplib.SMTPException) as exc:
                    conn.close(polite=False)
                    result, conn = _broken(exc), None
                if conn is None:  # an envelope announced on it is lost with it
                    self._ahead = {k: c for k, c in self._ahead.items() if c.alive}
            if conn is not None and conn not in self._ahead.values():
                self._idle.append(conn)
            assert result is not None
            results.append(result)
        self._busy = []
        return results

    def close(self) -> None:
        if self._busy:
            self.finish()
        for conn in self._ahead.values():
            conn.close(polite=False)
        self._ahead = {}
        for conn in self._idle:
            conn.close(polite=True)
        self._idle = []


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in once, with one mechanism: smtplib's login() tries every one the server offers,
    and each failed try counts towards locking the relay account."""
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    mechanism = next((m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m in offered), None)
    if mechanism is None:
        smtp.login(username, password)  # let smtplib say what is missing
        return
    smtp.user, smtp.password = username, password
    method = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
    code, reply = smtp.auth(mechanism, method, initial_response_ok=True)
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, reply)


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: lines starting with '.' doubled (RFC 5321 4.5.2), then CRLF.CRLF.
    A DotSafe message has none, and is not scanned (a scan costs 17 us for a 21 kB lesson)."""
    body = data
    if type(data) is not DotSafe:
        body = data.replace(b"\r\n.", b"\r\n..")
        if body[:1] == b".":
            body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _broken(exc: BaseException) -> SendResult:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return SendResult(Outcome.retry, None, f"timed out: {exc or 'no answer'}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendResult(Outcome.retry, None, f"connection dropped: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return classify(exc.smtp_code, exc.smtp_error)
    return SendResult(Outcome.retry, None, f"{type(exc).__name__}: {exc}")


def _said(exc: BaseException) -> str:
    said = _flat(getattr(exc, "smtp_error", b""))
    code = getattr(exc, "smtp_code", None)
    if said and code:
        return f"{code} {said}"
    return said or str(exc) or type(exc).__name__


def _quietly_close(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except OSError:
        pass


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _flat(value: bytes | str) -> str:
    return " ".join(_text(value).split())
