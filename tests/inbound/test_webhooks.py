"""ESP webhooks at the real web app over HTTP: each provider's check, and forgeries change nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from support import SmtpHandler, serving, utc
from support_inbound import db_rows, send_first_lessons, statuses

from drip.db import make_engine
from drip.inbound.webhooks import sns_signed_text
from drip.web import create_app

NOW = utc(2026, 12, 15, 9, 0)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:drip-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
CONFIRM_URL = f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
POSTMARK_AUTH = "drip-hooks:postmark-pass-0123456789"


@pytest.fixture
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def site(
    tmp_path: Path,
    db_url: str,
    smtp: tuple[SmtpHandler, int],
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> Iterator[tuple[str, dict[str, Any]]]:
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    people = ["mg@corp.example", "sg@corp.example", "pm@corp.example", "ses@corp.example"]
    settings, sent = send_first_lessons(
        tmp_path, db_url, smtp[1], people,
        mailgun_signing_key=MAILGUN_KEY, sendgrid_webhook_key=base64.b64encode(public).decode(),
        postmark_webhook_auth=POSTMARK_AUTH, ses_topic_arn=TOPIC,
    )  # fmt: skip
    fetched: list[str] = []

    def fetch(url: str) -> bytes:  # Amazon's hosts are out of reach in tests
        fetched.append(url)
        if url.startswith(CONFIRM_URL) and "Token=down" in url:
            raise OSError("connection refused")
        return sns_key[1] if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    engine = make_engine(db_url)
    app = create_app(engine, settings, clock=lambda: NOW, fetch=fetch)
    with serving(app) as base:
        yield base, {"sent": sent, "fetched": fetched}
    engine.dispose()


def mailgun_body(email: str, key: str = MAILGUN_KEY, event_id: str = "mg-1") -> bytes:
    timestamp, token = str(int(NOW.timestamp())), "a" * 50
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {"id": event_id, "event": "failed", "severity": "permanent",
                       "recipient": email,
                       "delivery-status": {"code": 550, "description": "5.1.1 mailbox does not exist"}},
    }).encode()  # fmt: skip


def test_mailgun_bounce_once_and_a_forged_one_is_a_404(
    site: tuple[str, dict[str, Any]], db_url: str
) -> None:
    base, _ = site
    forged = mailgun_body("mg@corp.example", key="not-the-key-0123456789")
    response = httpx.post(f"{base}/hooks/mailgun", content=forged)
    assert response.status_code == 404
    assert "This link is not valid" in response.text  # the same page a forged token gets
    assert statuses(db_url)["mg@corp.example"] == "active"
    for _ in range(2):  # Mailgun retries: the second delivery of the event changes nothing
        assert (
            httpx.post(f"{base}/hooks/mailgun", content=mailgun_body("mg@corp.example")).status_code
            == 200
        )
    assert statuses(db_url)["mg@corp.example"] == "bounced"
    assert db_rows(db_url, "SELECT count(*) FROM event WHERE kind = 'bounce'") == [(1,)]
    assert db_rows(db_url, "SELECT email, source FROM suppression") == [
        ("mg@corp.example", "bounce")
    ]


def test_sendgrid_spam_report_unsubscribes_and_a_changed_body_is_refused(
    site: tuple[str, dict[str, Any]], db_url: str, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    base, _ = site
    body = json.dumps(
        [{"email": "sg@corp.example", "event": "spamreport", "sg_event_id": "sg-1"}]
    ).encode()
    timestamp = str(int(NOW.timestamp()))
    signature = base64.b64encode(
        sendgrid_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    )
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
               "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}  # fmt: skip
    changed = body.replace(b"sg@corp.example", b"pm@corp.example")
    assert httpx.post(f"{base}/hooks/sendgrid", content=changed, headers=headers).status_code == 404
    assert httpx.post(f"{base}/hooks/sendgrid", content=body).status_code == 404
    assert set(statuses(db_url).values()) == {"active"}
    assert httpx.post(f"{base}/hooks/sendgrid", content=body, headers=headers).status_code == 200
    assert statuses(db_url)["sg@corp.example"] == "unsubscribed"
    assert db_rows(db_url, "SELECT email, source FROM suppression") == [
        ("sg@corp.example", "complaint")
    ]


def test_postmark_needs_its_credentials(site: tuple[str, dict[str, Any]], db_url: str) -> None:
    base, _ = site
    body = json.dumps({"RecordType": "Bounce", "Type": "HardBounce", "ID": 42,
                       "Email": "pm@corp.example", "Description": "The server was unable to deliver"}).encode()  # fmt: skip
    assert (
        httpx.post(f"{base}/hooks/postmark", content=body, auth=("drip-hooks", "guess")).status_code
        == 404
    )
    assert statuses(db_url)["pm@corp.example"] == "active"
    user, password = POSTMARK_AUTH.split(":")
    assert (
        httpx.post(f"{base}/hooks/postmark", content=body, auth=(user, password)).status_code == 200
    )
    assert statuses(db_url)["pm@corp.example"] == "bounced"


def sns_message(key: rsa.RSAPrivateKey, notice: dict[str, Any], **changes: str) -> dict[str, Any]:
    message = {
        "Type": "Notification", "MessageId": "8c1b-ses-1", "TopicArn": TOPIC,
        "Message": json.dumps(notice), "Timestamp": "2026-12-15T09:00:00.000Z",
        "SignatureVersion": "1", "SigningCertURL": CERT_URL,
    }  # fmt: skip
    message["Signature"] = base64.b64encode(
        key.sign(sns_signed_text(message), padding.PKCS1v15(), hashes.SHA1())
    ).decode()
    message.update(changes)
    return message


def test_ses_through_sns_is_checked_against_amazons_certificate(
    site: tuple[str, dict[str, Any]], db_url: str, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    base, state = site
    lesson = state["sent"]["ses@corp.example"]
    notice = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": "ses@corp.example"}],
                      "complaintFeedbackType": "abuse"},
        "mail": {"commonHeaders": {"messageId": lesson.message_id}},
    }  # fmt: skip
    key, _ = sns_key
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forgeries = [
        sns_message(key, notice, SigningCertURL="https://evil.example.com/cert.pem"),
        sns_message(key, notice, TopicArn="arn:aws:sns:eu-west-1:999999999999:other"),
        sns_message(other_key, notice),
        sns_message(key, notice, Message=json.dumps({**notice, "complaint": {
            "complainedRecipients": [{"emailAddress": "mg@corp.example"}]}})),
    ]  # fmt: skip
    for forged in forgeries:
        assert httpx.post(f"{base}/hooks/ses", json=forged).status_code == 404
    assert set(statuses(db_url).values()) == {"active"}
    assert "https://evil.example.com/cert.pem" not in state["fetched"]
    assert httpx.post(f"{base}/hooks/ses", json=sns_message(key, notice)).status_code == 200
    assert statuses(db_url)["ses@corp.example"] == "unsubscribed"
    assert db_rows(db_url, "SELECT email, source FROM suppression") == [
        ("ses@corp.example", "complaint")
    ]


def test_an_sns_subscription_is_confirmed_once_its_signature_holds(
    site: tuple[str, dict[str, Any]], sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    """SNS's first message asks for its SubscribeURL to be opened: drip opens it when the
    message is signed for the configured topic and the link is on an SNS host, never else."""
    base, state = site
    key, _ = sns_key

    def confirmation(signer: rsa.RSAPrivateKey, url: str) -> dict[str, Any]:
        message = {
            "Type": "SubscriptionConfirmation", "MessageId": "c-1", "Token": "t",
            "TopicArn": TOPIC, "Message": "You have chosen to subscribe...",
            "SubscribeURL": url, "Timestamp": "2026-12-15T09:00:00.000Z",
            "SignatureVersion": "1", "SigningCertURL": CERT_URL,
        }  # fmt: skip
        message["Signature"] = base64.b64encode(
            signer.sign(sns_signed_text(message), padding.PKCS1v15(), hashes.SHA1())
        ).decode()
        return message

    good = f"{CONFIRM_URL}&Token=abc"
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        confirmation(other_key, good),  # not signed by SNS
        confirmation(key, "https://evil.example.com/confirm"),  # signed, but not an SNS host
        confirmation(key, good.replace("https:", "http:")),
    ]
    for message in refused:
        assert httpx.post(f"{base}/hooks/ses", json=message).status_code == 404
    assert [u for u in state["fetched"] if u != CERT_URL] == []
    answer = httpx.post(f"{base}/hooks/ses", json=confirmation(key, good))
    assert (answer.status_code, answer.text) == (200, "subscription confirmed")
    assert [u for u in state["fetched"] if u != CERT_URL] == [good]
    # SNS cannot be reached: the link is logged for a person to open, and SNS tries again.
    down = httpx.post(f"{base}/hooks/ses", json=confirmation(key, f"{CONFIRM_URL}&Token=down"))
    assert down.status_code == 202


def test_an_unknown_provider_is_a_404(site: tuple[str, dict[str, Any]]) -> None:
    base, _ = site
    assert httpx.post(f"{base}/hooks/sparkpost", content=b"{}").status_code == 404
    assert httpx.get(f"{base}/hooks/mailgun").status_code == 405
