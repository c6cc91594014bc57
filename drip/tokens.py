"""Signed, per-purpose link tokens holding ids only (HMAC-SHA256, URL-safe).

Two encodings of the same ids and the same 128-bit MAC verify: the compact form drip writes
(base64url of the ids as varints followed by the MAC: 27 characters for a delivery and an option)
and the older dotted form (`123-0.` and 22 MAC characters) that links already sent still hold."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Any

from drip.errors import TokenError

PAYLOAD = re.compile(r"^[0-9]{1,18}(?:-[0-9]{1,6}){0,2}$")
SIGNATURE_CHARS = 22  # 128 bits of HMAC-SHA256, base64url
MAC_BYTES = 16
COMPACT = re.compile(r"^[A-Za-z0-9_-]{23,40}$")
MAX_FIRST = 10**18 - 1  # what the dotted form allows: 18 digits, then up to 6
MAX_NEXT = 999_999


class Purpose(StrEnum):
    open = "o"
    click = "c"
    confirm = "r"
    answer = "a"
    pause = "p"
    unsubscribe = "u"
    review = "v"  # the answer to a review question: (delivery, option)
    schedule = "t"  # the page to choose another send time or days


# How many ids each purpose's token holds: a signed token of any other shape is refused.
IDS = {
    Purpose.open: 1,
    Purpose.click: 2,
    Purpose.confirm: 1,
    Purpose.answer: 2,
    Purpose.pause: 1,
    Purpose.unsubscribe: 1,
    Purpose.review: 2,
    Purpose.schedule: 1,
}


class _Signer:
    """HMAC-SHA256 under one key with its two padded key blocks hashed once (RFC 2104): a MAC
    is then two short hash copies, the same bytes as `hmac.new(key, message, sha256)`."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"drip-link-token:" + secret.encode("utf-8")).digest()
        block = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        # The inner hash with each purpose's "<purpose>:" already taken in: a link's MAC then
        # hashes only its ids, with no text to format or encode first (nine links a message).
        self.purposed: dict[Purpose, Any] = {}
        for purpose in Purpose:
            inner = self.inner.copy()
            inner.update(f"{purpose.value}:".encode("ascii"))
            self.purposed[purpose] = inner

    def mac(self, message: bytes) -> bytes:
        return self._outer(self.inner.copy(), message)

    def purpose_mac(self, purpose: Purpose, payload: bytes) -> bytes:
        """mac(b"<purpose>:" + payload)."""
        return self._outer(self.purposed[purpose].copy(), payload)

    def _outer(self, inner: Any, message: bytes) -> bytes:
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@lru_cache(maxsize=8)
def _signer(secret: str) -> _Signer:
    return _Signer(secret)


def _mac(secret: str, purpose: Purpose, payload: str) -> bytes:
    return _signer(secret).purpose_mac(purpose, payload.encode("ascii"))


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode(data) without its padding, in two C calls instead of a wrapper's
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _signature(secret: str, purpose: Purpose, payload: str) -> str:
    return base64.urlsafe_b64encode(_mac(secret, purpose, payload)).decode("ascii")[
        :SIGNATURE_CHARS
    ]


def _varints(ids: tuple[int, ...]) -> bytes:
    if ids[0] < 0x80 and (len(ids) == 1 or max(ids) < 0x80):
        return bytes(ids)  # the common small case: one byte per id
    out = bytearray()
    for value in ids:
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _check_ids(ids: tuple[int, ...]) -> None:
    if not 1 <= len(ids) <= 3 or min(ids) < 0:
        raise ValueError("a token needs one to three non-negative ids")
    if ids[0] > MAX_FIRST or (len(ids) > 1 and max(ids[1:]) > MAX_NEXT):
        raise ValueError("a token's ids are too large")


def make_token(secret: str, purpose: Purpose, *ids: int) -> str:
    """Sign the ids for one purpose (compact form); the token holds no e-mail address."""
    _check_ids(ids)
    payload = "-".join(map(str, ids)).encode("ascii")
    return _compact(_signer(secret), purpose, _varints(ids), payload)


def _compact(signer: _Signer, purpose: Purpose, varints: bytes, payload: bytes) -> str:
    return _b64(varints + signer.purpose_mac(purpose, payload)[:MAC_BYTES])


def make_dotted_token(secret: str, purpose: Purpose, *ids: int) -> str:
    """The older dotted form of a token, as links sent before the compact form hold it."""
    _check_ids(ids)
    payload = "-".join(str(i) for i in ids)
    return f"{payload}.{_signature(secret, purpose, payload)}"


def _read_compact(secret: str, purpose: Purpose, token: str) -> tuple[int, ...]:
    if not COMPACT.match(token):
        raise TokenError("malformed token")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise TokenError("malformed token") from None
    head, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    ids: list[int] = []
    value = shift = 0
    for byte in head:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            ids.append(value)
            value = shift = 0
    ids_tuple = tuple(ids)
    try:
        _check_ids(ids_tuple)
    except ValueError:
        raise TokenError("malformed token") from None
    # One encoding per token: re-encode and compare the text, so no padding bit, overlong varint
    # or trailing byte can make a second token for the same ids.
    payload = "-".join(str(i) for i in ids_tuple)
    expected = _varints(ids_tuple) + _mac(secret, purpose, payload)[:MAC_BYTES]
    if shift or not hmac.compare_digest(_b64(expected), token):
        raise TokenError("bad signature")
    del mac
    return ids_tuple


def _keys(secret: str | Sequence[str]) -> tuple[str, ...]:
    """The keys to check a signature with: one, or the current and previous ones, unset dropped."""
    return tuple(k for k in ((secret,) if isinstance(secret, str) else secret) if k)


def read_token(secret: str | Sequence[str], purpose: Purpose, token: str) -> tuple[int, ...]:
    """Return the ids of a valid token, or raise TokenError for anything forged, altered or not
    of its purpose's shape. `secret` may list the current key and previous ones (a rotation):
    a token signed with any of them is read; only the current one ever signs."""
    keys = _keys(secret)
    if "." not in token:
        for key in keys:
            try:
                ids = _read_compact(key, purpose, token)
            except TokenError as exc:
                if str(exc) != "bad signature":
                    raise
                continue
            if len(ids) != IDS[purpose]:
                raise TokenError(f"a {purpose.name} token holds {IDS[purpose]} id(s)")
            return ids
        raise TokenError("bad signature")
    payload, dot, signature = token.partition(".")
    if not dot or not PAYLOAD.match(payload) or len(signature) != SIGNATURE_CHARS:
        raise TokenError("malformed token")
    ids = tuple(int(part) for part in payload.split("-"))
    if len(ids) != IDS[purpose]:
        raise TokenError(f"a {purpose.name} token holds {IDS[purpose]} id(s)")
    # Compare the encoded text, not decoded bytes: base64's spare bits would let a changed
    # last character decode to the same MAC.
    if not any(hmac.compare_digest(_signature(key, purpose, payload), signature) for key in keys):
        raise TokenError("bad signature")
    return ids


RETURN_LOCAL = re.compile(r"^b-([0-9]{1,18})-([0-9a-f]{20})$")


def _return_signature(secret: str, delivery_id: int, domain: str) -> str:
    # Hex, not base64: a mail server may change the case of a local part.
    message = f"return:{delivery_id}@{domain.lower()}".encode("ascii")
    return _signer(secret).mac(message).hex()[:20]


def return_address(secret: str, delivery_id: int, domain: str) -> str:
    """The signed per-delivery envelope sender (VERP), like b-42-<signature>@bounce.example.com."""
    return f"b-{delivery_id}-{_return_signature(secret, delivery_id, domain)}@{domain.lower()}"


def read_return_address(secret: str | Sequence[str], address: str, domain: str) -> int:
    """The delivery id of a valid return address on `domain`; TokenError for anything else.
    `secret` may list the current key and previous ones: a bounce of mail sent before a
    rotation still finds its delivery."""
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or host.lower().rstrip(".") != domain.lower():
        raise TokenError("not on the bounce domain")
    match = RETURN_LOCAL.match(local.lower())
    if not match:
        raise TokenError("malformed return address")
    delivery_id = int(match.group(1))
    for key in _keys(secret):
        if hmac.compare_digest(_return_signature(key, delivery_id, domain), match.group(2)):
            return delivery_id
    raise TokenError("bad signature")


def link_values(
    base: str, key: str, delivery_id: int, options: int, links: int, reviews: int = 0
) -> dict[str, str]:
    """The signed per-recipient URLs of one delivery: each token as make_token signs it, with
    the ids checked and encoded once for the delivery rather than once per link."""
    _check_ids((delivery_id, max(options, reviews, links, 1) - 1))
    signer, head, did = _signer(key), _varints((delivery_id,)), b"%d" % delivery_id

    def one(purpose: Purpose) -> str:
        return _compact(signer, purpose, head, did)

    def nth(purpose: Purpose, i: int) -> str:
        return _compact(signer, purpose, head + _varints((i,)), b"%b-%d" % (did, i))

    values = {
        "OPEN": f"{base}/o/{one(Purpose.open)}.gif",
        "CONFIRM": f"{base}/r/{one(Purpose.confirm)}",
        "PAUSE": f"{base}/p/{one(Purpose.pause)}",
        "UNSUBSCRIBE": f"{base}/u/{one(Purpose.unsubscribe)}",
        "SCHEDULE": f"{base}/t/{one(Purpose.schedule)}",
    }
    for i in range(options):
        values[f"ANSWER-{i}"] = f"{base}/a/{nth(Purpose.answer, i)}"
    for i in range(reviews):
        values[f"REVIEW-{i}"] = f"{base}/v/{nth(Purpose.review, i)}"
    for i in range(links):
        values[f"LINK-{i}"] = f"{base}/c/{nth(Purpose.click, i)}"
    return values
