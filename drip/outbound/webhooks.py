"""Signed webhooks: one JSON POST per event, with `Drip-Signature: t=TIMESTAMP,v1=HMAC` where
the HMAC-SHA256 covers TIMESTAMP + "." + body; the README's snippet is the receiver's check
(and tests/outbound/test_webhooks.py runs it)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from drip.outbound.outbox import Item

HEADER = "Drip-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Drip-Signature header value for a body sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def payload(item: Item) -> dict[str, Any]:
    """The JSON body of one event's webhook."""
    body: dict[str, Any] = {
        "id": item.key,
        "event": item.kind,
        "at": item.at.astimezone(UTC).isoformat(),
        "verdict": item.verdict,
        "person": {
            "id": item.person_id,
            "email": item.email,
            "name": item.name,
            "attributes": item.attributes,
        },
        "cohort": item.cohort,
        "course": item.course,
        "lesson": (
            {"slug": item.lesson_slug, "title": item.lesson_title, "position": item.position}
            if item.lesson_slug
            else None
        ),
    }
    if item.option is not None:
        body["answer"] = {"option": item.option, "correct": item.correct}
    return body


@dataclass
class WebhookTarget:
    """An HTTP endpoint that receives each event as a signed JSON POST."""

    url: str
    secret: str
    name: str = "webhook"
    already: frozenset[int] = frozenset({409})  # a receiver that dedups by id may say so

    def send(self, client: httpx.Client, item: Item, now: datetime) -> httpx.Response:
        """POST the item's payload, signed with the time of this attempt."""
        body = json.dumps(payload(item), separators=(",", ":"), ensure_ascii=False).encode()
        return client.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                HEADER: sign(self.secret, int(now.timestamp()), body),
                "Drip-Event-Id": item.key,
            },
        )
