"""Build RFC 5322 message bytes: the MIME is folded once per lesson, recipients are filled in fast."""

from __future__ import annotations

import binascii
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr

from drip.errors import HeaderError
from drip.render import RenderedLesson

ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
FORBIDDEN = ("\r", "\n", "\x00")
ATEXT_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*$")
PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
CRLF = "\r\n"


def check_header_value(header: str, value: str) -> str:
    """Refuse a header value holding CR, LF or NUL, raw or inside an RFC 2047 encoded word."""
    if any(c in value for c in FORBIDDEN):
        raise HeaderError(f"{header} {value!r} contains a line break; remove it (header injection)")
    for charset, encoding, data in ENCODED_WORD.findall(value):
        try:
            raw = (
                binascii.a2b_base64(data + "=" * (-len(data) % 4))
                if encoding in "bB"
                else binascii.a2b_qp(data.encode("ascii"), header=True)
            )
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise HeaderError(f"{header} {value!r} holds a broken encoded word; remove it") from None
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


def sender_domain(sender: str) -> str:
    """The domain of the From address, for Message-IDs."""
    return parseaddr(sender)[1].rpartition("@")[2] or "drip.localhost"


def new_message_id(domain: str) -> str:
    """A fresh Message-ID on the sender's domain."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def _qp(text: str) -> str:
    data = text.replace("\r\n", "\n").replace("\n", CRLF).encode("utf-8")
    return binascii.b2a_qp(data, istext=True).decode("ascii")


@dataclass(frozen=True)
class MessageTemplate:
    """One lesson's message, folded once; build() adds a recipient's headers and links."""

    rendered: RenderedLesson
    sender: str
    envelope_from: str
    head: str
    boundary: str

    @classmethod
    def of(cls, rendered: RenderedLesson, sender: str) -> MessageTemplate:
        name, address = parseaddr(sender)
        from_header = format_address(name, address)
        subject = check_header_value("Subject", rendered.subject)
        boundary = "==drip_" + hashlib.sha256(
            (rendered.lesson.content_hash + rendered.version).encode()
        ).hexdigest()[:24] + "=="
        head = CRLF.join(
            [
                f"From: {from_header}",
                f"Subject: {encode_unstructured(subject)}",
                "MIME-Version: 1.0",
                f'Content-Type: multipart/alternative; boundary="{boundary}"',
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            ]
        )
        return cls(rendered, sender, address, head, boundary)

    def build(
        self,
        *,
        to_name: str,
        to_address: str,
        date: datetime,
        message_id: str,
        values: Mapping[str, str],
    ) -> bytes:
        """The message bytes for one recipient (CRLF line ends, 7-bit)."""
        to_header = format_address(to_name, to_address)
        check_header_value("Message-ID", message_id)
        unsubscribe = check_header_value("List-Unsubscribe", values["UNSUBSCRIBE"])
        for key, value in values.items():
            if any(c in value for c in FORBIDDEN):
                raise HeaderError(f"value {key} {value!r} contains a line break; remove it")
        html, text = self.rendered.personalize(values)
        b = self.boundary
        return CRLF.join(
            [
                f"To: {to_header}",
                self.head,
                f"Date: {format_datetime(date)}",
                f"Message-ID: {message_id}",
                f"List-Unsubscribe: <{unsubscribe}>",
                "",
                f"--{b}",
                'Content-Type: text/plain; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable",
                "",
                _qp(text),
                f"--{b}",
                'Content-Type: text/html; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable",
                "",
                _qp(html),
                f"--{b}--",
                "",
            ]
        ).encode("ascii")
