"""Build RFC 5322 message bytes: the MIME is folded once per lesson, recipients are filled in fast."""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from markupsafe import escape

from drip.errors import HeaderError
from drip.mail.render import Part, RenderedLesson

ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
FORBIDDEN = ("\r", "\n", "\x00")
LINE_BREAK = re.compile("[\r\n\x00]")
ATEXT_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*$")
PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
CRLF = "\r\n"


def check_header_value(header: str, value: str) -> str:
    """Refuse a header value holding CR, LF or NUL, raw or inside an RFC 2047 encoded word."""
    if any(c in value for c in FORBIDDEN):
        raise HeaderError(f"{header} {value!r} contains a line break; remove it (header injection)")
    for _charset, encoding, data in ENCODED_WORD.findall(value):
        try:
            raw = (
                binascii.a2b_base64(data + "=" * (-len(data) % 4))
                if encoding in "bB"
                else binascii.a2b_qp(data.encode("ascii"), header=True)
            )
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise HeaderError(
                f"{header} {value!r} holds a broken encoded word; remove it"
            ) from None
        if any(c.encode() in raw for c in FORBIDDEN):
            raise HeaderError(
                f"{header} {value!r} hides a line break in an encoded word; remove it (header injection)"
            )
    return value


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded words of at most 75 characters, folded with CRLF SP."""
    words, chunk = [], ""
    for char in text:
        if len((chunk + char).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += char
    if chunk:
        words.append(chunk)
    encoded = [
        "=?utf-8?b?" + binascii.b2a_base64(w.encode("utf-8"), newline=False).decode("ascii") + "?="
        for w in words
    ]
    return (CRLF + " ").join(encoded)


def encode_phrase(name: str) -> str:
    """A display name as an atom run, a quoted string, or encoded words."""
    if not name:
        return ""
    if not name.isascii() or "=?" in name or not name.isprintable() or len(name) > 60:
        return _encoded_words(name)
    if ATEXT_SAFE.match(name) and not PHRASE_SPECIALS.search(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_unstructured(text: str) -> str:
    """An unstructured value (Subject): plain ASCII folded at spaces, else encoded words."""
    if not text.isascii() or "=?" in text or not text.isprintable():
        return _encoded_words(text)
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > 66:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return (CRLF + " ").join(lines)


def format_address(name: str, address: str) -> str:
    """A mailbox header value, refusing anything that could inject a header."""
    check_header_value("name", name)
    check_header_value("address", address)
    if not ADDRESS.match(address):
        raise HeaderError(f"address {address!r} is not a plain ASCII e-mail address")
    phrase = encode_phrase(name.strip())
    return f"{phrase} <{address}>" if phrase else address


def feedback_id(campaign: str, item: str, kind: str = "lesson") -> str:
    """A Feedback-ID value (Gmail's Postmaster Tools form: item:campaign:kind:sender)."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", p)[:40] or "-" for p in (item, campaign, kind)]
    return ":".join([*parts, "drip"])


def automatic_headers(feedback: str) -> list[str]:
    """Headers that mark a message as machine-sent: no out-of-office answers, a campaign tag."""
    return [
        "Auto-Submitted: auto-generated",
        "X-Auto-Response-Suppress: OOF, AutoReply",
        f"Feedback-ID: {feedback}",
    ]


def sender_domain(sender: str) -> str:
    """The domain of the From address, for Message-IDs."""
    return parseaddr(sender)[1].rpartition("@")[2] or "drip.localhost"


def new_message_id(domain: str) -> str:
    """A fresh Message-ID on the sender's domain: the time in microseconds, never falling
    within a process, then 128 random bits (which alone make it unique and unguessable).

    The time first puts the new deliveries' ids side by side at one end of the unique index on
    message_id, as a serial key's would be. With random ids alone, each of a pass's new
    deliveries went into a page of its own among those of every earlier delivery: written to
    the WAL, then checkpointed, and read from disk once the index outgrows the cache."""
    global _last_stamp
    stamp = _last_stamp = max(time.time_ns() // 1000, _last_stamp + 1)
    return f"<{stamp:014x}.{secrets.token_hex(16)}@{domain}>"


_last_stamp = 0  # the last Message-ID's time: a clock set back does not undo the order


class DotSafe(bytes):
    """Message bytes in which no line starts with ".": SMTP sends them as they are, without
    scanning them for the dot-stuffing of RFC 5321 4.5.2 (MessageTemplate.build writes a "."
    that would start a quoted-printable line as "=2E", which decodes the same)."""

    __slots__ = ()


def _qp(text: str) -> str:
    data = text.replace("\r\n", "\n").encode("utf-8")
    # b2a_qp ends lines (and soft breaks) with LF when the input has no CRLF; use CRLF throughout.
    return binascii.b2a_qp(data, istext=True).decode("ascii").replace("\n", CRLF)


def _dot_safe(encoded: str) -> str:
    """Quoted-printable text (each piece starts a line) with no line starting with "." (it
    becomes "=2E"), every line still within 76 characters."""
    if not encoded.startswith(".") and CRLF + "." not in encoded:
        return encoded
    lines = []
    for line in encoded.split(CRLF):
        while line.startswith("."):
            line = "=2E" + line[1:]
            if len(line) <= 76:
                break
            cut = 75
            while "=" in line[cut - 2 : cut]:  # never split an =XX escape
                cut -= 1
            lines.append(line[:cut] + "=")
            line = line[cut:]
        lines.append(line)
    return CRLF.join(lines)


SOFT_BREAK = "=" + CRLF
# Printable ASCII but "=", not starting with "." or a space nor ending with a space, short
# enough for one QP line.
HTML_SPECIAL = re.compile("[&<>\"']")  # what markupsafe.escape changes
QP_SAFE = re.compile(r"[!-\-/-<>-~](?:[ !-<>-~]{0,73}[!-<>-~])?")


def _soft_end(encoded: str) -> str:
    """End quoted-printable text with a soft line break, keeping every line within 76 characters."""
    head, _, last = encoded.rpartition(CRLF)
    if len(last) > 75:
        cut = 70
        while "=" in last[cut - 2 : cut]:  # never split an =XX escape
            cut -= 1
        last = last[:cut] + SOFT_BREAK + last[cut:]
    return (head + CRLF if head or encoded.startswith(CRLF) else "") + last + SOFT_BREAK


@dataclass(frozen=True)
class EncodedPart:
    """A rendered part quoted-printable encoded once; recipients' values are encoded and spliced in
    between soft line breaks, so per message only a few short values are encoded."""

    literals: tuple[str, ...]
    keys: tuple[str, ...]
    escape_html: bool

    @classmethod
    def of(cls, part: Part, escape_html: bool) -> EncodedPart:
        pieces = part.pieces
        literals = [_qp(p) for p in pieces[0::2]]
        literals = [_soft_end(x) for x in literals[:-1]] + [literals[-1]]
        return cls(tuple(_dot_safe(x) for x in literals), tuple(pieces[1::2]), escape_html)

    def fill(self, values: Mapping[str, str], encoded: dict[str, str] | None = None) -> str:
        """The encoded part for one recipient; `encoded` remembers each value's encoding for
        the other part of the same message (a value without HTML's special characters is
        encoded the same in both)."""
        memo: dict[str, str] = {} if encoded is None else encoded
        out = [self.literals[0]]
        for key, literal in zip(self.keys, self.literals[1:], strict=True):
            piece = memo.get(key)
            if piece is None:
                value = values[key]
                if HTML_SPECIAL.search(value):  # the parts differ: not remembered
                    piece = _encoded(str(escape(value)) if self.escape_html else value)
                else:
                    piece = memo[key] = _encoded(value)
            out.append(piece)
            out.append(literal)
        return "".join(out)


def _encoded(value: str) -> str:
    if QP_SAFE.fullmatch(value):  # signed URLs and plain names need no encoding
        return value + SOFT_BREAK
    return _dot_safe(_soft_end(_qp(value))) if value else ""


@lru_cache(maxsize=256)
def _date_header(date: datetime, _zone: tzinfo | None) -> str:
    # A batch's deliveries are opened at one moment: one Date header, formatted once. The zone
    # is part of the key: one instant in two zones is equal, but written differently.
    return format_datetime(date)


@dataclass(frozen=True)
class MessageTemplate:
    """One lesson's message, folded once; build() adds a recipient's headers and links."""

    rendered: RenderedLesson
    sender: str
    envelope_from: str
    head: str
    boundary: str
    text: EncodedPart
    html: EncodedPart

    @classmethod
    def of(cls, rendered: RenderedLesson, sender: str, reply_to: str = "") -> MessageTemplate:
        """Fold the lesson's message once; replies go to `reply_to`, by default the sender."""
        name, address = parseaddr(sender)
        from_header = format_address(name, address)
        reply_header = format_address(*parseaddr(reply_to)) if reply_to else from_header
        subject = check_header_value("Subject", rendered.subject)
        boundary = (
            "==drip_"
            + hashlib.sha256(
                (rendered.lesson.content_hash + rendered.version).encode()
            ).hexdigest()[:24]
            + "=="
        )
        head = CRLF.join(
            [
                f"From: {from_header}",
                f"Reply-To: {reply_header}",
                f"Subject: {encode_unstructured(subject)}",
                "MIME-Version: 1.0",
                f'Content-Type: multipart/alternative; boundary="{boundary}"',
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                *automatic_headers(feedback_id(rendered.course.slug, rendered.lesson.slug)),
            ]
        )
        return cls(
            rendered,
            sender,
            address,
            head,
            boundary,
            EncodedPart.of(rendered.text, escape_html=False),
            EncodedPart.of(rendered.html, escape_html=True),
        )

    def build(
        self,
        *,
        to_name: str,
        to_address: str,
        date: datetime,
        message_id: str,
        values: Mapping[str, str],
    ) -> DotSafe:
        """The message bytes for one recipient (CRLF line ends, 7-bit, no line starting with
        ".")."""
        to_header = format_address(to_name, to_address)
        check_header_value("Message-ID", message_id)
        unsubscribe = check_header_value("List-Unsubscribe", values["UNSUBSCRIBE"])
        if LINE_BREAK.search("".join(values.values())):
            key, value = next((k, v) for k, v in values.items() if LINE_BREAK.search(v))
            raise HeaderError(f"value {key} {value!r} contains a line break; remove it")
        b = self.boundary
        encoded: dict[str, str] = {}
        return DotSafe(
            CRLF.join(
                [
                    f"To: {to_header}",
                    self.head,
                    f"Date: {_date_header(date, date.tzinfo)}",
                    f"Message-ID: {message_id}",
                    f"List-Unsubscribe: <{unsubscribe}>",
                    "",
                    f"--{b}",
                    'Content-Type: text/plain; charset="utf-8"',
                    "Content-Transfer-Encoding: quoted-printable",
                    "",
                    self.text.fill(values, encoded),
                    f"--{b}",
                    'Content-Type: text/html; charset="utf-8"',
                    "Content-Transfer-Encoding: quoted-printable",
                    "",
                    self.html.fill(values, encoded),
                    f"--{b}--",
                    "",
                ]
            ).encode("ascii")
        )
