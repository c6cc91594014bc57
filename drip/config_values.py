"""How the text of each setting becomes its value, or a message that says the fix."""

from __future__ import annotations

import math
import re
from email.utils import parseaddr
from urllib.parse import urlsplit


def _url(value: str) -> str:
    return value.strip()


def _database_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")):
        raise ValueError("not a database URL like sqlite:///drip.db or postgresql://host/db")
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"\\]")


def _plain_url(value: str) -> str:
    """A URL with nothing that could change its meaning on the way: urlsplit silently drops
    CR, LF and tabs (so "host\r\n@other" connects elsewhere), and an angle bracket or a space
    would end the URL inside a header like List-Unsubscribe."""
    value = value.strip()
    bad = URL_FORBIDDEN.search(value)
    if bad:
        raise ValueError(
            f"holds {bad.group()!r} at position {bad.start() + 1}; a URL has no spaces, line "
            "breaks, quotes or angle brackets (percent-encode them in a password)"
        )
    return value


def _mail_url(value: str) -> str:
    value = _plain_url(value)
    if value.startswith("outbox:"):
        if not value[len("outbox:") :]:
            raise ValueError("outbox needs a folder, like outbox:outbox")
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            "not a mail URL like outbox:outbox, smtp://user:pass@host:587 or smtps://host:465"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("the port is not a number between 1 and 65535") from None
    return value


def _from(value: str) -> str:
    from drip.addresses import check_address  # the one address check (imports only errors)

    value = value.strip()
    name, addr = parseaddr(value)
    bare = "<" not in value and value == addr
    if (
        not addr
        or not (bare or value.endswith(">"))
        or any(c in value for c in "\r\n\x00")
        or "=?" in value
    ):
        raise ValueError('not a sender like "Drip Lessons <lessons@example.com>" (ASCII address)')
    # A sender on a special-use domain (drip.localhost, a .local relay) is the operator's choice.
    try:
        checked = check_address(addr, special_use="*")
    except ValueError:
        raise ValueError(
            'not a sender like "Drip Lessons <lessons@example.com>" (ASCII address)'
        ) from None
    if checked != addr.lower() or not addr.isascii():
        raise ValueError(
            f'not a sender like "Drip Lessons <lessons@example.com>": write the address in ASCII, {checked}'
        )
    return value


def _reply_to(value: str) -> str:
    value = value.strip()
    return _from(value) if value else ""


def _domain_names(value: str) -> str:
    from drip.addresses import SPECIAL_USE

    names = frozenset(n.strip().lower().lstrip(".") for n in value.split(",") if n.strip())
    unknown = sorted(names - set(SPECIAL_USE) - {"*"})
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not a special-use domain ({', '.join(SPECIAL_USE)})")
    return ",".join(sorted(names))


def _base_url(value: str) -> str:
    value = _plain_url(value).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not a public base URL like https://learn.example.com")
    return value


MAX_NUMBER = 1_000_000_000


def _finite(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise ValueError("must be an ordinary number")
    return number


def _positive_float(value: str) -> float:
    number = _finite(value)
    if number <= 0:
        raise ValueError("must be a number greater than 0")
    return number


def _non_negative_float(value: str) -> float:
    number = _finite(value)
    if number < 0:
        raise ValueError("must be 0 (no limit) or a positive number")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError("must be a port between 1 and 65535")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0 or number > MAX_NUMBER:
        raise ValueError("must be a whole number greater than 0")
    return number


def _auto_or_positive_int(value: str) -> int:
    """A positive whole number, or "auto" (or 0): the caller derives it from other settings."""
    if value.strip().lower() in ("auto", "0"):
        return 0
    return _positive_int(value)


def _path(value: str) -> str:
    return value.strip()


def _optional_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL like https://lrs.example.com/xAPI")
    return value


def _actor(value: str) -> str:
    value = value.strip().lower()
    if value not in ("mbox", "account"):
        raise ValueError("must be mbox (the e-mail address) or account (an HR id, no e-mail)")
    return value


def _secret(value: str) -> str:
    if len(value) < 16:
        raise ValueError("is too short: use at least 16 random characters (drip init writes one)")
    return value


def _optional_secret(value: str) -> str:
    return _secret(value) if value else ""


DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if value and not DOMAIN.match(value):
        raise ValueError("not a domain name like bounce.example.com")
    return value


def _address(value: str) -> str:
    from drip.addresses import check_address  # the one address check

    value = value.strip()
    if not value:
        return ""
    try:
        return check_address(value, special_use="*")
    except ValueError:
        raise ValueError("not a plain e-mail address like coach@example.com") from None


def _imap_url(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("not a mailbox URL like imaps://user:pass@imap.example.com/INBOX")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("the port is not a number between 1 and 65535") from None
    return value
