"""Signed, per-purpose link tokens holding ids only (HMAC-SHA256, URL-safe)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache

from drip.errors import TokenError

PAYLOAD = re.compile(r"^[0-9]{1,18}(?:-[0-9]{1,6}){0,2}$")
SIGNATURE_CHARS = 22  # 128 bits of HMAC-SHA256, base64url


class Purpose(StrEnum):
    open = "o"
    click = "c"
    confirm = "r"
    answer = "a"
    pause = "p"
    unsubscribe = "u"


# How many ids each purpose's token holds: a signed token of any other shape is refused.
IDS = {
    Purpose.open: 1,
    Purpose.click: 2,
    Purpose.confirm: 1,
    Purpose.answer: 2,
    Purpose.pause: 1,
    Purpose.unsubscribe: 1,
}


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    # A keyed HMAC to copy: copying skips the key setup that a one-shot digest repeats.
    key = hashlib.sha256(b"drip-link-token:" + secret.encode("utf-8")).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _signature(secret: str, purpose: Purpose, payload: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{purpose.value}:{payload}".encode("ascii"))
    return base64.urlsafe_b64encode(mac.digest()).decode("ascii")[:SIGNATURE_CHARS]


def make_token(secret: str, purpose: Purpose, *ids: int) -> str:
    """Sign the ids for one purpose; the token holds no e-mail address."""
    if not ids or any(i < 0 for i in ids):
        raise ValueError("a token needs one or more non-negative ids")
    payload = "-".join(str(i) for i in ids)
    return f"{payload}.{_signature(secret, purpose, payload)}"


def read_token(secret: str | Sequence[str], purpose: Purpose, token: str) -> tuple[int, ...]:
    """Return the ids of a valid token, or raise TokenError for anything forged, altered or not
    of its purpose's shape. `secret` may list the current key and previous ones (a rotation):
    a token signed with any of them is read; only the current one ever signs."""
    keys = (secret,) if isinstance(secret, str) else tuple(secret)
    payload, dot, signature = token.partition(".")
    if not dot or not PAYLOAD.match(payload) or len(signature) != SIGNATURE_CHARS:
        raise TokenError("malformed token")
    ids = tuple(int(part) for part in payload.split("-"))
    if len(ids) != IDS[purpose]:
        raise TokenError(f"a {purpose.name} token holds {IDS[purpose]} id(s)")
    # Compare the encoded text, not decoded bytes: base64's spare bits would let a changed
    # last character decode to the same MAC.
    if not any(
        hmac.compare_digest(_signature(key, purpose, payload), signature) for key in keys if key
    ):
        raise TokenError("bad signature")
    return ids


def link_values(base: str, key: str, delivery_id: int, options: int, links: int) -> dict[str, str]:
    """The signed per-recipient URLs of one delivery."""
    values = {
        "OPEN": f"{base}/o/{make_token(key, Purpose.open, delivery_id)}.gif",
        "CONFIRM": f"{base}/r/{make_token(key, Purpose.confirm, delivery_id)}",
        "PAUSE": f"{base}/p/{make_token(key, Purpose.pause, delivery_id)}",
        "UNSUBSCRIBE": f"{base}/u/{make_token(key, Purpose.unsubscribe, delivery_id)}",
    }
    for i in range(options):
        values[f"ANSWER-{i}"] = f"{base}/a/{make_token(key, Purpose.answer, delivery_id, i)}"
    for i in range(links):
        values[f"LINK-{i}"] = f"{base}/c/{make_token(key, Purpose.click, delivery_id, i)}"
    return values
