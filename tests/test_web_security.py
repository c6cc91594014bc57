"""The web endpoint against strangers: forged and mutated tokens, rate limits, tracebacks, tokens of another shape and key rotation."""

from __future__ import annotations

import re
import string
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import SECRET, cli_env, free_port, make_settings, serving
from test_web import BROWSER, LATER, PEW, SEND, Site, start_site
from test_web import site as site  # the fixture, re-exported

from drip.db import make_engine
from drip.tokens import Purpose, make_token
from drip.web import RateLimiter, create_app

TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~"


def test_forged_and_mutated_tokens_get_404_and_write_nothing(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    valid = {
        purpose: make_token(SECRET, purpose, delivery, *([0] if two else []))
        for purpose, two in [
            (Purpose.open, False),
            (Purpose.click, True),
            (Purpose.confirm, False),
            (Purpose.answer, True),
            (Purpose.pause, False),
            (Purpose.unsubscribe, False),
        ]
    }
    states = [
        site.enrollment(site.delivery(a))["status"] for a in ("ada@example.com", "bo@example.com")
    ]
    before = len(site.events())
    tested = []

    def mutate(token: str, position: int, char: str, how: str) -> str:
        position %= len(token)
        if how == "replace":
            return (
                token[:position] + char + token[position + 1 :]
                if token[position] != char
                else token[:position]
            )
        if how == "insert":
            return token[:position] + char + token[position:]
        return token[:position]  # truncate

    @hsettings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        purpose=st.sampled_from(sorted(valid, key=lambda p: p.value)),
        target=st.sampled_from(list(Purpose)),
        random=st.one_of(st.none(), st.text(TOKEN_CHARS, min_size=1, max_size=80)),
        position=st.integers(0, 200),
        char=st.sampled_from(TOKEN_CHARS),
        how=st.sampled_from(["replace", "insert", "truncate"]),
        post=st.booleans(),
    )
    def attempt(
        purpose: Purpose, target: Purpose, random: str | None, position: int, char: str,
        how: str, post: bool,
    ) -> None:  # fmt: skip
        token = random if random is not None else mutate(valid[purpose], position, char, how)
        if token == valid.get(target) or not token:
            return
        path = f"/{target.value}/{token}" + (".gif" if target is Purpose.open else "")
        if post and target in (Purpose.pause, Purpose.unsubscribe):
            response = site.http.post(
                path, data={"action": "pause1", "List-Unsubscribe": "One-Click"}
            )
        else:
            response = site.http.get(path, headers=BROWSER)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text
        tested.append(path)

    attempt()
    assert len(tested) > 900
    assert len(site.events()) == before
    assert states == [
        site.enrollment(site.delivery(a))["status"] for a in ("ada@example.com", "bo@example.com")
    ]


def test_rate_limit_per_token_and_per_client(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> None:
    made = start_site(tmp_path, db_url, engine)
    app = create_app(engine, made.settings, clock=lambda: LATER, token_limit=3, ip_limit=5)
    delivery = made.delivery("ada@example.com")
    with serving(app) as base, httpx.Client(base_url=base) as http:
        url = made.url(Purpose.open, delivery)
        assert [http.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert http.get(made.url(Purpose.confirm, delivery)).status_code == 200
        assert http.get(made.url(Purpose.pause, delivery)).status_code == 429
    assert [(e["kind"], e["verdict"]) for e in made.events()] == [("open", "machine")] * 3 + [
        ("confirm", "machine")  # httpx's own user agent is a script, so no open is implied
    ]


def test_the_limiter_forgets_each_window_and_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=60, max_keys=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    for key in "bcdefg":
        assert limiter.allow(key)
    assert len(limiter._counts) == 3
    now[0] = 61
    assert limiter.allow("a") and len(limiter._counts) == 1


def test_no_traceback_reaches_a_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    with serving(create_app(broken, settings)) as base, httpx.Client(base_url=base) as http:
        response = http.get(f"/o/{make_token(SECRET, Purpose.open, 1)}.gif")
        assert response.status_code == 500
        assert "Something went wrong" in response.text
        assert "Traceback" not in response.text and "no such table" not in response.text
        assert http.get("/healthz").text == "ok"
    broken.dispose()


def test_a_database_that_cannot_be_opened_answers_500_not_a_hang(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    folder = tmp_path / "moved"
    folder.mkdir()
    gone = make_engine(f"sqlite:///{folder / 'drip.db'}")
    folder.rmdir()  # the file can no longer be opened, let alone created
    with serving(create_app(gone, settings)) as base, httpx.Client(base_url=base) as http:
        response = http.get(f"/o/{make_token(SECRET, Purpose.open, 1)}.gif", timeout=10)
        assert response.status_code == 500
        assert "Something went wrong" in response.text and "Traceback" not in response.text
    gone.dispose()


def test_the_factory_serves_from_the_environment(site: Site) -> None:
    port = free_port()
    env = cli_env(site.settings)
    command = [sys.executable, "-m", "uvicorn", "drip.web:asgi", "--factory", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        assert response.text == "ok"
        delivery = site.delivery("ada@example.com")
        url = f"http://127.0.0.1:{port}" + site.url(Purpose.click, delivery, 0)
        assert httpx.get(url).headers["location"] == PEW
    finally:
        server.terminate()
        server.wait(10)


def test_a_signed_token_of_another_shape_is_404_on_every_route(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    before = len(site.events())
    for purpose in Purpose:
        two = purpose in (Purpose.click, Purpose.answer)
        for ids in ((delivery,), (delivery, 0), (delivery, 0, 1)):
            if len(ids) == (2 if two else 1):
                continue
            path = site.url(purpose, *ids)
            response = site.http.get(path, headers=BROWSER)
            assert response.status_code == 404, path
            assert "Link not found" in response.text
    assert len(site.events()) == before


def test_a_rotated_key_still_reads_old_links_and_never_signs(site: Site, engine: sa.Engine) -> None:
    new_key = "a-brand-new-secret-key-0987654321"
    rotated = site.settings.replace(secret_key=new_key, secret_key_previous=SECRET)
    delivery = site.delivery("ada@example.com")
    old_link = site.url(Purpose.confirm, delivery)  # signed with the previous key
    new_link = f"/r/{make_token(new_key, Purpose.confirm, delivery)}"
    other = f"/r/{make_token('some-other-key-0123456789abcdef', Purpose.confirm, delivery)}"
    app = create_app(engine, rotated, clock=lambda: LATER, ip_limit=100_000)
    with serving(app) as base, httpx.Client(base_url=base) as http:
        assert http.get(old_link, headers=BROWSER).status_code == 200
        assert http.get(new_link, headers=BROWSER).status_code == 200
        assert http.get(other, headers=BROWSER).status_code == 404
    # The next lesson is signed with the new key only.
    site.settings = rotated
    for old in site.outbox.glob("*.eml"):
        old.unlink()
    assert site.send(SEND + timedelta(days=1)) != []
    body = b"".join(p.read_bytes() for p in site.outbox.glob("*.eml")).decode("ascii", "replace")
    tokens = re.findall(r"/r/([A-Za-z0-9_-]{16,})", body.replace("=\r\n", ""))
    assert tokens
    from drip.tokens import read_token

    for token in tokens:
        assert read_token(new_key, Purpose.confirm, token)
        with pytest.raises(Exception, match="bad signature"):
            read_token(SECRET, Purpose.confirm, token)


def test_a_short_previous_key_is_refused(tmp_path: Path) -> None:
    from drip.errors import ConfigError

    with pytest.raises(ConfigError, match="DRIP_SECRET_KEY_PREVIOUS has value"):
        make_settings(tmp_path, secret_key_previous="short")
