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

RALPH_USER = "drip"
RALPH_PASSWORD = "lrs-password-0123456789"


def ralph_python() -> Path | None:
    """The Python of a venv with ralph-malph[backend-fs,lrs]: $DRIP_TEST_RALPH_PYTHON, else
    ./.ralph-venv (Ralph pins its own FastAPI and pydantic, so it lives apart from drip)."""
    named = os.environ.get("DRIP_TEST_RALPH_PYTHON")
    candidates = [Path(named)] if named else [ROOT / ".ralph-venv" / "bin" / "python"]
    for path in candidates:
        if path.is_file():
            return path
    return None


# `ralph runserver -b fs` runs this app under uvicorn with a reloader; the test runs it without
# one, so that stopping it stops it. Ralph's file backend writes its statement file with
# operation CREATE, which refuses a file that exists: its first statement is stored and every
# later one fails with 500 "Statement indexation failed". APPEND is what an LRS file needs.
RALPH_LAUNCH = """
import sys
import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend
FSLRSBackend.default_operation_type = BaseOperationType.APPEND
uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


class Ralph:
    """Ralph LRS on 127.0.0.1 with the file-system backend in a folder and basic auth; it can be
    stopped and started again on the same port and the same files."""

    def __init__(self, python: Path, folder: Path) -> None:
        self.python = python
        self.folder = folder
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/xAPI"
        self.process: subprocess.Popen[bytes] | None = None
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "app").mkdir(exist_ok=True)
        auth = folder / "auth.json"
        # The credentials file Ralph reads (RALPH_AUTH_FILE), with a bcrypt hash as `ralph auth -w`
        # writes it, made with the bcrypt of Ralph's own venv.
        script = (
            "import bcrypt, json, sys; json.dump([{'agent': {'mbox': 'mailto:drip@example.com',"
            " 'objectType': 'Agent'}, 'scopes': ['all'], 'username': sys.argv[1], 'hash':"
            " bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(4)).decode()}],"
            " open(sys.argv[3], 'w'))"
        )
        subprocess.run(
            [str(python), "-c", script, RALPH_USER, RALPH_PASSWORD, str(auth)], check=True
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RALPH_")},
            "RALPH_APP_DIR": str(folder / "app"),
            "RALPH_AUTH_FILE": str(auth),
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(folder / "data"),
        }

    @property
    def file(self) -> Path:
        return self.folder / "data" / "fs_lrs.jsonl"

    def start(self) -> None:
        """Start Ralph's app (what `ralph runserver -b fs` runs) on its port."""
        import httpx

        self.process = subprocess.Popen(
            [str(self.python), "-c", RALPH_LAUNCH, str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.folder / "ralph.log", "ab"),
        )  # fmt: skip
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError((self.folder / "ralph.log").read_text()[-2000:])
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/__heartbeat__").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("Ralph did not answer /__heartbeat__ within 15 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def stored(self) -> list[dict[str, Any]]:
        """Every statement Ralph wrote to its file, duplicates included."""
        import json

        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines() if line.strip()]


@pytest.fixture
def ralph(tmp_path: Path) -> Iterator[Ralph]:
    """A running Ralph LRS of the test's own; skipped when Ralph is not installed."""
    python = ralph_python()
    if python is None:
        pytest.skip(
            "Ralph LRS not installed: python3 -m venv .ralph-venv && .ralph-venv/bin/pip install"
            " 'ralph-malph[backend-fs,lrs]' requests (or set DRIP_TEST_RALPH_PYTHON)"
        )
    try:
        lrs = Ralph(python, tmp_path / "ralph")
        lrs.start()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"Ralph LRS cannot start: {exc}")
    yield lrs
    lrs.stop()


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

CORPUS = ROOT / "tests" / "inbound" / "corpus"
CORPUS_ADDRESS = "exec@corp.example"
CORPUS_RETURN_PATH = "b-17-0a1b2c3d4e5f60718293@bounce.example.com"
CORPUS_MESSAGE_ID = "<0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"
BOUNCE_DOMAIN = "bounce.example.com"


@dataclass(frozen=True)
class SentLesson:
    """A lesson drip sent: its delivery, Message-ID and the envelope sender the relay saw."""

    email: str
    delivery_id: int
    message_id: str
    return_path: str


def send_first_lessons(
    tmp_path: Path, db_url: str, smtp_port: int, emails: list[str], **extra: str
) -> tuple[Settings, dict[str, SentLesson]]:
    """A cohort 'board' of these people, each sent the first lesson over SMTP with a bounce
    domain and a coach configured; returns the settings and what was sent to whom."""
    from drip.app import App
    from drip.db import session
    from drip.people.cohorts import create_cohort, get_cohort
    from drip.people.csv import Row
    from drip.people.enroll import enroll_rows
    from drip.sending.run import send_due

    extra = {"bounce_domain": BOUNCE_DOMAIN, "coach_address": "coach@example.com", **extra}
    s = make_settings(tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{smtp_port}", **extra)
    app = App.open(s)
    monday = utc(2026, 11, 30, 0, 0)
    create_cohort(
        app.engine, name="board", course="sample", start=monday.date(), timezone="UTC", now=monday
    )
    with session(app.engine) as db:
        cohort = get_cohort(db, "board")
    rows = [Row(i + 2, e, e.split("@")[0].title(), None) for i, e in enumerate(emails)]
    enroll_rows(app.engine, cohort, rows, now=monday)
    dispatcher = app.dispatcher()
    send_due(dispatcher, utc(2026, 11, 30, 8, 0))
    dispatcher.transport.close()
    with app.engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT p.email, d.id, d.message_id FROM delivery d JOIN enrollment e"
                " ON e.id = d.enrollment_id JOIN person p ON p.id = e.person_id"
            )
        ).all()
    app.engine.dispose()
    from drip.tokens import return_address

    sent = {
        email: SentLesson(email, did, mid, return_address(SECRET, did, BOUNCE_DOMAIN))
        for email, did, mid in found
    }
    return s, sent


def returned_mail(name: str, lesson: SentLesson | None, **replace: str) -> bytes:
    """A corpus message made to be about this lesson: its address, return path and Message-ID."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    if lesson is not None:
        text = (
            text.replace(CORPUS_ADDRESS, lesson.email)
            .replace(CORPUS_RETURN_PATH, lesson.return_path)
            .replace(CORPUS_MESSAGE_ID, lesson.message_id)
        )
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def db_rows(db_url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query on that database, read now."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query)).all()]
    finally:
        engine.dispose()


# -- a real DNS server ----------------------------------------------------------------------


class ZoneResolver:
    """Answers A, MX, TXT and PTR questions from a dict: {(name, type): [values]}."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in records.items()}

    def resolve(self, request: Any, handler: Any) -> Any:
        from dnslib import MX, PTR, QTYPE, RCODE, RR, TXT, A

        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        kind = QTYPE[request.q.qtype]
        values = self.records.get((name, kind))
        if values is None:
            if not any(n == name for n, _ in self.records):
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in values:
            if kind == "A":
                rdata: Any = A(value)
            elif kind == "MX":
                preference, host = value.split()
                rdata = MX(host, int(preference))
            elif kind == "PTR":
                rdata = PTR(value)
            else:  # TXT: split in 255-byte strings as a real zone would
                data = value.encode()
                rdata = TXT([data[i : i + 255] for i in range(0, len(data), 255)])
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        return reply


@contextmanager
def dns_server(records: dict[tuple[str, str], list[str]]) -> Iterator[int]:
    """A DNS server (UDP and TCP) on 127.0.0.1 answering from `records`; yields its port."""
    from dnslib.server import DNSLogger, DNSServer

    port = free_port()
    resolver = ZoneResolver(records)
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(resolver, address="127.0.0.1", port=port, logger=quiet),
        DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet),
    ]
    for server in servers:
        server.start_thread()
    try:
        yield port
    finally:
        for server in servers:
            server.stop()


def txt_lookup(port: int) -> Any:
    """A dkimpy `dnsfunc` that asks the test DNS server."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port

    def lookup(name: bytes | str, timeout: float = 5) -> bytes:
        text = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(text.rstrip("."), "TXT", lifetime=timeout)
        except Exception:
            return b""
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


# -- a scriptable SMTP server ------------------------------------------------------------------


@dataclass
class Script:
    """How a ScriptedSmtp answers: per-recipient replies at RCPT and at the end of DATA
    ("451 4.3.0 later", "421 4.3.2 closing" closes the connection), whether it greets, what it
    says to AUTH, and whether it offers PIPELINING."""

    rcpt: dict[str, list[str]] = field(default_factory=dict)  # address -> replies, in turn
    data: dict[str, list[str]] = field(default_factory=dict)
    greet: bool = True
    pipelining: bool = True
    auth: str = ""  # "" offers no AUTH; else the reply to every AUTH command

    def next(self, table: dict[str, list[str]], address: str) -> str:
        replies = table.get(address)
        return replies.pop(0) if replies else "250 2.0.0 OK"


@dataclass
class Seen:
    """What a ScriptedSmtp saw: connections, AUTH attempts, each read's commands (a flight),
    and every message it accepted as (recipient, Message-ID)."""

    connections: int = 0
    auths: int = 0
    flights: list[list[str]] = field(default_factory=list)
    accepted: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[tuple[str, str]] = field(default_factory=list)  # every DATA received


def _message_id(data: bytes) -> str:
    import email

    return str(email.message_from_bytes(data).get("Message-ID", ""))


class _Session:
    """One connection of the scripted server: SMTP commands, with DATA read to CRLF.CRLF."""

    def __init__(self, script: Script, seen: Seen) -> None:
        self.script, self.seen = script, seen
        self.buffer = b""
        self.in_data = False
        self.rcpt: str | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.seen.connections += 1
        if self.script.greet:
            transport.write(b"220 scripted ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        flight: list[str] = []
        out: list[bytes] = []
        while self.transport is not None:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                body, self.buffer = self.buffer[: end + 2], self.buffer[end + 5 :]
                self.in_data = False
                flight.append("<body>")
                assert self.rcpt is not None
                body = body.replace(b"\r\n..", b"\r\n.")
                self.seen.bodies.append((self.rcpt, _message_id(body)))
                reply = self.script.next(self.script.data, self.rcpt)
                if reply.startswith("250"):
                    self.seen.accepted.append((self.rcpt, _message_id(body)))
                self.rcpt = None
                if self._reply(out, reply):
                    break
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end].decode(), self.buffer[end + 2 :]
            verb = line[:4].upper()
            flight.append(verb)
            if self._reply(out, self._command(verb, line)):
                break
        if flight:
            self.seen.flights.append(flight)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _reply(self, out: list[bytes], reply: str) -> bool:
        """Queue a reply; True when it closes the connection."""
        out.append(reply.encode() + b"\r\n")
        if reply.startswith(("421", "221")):
            self.transport.write(b"".join(out))
            out.clear()
            self.transport.close()
            self.transport = None
            return True
        return False

    def _command(self, verb: str, line: str) -> str:
        if verb == "EHLO":
            extensions = ["scripted", "SIZE 52428800", "8BITMIME"]
            extensions += ["PIPELINING"] if self.script.pipelining else []
            extensions += ["AUTH PLAIN LOGIN"] if self.script.auth else []
            return "\r\n".join(f"250-{e}" for e in extensions[:-1]) + f"\r\n250 {extensions[-1]}"
        if verb == "AUTH":
            self.seen.auths += 1
            return self.script.auth
        if verb in ("HELO", "RSET", "NOOP"):
            self.rcpt = None if verb == "RSET" else self.rcpt
            return "250 OK"
        if verb == "MAIL":
            return "250 2.1.0 OK"
        if verb == "RCPT":
            address = line.split(":", 1)[1].strip().strip("<>")
            reply = self.script.next(self.script.rcpt, address)
            if reply.startswith("250"):
                self.rcpt = address
            return reply
        if verb == "DATA":
            if self.rcpt is None:
                return "554 5.5.1 no valid recipients"
            self.in_data = True
            return "354 go ahead"
        if verb == "QUIT":
            return "221 bye"
        return "502 5.5.2 unknown command"

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


@contextmanager
def scripted_smtp(script: Script | None = None) -> Iterator[tuple[Script, Seen, int]]:
    """A scriptable asyncio SMTP server on 127.0.0.1 in a thread: (script, seen, port)."""
    import asyncio

    script = script or Script()
    seen = Seen()
    loop = asyncio.new_event_loop()
    port = free_port()
    ready = threading.Event()

    async def serve() -> None:
        server = await loop.create_server(
            lambda: _Session(script, seen),  # type: ignore[arg-type,return-value]
            "127.0.0.1",
            port,
        )
        async with server:
            ready.set()
            await server.serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(_quiet(serve())), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield script, seen, port
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()


async def _quiet(coro: Any) -> None:
    import asyncio

    try:
        await coro
    except asyncio.CancelledError:
        pass
