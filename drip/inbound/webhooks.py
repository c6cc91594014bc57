"""Bounce and complaint webhooks of e-mail services, each checked by the provider's own scheme:
Amazon SES through SNS (an X.509 signature), Postmark (HTTP Basic credentials), SendGrid (an
ECDSA signature) and Mailgun (an HMAC). Anything that fails its check raises WebhookRejected
before a byte of it is believed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from drip.errors import DripError
from drip.inbound.classify import Kind

FRESH = timedelta(minutes=15)  # a signed timestamp older than this is a replay
SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


class WebhookRejected(DripError):
    """A webhook that is not configured, or that fails its provider's check."""


class WebhookConfirm(DripError):
    """A genuine SNS subscription request: someone has to open its URL once."""


@dataclass(frozen=True)
class Report:
    """One bounce or complaint an e-mail service reports."""

    event_id: str
    kind: Kind
    email: str
    reason: str
    status: str = ""
    message_id: str = ""  # the lesson's Message-ID, when the provider passes it on


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("not JSON") from None


def _message_id(value: object) -> str:
    text = str(value or "").strip()
    if text and not text.startswith("<"):
        text = f"<{text}>"
    return text


# -- Mailgun -----------------------------------------------------------------------------------


def mailgun(body: bytes, signing_key: str, now: datetime) -> list[Report]:
    """Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key."""
    if not signing_key:
        raise WebhookRejected("Mailgun webhooks are not configured")
    data = _json(body)
    signature = data.get("signature", {}) if isinstance(data, dict) else {}
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), str(signature.get("signature", ""))):
        raise WebhookRejected("bad Mailgun signature")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > FRESH.total_seconds():
        raise WebhookRejected("stale Mailgun timestamp")
    event = data.get("event-data", {})
    kind = {
        "failed": Kind.hard_bounce if event.get("severity") == "permanent" else Kind.soft_bounce,
        "complained": Kind.complaint,
    }.get(str(event.get("event", "")))
    if kind is None:
        return []
    status = event.get("delivery-status", {})
    headers = event.get("message", {}).get("headers", {})
    return [
        Report(
            str(event.get("id", token)),
            kind,
            str(event.get("recipient", "")).lower(),
            str(status.get("description") or status.get("message") or event.get("reason", ""))[
                :300
            ],
            str(status.get("code", "")),
            _message_id(headers.get("message-id")),
        )
    ]


# -- SendGrid ----------------------------------------------------------------------------------


def sendgrid(
    body: bytes, headers: Mapping[str, str], public_key: str, now: datetime
) -> list[Report]:
    """SendGrid's Signed Event Webhook: ECDSA P-256 over timestamp + body."""
    if not public_key:
        raise WebhookRejected("SendGrid webhooks are not configured")
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError, AssertionError, binascii.Error):
        raise WebhookRejected("bad SendGrid signature") from None
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > FRESH.total_seconds():
        raise WebhookRejected("stale SendGrid timestamp")
    reports = []
    for event in _json(body) if isinstance(_json(body), list) else []:
        name = str(event.get("event", ""))
        if name in ("bounce", "dropped") and event.get("type") != "blocked":
            kind = Kind.hard_bounce
        elif name in ("deferred", "bounce"):
            kind = Kind.soft_bounce
        elif name == "spamreport":
            kind = Kind.complaint
        else:
            continue
        reports.append(
            Report(
                str(event.get("sg_event_id", "")),
                kind,
                str(event.get("email", "")).lower(),
                str(event.get("reason") or event.get("response") or name)[:300],
                str(event.get("status", "")),
                _message_id(event.get("smtp-id")),
            )
        )
    return reports


# -- Postmark ----------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}


def postmark(body: bytes, authorization: str, credentials: str) -> list[Report]:
    """Postmark: the user:password set in the webhook's URL, sent as HTTP Basic."""
    if not credentials:
        raise WebhookRejected("Postmark webhooks are not configured")
    expected = "Basic " + base64.b64encode(credentials.encode()).decode()
    if not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise WebhookRejected("bad Postmark credentials")
    data = _json(body)
    if not isinstance(data, dict):
        return []
    record = data.get("RecordType")
    if record == "SpamComplaint":
        kind = Kind.complaint
    elif record == "Bounce":
        kind = Kind.hard_bounce if data.get("Type") in POSTMARK_HARD else Kind.soft_bounce
    else:
        return []
    return [
        Report(
            str(data.get("ID", "")),
            kind,
            str(data.get("Email", "")).lower(),
            str(data.get("Description") or data.get("Details") or data.get("Type", ""))[:300],
        )
    ]


# -- Amazon SES via SNS ------------------------------------------------------------------------

SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def sns_signed_text(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs: each present field's name and value, one per line."""
    fields = SNS_FIELDS.get(str(message.get("Type")), ())
    return "".join(f"{k}\n{message[k]}\n" for k in fields if k in message).encode()


def _on_sns(url: str) -> bool:
    """Whether a URL is https on an Amazon SNS host (the only place drip fetches from)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(SNS_CERT_HOST.match(parts.hostname or ""))


def ses(body: bytes, topic_arn: str, fetch_cert: Callable[[str], bytes]) -> list[Report]:
    """SES notifications delivered by SNS: the topic, the certificate's host and its signature."""
    if not topic_arn:
        raise WebhookRejected("SES webhooks are not configured")
    message = _json(body)
    if not isinstance(message, dict) or message.get("TopicArn") != topic_arn:
        raise WebhookRejected("not the configured SNS topic")
    cert_url = str(message.get("SigningCertURL", ""))
    if not _on_sns(cert_url):
        raise WebhookRejected("the signing certificate is not Amazon SNS's")
    version = str(message.get("SignatureVersion", ""))
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
    if algorithm is None or message.get("Type") not in SNS_FIELDS:
        raise WebhookRejected("unknown SNS signature version or message type")
    try:
        key = x509.load_pem_x509_certificate(fetch_cert(cert_url)).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(
            base64.b64decode(str(message.get("Signature", ""))),
            sns_signed_text(message),
            padding.PKCS1v15(),
            algorithm,
        )
    except (InvalidSignature, ValueError, AssertionError, OSError, binascii.Error):
        raise WebhookRejected("bad SNS signature") from None
    if message["Type"] == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        if not _on_sns(url):
            raise WebhookRejected("the subscription's confirmation link is not Amazon SNS's")
        raise WebhookConfirm(url)
    notice = _json(str(message.get("Message", "")).encode())
    return ses_reports(notice, str(message.get("MessageId", "")))


def ses_reports(notice: Any, event_id: str) -> list[Report]:
    """The bounces and complaints of one SES notification (notification or event publishing)."""
    if not isinstance(notice, dict):
        return []
    kind_name = notice.get("notificationType") or notice.get("eventType")
    mail = notice.get("mail", {})
    message_id = _message_id(mail.get("commonHeaders", {}).get("messageId"))
    reports = []
    if kind_name == "Bounce":
        bounce = notice.get("bounce", {})
        kind = Kind.hard_bounce if bounce.get("bounceType") == "Permanent" else Kind.soft_bounce
        for r in bounce.get("bouncedRecipients", []):
            reason = str(r.get("diagnosticCode") or bounce.get("bounceSubType", ""))[:300]
            reports.append(Report(f"{event_id}:{r.get('emailAddress')}", kind,
                                  str(r.get("emailAddress", "")).lower(), reason,
                                  str(r.get("status", "")), message_id))  # fmt: skip
    elif kind_name == "Complaint":
        complaint = notice.get("complaint", {})
        for r in complaint.get("complainedRecipients", []):
            reason = f"complaint ({complaint.get('complaintFeedbackType', 'abuse')}) via SES"
            reports.append(Report(f"{event_id}:{r.get('emailAddress')}", Kind.complaint,
                                  str(r.get("emailAddress", "")).lower(), reason, "",
                                  message_id))  # fmt: skip
    return reports
