"""A minimal, fast SMTP sink that counts messages and records each Message-ID and recipient.

Run it as its own process so it does not share a GIL with the senders it measures:

    python bench/sink.py --port 2525 --stats-file sink.json   # SIGTERM writes the stats and exits
    python bench/sink.py --selftest                           # prints messages per second

The stats file is JSON: {"count": N, "messages": [[message_id, [recipients...]], ...]} in arrival
order. A client can ask for it mid-run with the non-standard command `STATS`, which writes the file
and answers `250 <count>`. Import `start_sink_process`, `request_stats` and `stop_sink` from tests
and benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

END_OF_DATA = b"\r\n.\r\n"


class Stats:
    """What the sink received: every accepted message's Message-ID and recipients."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.messages: list[tuple[str, list[str]]] = []

    def add(self, data: bytes, recipients: list[str]) -> None:
        self.messages.append((message_id(data), recipients))

    def as_json(self) -> dict[str, Any]:
        return {"count": len(self.messages), "messages": [[m, r] for m, r in self.messages]}

    def write(self) -> None:
        if self.path is None:
            return
        # Write then rename, so a reader never sees half a file.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_json()), encoding="utf-8")
        os.replace(tmp, self.path)


def message_id(data: bytes) -> str:
    """The Message-ID header value of a message ('' when it has none), unfolded."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    lines = head.split(b"\r\n")
    for index, line in enumerate(lines):
        if line[:11].lower() == b"message-id:":
            value = line[11:]
            for more in lines[index + 1 :]:
                if more[:1] not in (b" ", b"\t"):
                    break
                value += more
            return value.decode("ascii", "replace").strip()
    return ""


class SinkProtocol(asyncio.Protocol):
    """One SMTP session: commands line by line, DATA until CRLF.CRLF, 250 to everything valid."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.in_data = False
        self.recipients: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 drip-sink ESMTP ready\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        while self.transport is not None:
            if self.in_data:
                # "\r\n" in front lets an empty body end with a bare ".\r\n".
                end = (b"\r\n" + self.buffer).find(END_OF_DATA)
                if end < 0:
                    break
                body = self.buffer[: max(0, end - 2)]
                self.buffer = self.buffer[end + 3 :]
                self.in_data = False
                self.stats.add(body, self.recipients)
                self.recipients = []
                replies.append(b"250 2.0.0 queued\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            reply = self.command(line)
            if reply is None:
                self.transport.write(b"".join(replies) + b"221 2.0.0 bye\r\n")
                self.transport.close()
                self.transport = None
                return
            replies.append(reply)
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def command(self, line: bytes) -> bytes | None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            return b"250-drip-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n"
        if verb == b"HELO":
            return b"250 drip-sink\r\n"
        if verb == b"MAIL":
            self.recipients = []
            return b"250 2.1.0 OK\r\n"
        if verb == b"RCPT":
            address = line[line.find(b":") + 1 :].split(b" ")[0].strip(b" <>")
            self.recipients.append(address.decode("utf-8", "replace"))
            return b"250 2.1.5 OK\r\n"
        if verb == b"DATA":
            if not self.recipients:
                return b"503 5.5.1 RCPT first\r\n"
            self.in_data = True
            return b"354 end with <CRLF>.<CRLF>\r\n"
        if verb == b"RSET":
            self.recipients = []
            return b"250 2.0.0 OK\r\n"
        if verb == b"NOOP":
            return b"250 2.0.0 OK\r\n"
        if verb == b"QUIT":
            return None
        if line.upper() == b"STATS":
            self.stats.write()
            return f"250 {len(self.stats.messages)}\r\n".encode()
        return b"502 5.5.2 command not recognized\r\n"

    def connection_lost(self, exc: Exception | None) -> None:
        # A message cut off before CRLF.CRLF was never accepted, so it is not counted.
        self.transport = None


async def serve(host: str, port: int, stats: Stats, ready: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then write the stats."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(stats), host, port, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready.write_text(str(port), encoding="utf-8")
    async with server:
        await stop.wait()
    stats.write()


# -- helpers for tests and benchmarks ---------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink_process(
    port: int, stats_path: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the sink as a child process on 127.0.0.1:port; return it and its stats file."""
    if stats_path is None:
        stats_path = Path(tempfile.mkdtemp(prefix="drip-sink-")) / "stats.json"
    ready = stats_path.with_name(stats_path.name + ".ready")
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--port",
            str(port),
            "--stats-file",
            str(stats_path),
            "--ready-file",
            str(ready),
        ],
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the SMTP sink exited with status {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the SMTP sink did not start within 20 s")
        time.sleep(0.02)
    return process, stats_path


def request_stats(port: int, stats_path: Path) -> dict[str, Any]:
    """Ask a running sink to write its stats with the STATS command, and read them."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        code, _ = client.docmd("STATS")
        if code != 250:
            raise RuntimeError(f"the SMTP sink answered {code} to STATS")
    return dict(json.loads(stats_path.read_text(encoding="utf-8")))


def stop_sink(process: subprocess.Popen[bytes], stats_path: Path) -> dict[str, Any]:
    """Stop the sink with SIGTERM and return its final stats."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return dict(json.loads(stats_path.read_text(encoding="utf-8")))


def selftest(count: int = 5000, size: int = 8000) -> float:
    """Send `count` messages over one reused smtplib connection; return messages per second."""
    port = free_port()
    process, stats_path = start_sink_process(port)
    try:
        body = ("x" * 76 + "\r\n") * (size // 78)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            started = time.perf_counter()
            for n in range(count):
                data = (
                    f"From: a@example.com\r\nTo: b{n}@example.com\r\n"
                    f"Message-ID: <{n}.selftest@example.com>\r\nSubject: test\r\n\r\n{body}"
                ).encode()
                client.sendmail("a@example.com", [f"b{n}@example.com"], data)
            elapsed = time.perf_counter() - started
        stats = request_stats(port, stats_path)
    finally:
        final = stop_sink(process, stats_path)
    ids = {m for m, _ in final["messages"]}
    if stats["count"] != count or final["count"] != count or len(ids) != count:
        raise SystemExit(f"selftest failed: sent {count}, the sink counted {final['count']}")
    return count / elapsed


def main() -> None:
    """Parse the command line and run the sink or its self-test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--stats-file", type=Path, default=None)
    parser.add_argument("--ready-file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--selftest", action="store_true", help="Measure messages per second.")
    parser.add_argument("--count", type=int, default=5000, help="Messages for --selftest.")
    args = parser.parse_args()
    if args.selftest:
        rate = selftest(args.count)
        print(
            f"sink self-test: {args.count} messages of ~8 KB over one smtplib connection: "
            f"{rate:,.0f} msg/s"
        )
        return
    asyncio.run(serve(args.host, args.port, Stats(args.stats_file), args.ready_file))


if __name__ == "__main__":
    main()
