"""DKIM signatures (RFC 6376, relaxed/relaxed) made in drip, opt-in.

The key is loaded once and the signed header list is fixed, so per message only the body hash
and one private-key operation are left; dkimpy checks the result in the tests."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from drip.config import Settings
from drip.errors import ConfigError
from drip.mail.message import sender_domain

CRLF = b"\r\n"
WSP_RUN = re.compile(rb"[ \t]+")
# RFC 8058 asks for List-Unsubscribe and List-Unsubscribe-Post to be signed; To, MIME-Version and
# Content-Type keep a signed message from being re-addressed or re-wrapped.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


def canonical_body(body: bytes) -> bytes:
    """The relaxed body canonicalization: trailing blanks and empty lines gone, runs of blanks one."""
    # Whole-body passes: quoted-printable lessons rarely hold a run of blanks, so usually only
    # the end of the body changes.
    if b"\t" in body or b"  " in body:
        body = WSP_RUN.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n").rstrip(b"\r\n").rstrip(b" ")
    return body + CRLF if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    """The relaxed header canonicalization of one field, without its line end."""
    value = WSP_RUN.sub(b" ", value.replace(CRLF, b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _fields(head: bytes) -> dict[bytes, tuple[bytes, bytes]]:
    """The header fields of a message by lower-cased name (the last one of a name wins)."""
    found: dict[bytes, tuple[bytes, bytes]] = {}
    name, value = b"", b""
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t") and name:
            value += CRLF + line
            continue
        if name:
            found[name.lower()] = (name, value)
        name, _, value = line.partition(b":")
    if name:
        found[name.lower()] = (name, value)
    return found


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for one domain and selector with a key loaded once."""

    domain: str
    selector: str
    key: rsa.RSAPrivateKey

    @classmethod
    def load(cls, path: Path, selector: str, domain: str) -> DkimSigner:
        """Read the PEM private key, naming the file and the fix when it cannot be used."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"DRIP_DKIM_KEY has value '{path}': cannot read it ({exc.strerror}); name a PEM file"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(
                f"DRIP_DKIM_KEY has value '{path}': not an unencrypted PEM private key; "
                "make one with: openssl genrsa -out dkim.pem 2048"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(
                f"DRIP_DKIM_KEY has value '{path}': DKIM needs an RSA key; "
                "make one with: openssl genrsa -out dkim.pem 2048"
            )
        if key.key_size < 1024:
            raise ConfigError(
                f"DRIP_DKIM_KEY has value '{path}': a {key.key_size}-bit key is refused by "
                "receivers; use 2048 bits"
            )
        return cls(domain.lower(), selector, key)

    def public_record(self) -> str:
        """The TXT record to publish at SELECTOR._domainkey.DOMAIN."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def sign(self, message: bytes, at: datetime) -> bytes:
        """The message with a DKIM-Signature header in front; `at` is its signing time."""
        head, _, body = message.partition(CRLF + CRLF)
        fields = _fields(head)
        names = [n for n in SIGNED_HEADERS if n in fields]
        body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
        value = (
            f" v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain};"
            f" s={self.selector}; t={int(at.timestamp())};\r\n"
            f"\th={':'.join(n.decode() for n in names)};\r\n"
            f"\tbh={body_hash};\r\n\tb="
        ).encode("ascii")
        signed = b"".join(canonical_header(*fields[n]) + CRLF for n in names)
        signed += canonical_header(b"DKIM-Signature", value)
        signature = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        b64 = base64.b64encode(signature)
        folded = b"\r\n\t".join(b64[i : i + 72] for i in range(0, len(b64), 72))
        return b"DKIM-Signature:" + value + folded + CRLF + message


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer the settings ask for, or None when DRIP_DKIM_KEY is not set."""
    if not settings.dkim_key:
        return None
    domain = settings.dkim_domain or sender_domain(settings.sender)
    return DkimSigner.load(Path(settings.dkim_key), settings.dkim_selector, domain)
