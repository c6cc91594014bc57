"""Signed webhooks of the hand-counted cohort to a receiver that checks every signature with the
snippet the README documents."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from reports.test_queries import Clock, build_cohort
from reports.test_queries import web_server as web_server  # the fixture, re-exported
from support import ROOT, SmtpHandler, cli_env, free_port, make_settings, run_drip

from drip.db import make_engine
from drip.models import OUTBOX as O
from drip.outgoing import OutboxConfig, enable, namespace_for

SECRET = "webhook-secret-0123456789abcdef"
ACTIVITY_BASE = "https://learn.example.com/xapi"
AFTER = datetime.fromisoformat("2026-03-06T00:00:00+00:00")


def readme_verifier() -> Callable[..., bool]:
    """The verification snippet exactly as the README shows it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?def verify_drip_signature.*?)```", readme, re.S)
    assert code is not None, "the README lost its webhook verification snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify_drip_signature"]  # type: ignore[no-any-return]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    accepted: bool


@dataclass
class Receiver:
    """A company's webhook endpoint: it checks each signature against its own clock."""

    url: str
    now: float = 0.0
    replies: list[int] = field(default_factory=list)  # scripted answers to genuine deliveries
    deliveries: list[Delivery] = field(default_factory=list)

    def accepted(self) -> list[dict[str, Any]]:
        return [json.loads(d.body) for d in self.deliveries if d.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    verify = readme_verifier()
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks/drip")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            genuine = verify(SECRET, self.headers.get("Drip-Signature", ""), body, now=state.now)
            with lock:
                code = (state.replies.pop(0) if state.replies else 200) if genuine else 401
                state.deliveries.append(Delivery(dict(self.headers), body, code == 200))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """The database with the webhook outbox on, as `drip run` and `drip serve` open it."""
    eng = enable(make_engine(db_url), OutboxConfig(("webhook",), namespace_for(ACTIVITY_BASE)))
    yield eng
    eng.dispose()


def test_every_event_arrives_signed_once_and_forgeries_and_replays_are_refused(
    engine: sa.Engine,
    tmp_path: Path,
    db_url: str,
    smtp: tuple[SmtpHandler, int],
    web_server: tuple[str, Clock],
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    build_cohort(engine, tmp_path, db_url, smtp, web_server, finish=True)
    settings = make_settings(
        tmp_path, db_url, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET,
        XAPI_ACTIVITY_BASE=ACTIVITY_BASE,
    )  # fmt: skip
    env = cli_env(settings)
    receiver.now = AFTER.timestamp()
    receiver.replies = [503]  # the receiver is briefly down for the first delivery

    down = run_drip(["xapi", "push", "--now", AFTER.isoformat()], env)
    assert down.returncode == 1
    assert "webhook answered 503 Service Unavailable" in down.stderr
    receiver.now += 60
    later = (AFTER + timedelta(minutes=1)).isoformat()
    pushed = run_drip(["xapi", "push", "--now", later], env)
    assert pushed.returncode == 0, pushed.stderr
    assert "webhook: 18 sent" in pushed.stdout
    # A webhook's URL can be its secret (Slack's and Teams' are): nothing logs it, not even the
    # HTTP library's request lines.
    assert receiver.url.removeprefix("http://") not in caplog.text

    # 19 POSTs, all genuine; the one that met the 503 came again with the same id.
    assert len(receiver.deliveries) == 19
    assert all(d.headers["Drip-Signature"].startswith("t=") for d in receiver.deliveries)
    first, retry = receiver.deliveries[0], receiver.deliveries[1]
    assert not first.accepted and retry.accepted
    assert first.headers["Drip-Event-Id"] == retry.headers["Drip-Event-Id"]
    bodies = receiver.accepted()
    with engine.connect() as conn:
        queued = set(conn.execute(sa.select(O.c.key)).scalars())
    assert sorted(b["id"] for b in bodies) == sorted(queued)  # each event once
    assert len(queued) == 18
    eve = [
        b for b in bodies if b["person"]["email"] == "eve@example.com" and b["event"] == "answer"
    ]
    assert [b["answer"]["correct"] for b in sorted(eve, key=lambda b: b["at"])] == [False, True]
    assert not any(
        b["person"]["email"] == "bob@example.com" and b["event"] == "open" for b in bodies
    )

    # A forgery: eve's wrong answer turned right, sent with the genuine header.
    wrong = next(d for d in receiver.deliveries if d.accepted and b'"correct":false' in d.body)
    forged = wrong.body.replace(b'"correct":false', b'"correct":true')
    refused = httpx.post(
        receiver.url, content=forged, headers={"Drip-Signature": wrong.headers["Drip-Signature"]}
    )
    assert refused.status_code == 401
    # Signed with a key that is not the shared secret.
    stamp = int(receiver.now)
    mac = hmac.new(b"not-the-secret-0123456789", f"{stamp}.".encode() + forged, hashlib.sha256)
    assert httpx.post(receiver.url, content=forged,
                      headers={"Drip-Signature": f"t={stamp},v1={mac.hexdigest()}"}).status_code == 401  # fmt: skip
    # A replay: the genuine delivery sent again ten minutes later.
    receiver.now += 600
    replayed = httpx.post(
        receiver.url,
        content=wrong.body,
        headers={"Drip-Signature": wrong.headers["Drip-Signature"]},
    )
    assert replayed.status_code == 401
    assert len(receiver.accepted()) == 18
