"""`drip inbound poll`: read a mailbox over IMAP, process each new message once, then flag it.

For companies that can only give drip a mailbox. A message is flagged `$DripDone` after it is
processed (and the inbound table keeps its key too), so a second poll, or a poll that died
between processing and flagging, processes nothing twice."""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import Engine

from drip.errors import DripError
from drip.inbound.process import Inbound, Result, handle
from drip.mail.transports import Transport

log = logging.getLogger("drip.inbound")

DONE = "$DripDone"


class MailboxError(DripError):
    """The IMAP mailbox cannot be reached or read."""


@dataclass(frozen=True)
class Mailbox:
    """Where to read: host, port, TLS, login and folder."""

    host: str
    port: int
    tls: bool
    user: str
    password: str
    folder: str

    @classmethod
    def of(cls, url: str) -> Mailbox:
        parts = urlsplit(url)
        tls = parts.scheme == "imaps"
        return cls(
            parts.hostname or "",
            parts.port or (993 if tls else 143),
            tls,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            unquote(parts.path.lstrip("/")) or "INBOX",
        )

    def describe(self) -> str:
        return (
            f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}/{self.folder}"
        )


@dataclass
class PollResult:
    """What one poll did."""

    new: int = 0
    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    results: list[Result] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.new} new message(s): {self.processed} processed, "
            f"{self.duplicates} already processed, {self.failed} left to try again"
        )


def _check(typ: str, data: list[Any], what: str, box: Mailbox) -> list[Any]:
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise MailboxError(f"{box.describe()}: {what} failed: {detail}")
    return data


def _connect(box: Mailbox, timeout: float) -> imaplib.IMAP4:
    try:
        if box.tls:
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                box.host, box.port, ssl_context=ssl.create_default_context(), timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(box.host, box.port, timeout=timeout)
            if "STARTTLS" in conn.capabilities:
                conn.starttls(ssl.create_default_context())
        conn.login(box.user, box.password)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(
            f"cannot read {box.describe()}: {exc}; check DRIP_IMAP_URL (host, port, user, password)"
        ) from None
    return conn


def poll(
    engine: Engine,
    config: Inbound,
    url: str,
    *,
    clock: Callable[[], datetime],
    transport: Callable[[], AbstractContextManager[Transport]] | None = None,
    timeout: float = 30.0,
) -> PollResult:
    """Process every message of the mailbox not yet flagged as done, and flag each one done."""
    box = Mailbox.of(url)
    result = PollResult()
    conn = _connect(box, timeout)
    try:
        _check(*conn.select(_quoted(box.folder)), f"opening folder {box.folder}", box)
        data = _check(*conn.uid("SEARCH", "UNKEYWORD", DONE), "searching", box)
        uids = data[0].decode().split() if isinstance(data[0], bytes) else []
        result.new = len(uids)
        for uid in uids:
            fetched = _check(*conn.uid("FETCH", uid, "(BODY.PEEK[])"), "fetching", box)
            raw = next((d[1] for d in fetched if isinstance(d, tuple)), b"")
            try:
                if transport is None:
                    done = handle(engine, raw, config=config, source="imap", now=clock())
                else:
                    with transport() as sender:
                        done = handle(
                            engine, raw, config=config, source="imap", now=clock(),
                            transport=sender,
                        )  # fmt: skip
            except DripError as exc:
                log.warning("message %s of %s left for the next poll: %s", uid, box.folder, exc)
                result.failed += 1
                continue
            result.results.append(done)
            if done.duplicate:
                result.duplicates += 1
            else:
                result.processed += 1
            _check(*conn.uid("STORE", uid, "+FLAGS", f"({DONE} \\Seen)"), "flagging", box)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"{box.describe()}: the connection failed: {exc}") from None
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    return result


def _quoted(folder: str) -> str:
    return (
        folder
        if re.fullmatch(r"[A-Za-z0-9_.\-/]+", folder)
        else '"' + folder.replace('"', '\\"') + '"'
    )
