"""Real protocol peers for the tests: a learning record store (Ralph), a DNS server, and a scriptable SMTP server for faults."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port

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


async def _quiet(coro: Any) -> None:
    import asyncio

    try:
        await coro
    except asyncio.CancelledError:
        pass


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
