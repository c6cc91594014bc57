"""Shared test helpers and fixtures: real databases (SQLite files, PostgreSQL when DRIP_TEST_DATABASE_URL is set),
a real SMTP server on 127.0.0.1 (aiosmtpd), the real lessons and templates."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette

from drip.config import Settings, load_settings
from drip.db import make_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
TEMPLATES = ROOT / "templates"
PG_URL = os.environ.get("DRIP_TEST_DATABASE_URL", "")
SECRET = "test-secret-key-0123456789abcdef"

EMPTY_CONFIG = Path(tempfile.mkdtemp(prefix="drip-test-")) / "drip.toml"
EMPTY_CONFIG.write_text("# settings come from the environment in tests\n")

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def utc(*args: int) -> datetime:
    """An aware UTC datetime, for readable test clocks."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _pg_admin_url() -> str:
    url = sa.engine.make_url(PG_URL)
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@contextmanager
def pg_database(prefix: str, template: str | None = None) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database of the test's own, dropped afterwards: (name, url)."""
    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        )
    url = sa.engine.make_url(_pg_admin_url()).set(database=name)
    try:
        yield name, url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    if not PG_URL:
        yield ""
        return
    with pg_database("drip_tpl") as (name, url):
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield name


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path, _pg_template: str
) -> Iterator[str]:
    """A migrated, empty database of its own for each test, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "drip.db"
        shutil.copy(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    with pg_database("drip_t", template=_pg_template) as (_, url):
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def make_settings(tmp_path: Path, db_url: str = "sqlite:///unused.db", **extra: str) -> Settings:
    env = {
        "DRIP_DATABASE_URL": db_url,
        "DRIP_MAIL_URL": f"outbox:{tmp_path / 'outbox'}",
        "DRIP_SECRET_KEY": SECRET,
        "DRIP_BASE_URL": "https://learn.example.com",
        "DRIP_FROM": "Drip Lessons <lessons@example.com>",
        "DRIP_LESSONS_DIR": str(LESSONS),
        "DRIP_TEMPLATES_DIR": str(TEMPLATES),
    }
    env.update({k if k.startswith("DRIP_") else "DRIP_" + k.upper(): v for k, v in extra.items()})
    return load_settings(env=env, config_path=tmp_path / "absent.toml")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `drip` subprocess using these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    for name, value in settings.values.items():
        env["DRIP_" + name.upper()] = str(value)
    env["DRIP_CONFIG"] = str(EMPTY_CONFIG)  # never a drip.toml from the working directory
    env.update(extra)
    return env


def run_drip(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `drip` in this process with click's CliRunner, in that environment and folder; the
    result reads like a finished subprocess (stdout, stderr, returncode)."""
    from click.testing import CliRunner

    from drip.cli import main

    runner = CliRunner()
    old_cwd = Path.cwd()
    # CliRunner sets the variables it is given; drop the DRIP_ ones the caller left out.
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DRIP_")}
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = runner.invoke(main, args, env={**unset, **env}, catch_exceptions=True)
    finally:
        os.chdir(old_cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["drip", *args], result.exit_code, result.stdout, result.stderr
    )


def run_drip_process(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `drip` command in a subprocess, where a real process is the point."""
    return subprocess.run(
        [sys.executable, "-m", "drip.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- a real SMTP server ---------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpHandler:
    """Records every message; `replies` scripts the answers to DATA ("250", "451 ...", "550 ...", "drop")."""

    messages: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    attempts: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_data: Any = None  # called with the recipients while a message is on the wire

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data is not None:
            self.on_data(list(envelope.rcpt_tos))
        with self.lock:
            self.attempts.append(envelope.content)
            reply = self.replies.pop(0) if self.replies else "250 OK"
            if reply == "drop":
                session.transport.close() if getattr(
                    session, "transport", None
                ) else server.transport.close()
                return "421 closing"
            if reply.startswith("250"):
                self.messages.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                )
            return reply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpHandler, int]]:
    """A real aiosmtpd server on 127.0.0.1; yields (handler, port)."""
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


# -- the real web app over HTTP ------------------------------------------------------------


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Run the app with uvicorn on a free port in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# -- a real learning record store (Ralph) -----------------------------------------------------


def spam_score(message: bytes) -> tuple[float, str]:
    """SpamAssassin's score of a message with local tests only (-L), and its report; the test
    is skipped where spamassassin is not installed (apt-get install spamassassin)."""
    if shutil.which("spamassassin") is None:
        pytest.skip("spamassassin is not installed (apt-get install spamassassin)")
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], input=message, capture_output=True, timeout=120, check=True
    )
    out = result.stdout.decode("utf-8", "replace")
    found = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", out, re.M)
    assert found, out[:2000]
    return float(found.group(1)), out[out.find("Content analysis details") :]


# -- the way back (inbound) -----------------------------------------------------------------


# -- a real DNS server ----------------------------------------------------------------------


# -- a scriptable SMTP server ------------------------------------------------------------------
