"""drip against a latency-bound relay: a sink that answers each message's DATA after a fixed delay.

Run: python bench/relay.py [--delay 0.02] [--people 1600] [--rounds 3]

Method: a sink in its own process answers the end of each message's DATA 20 ms late (as a cloud
relay's SMTP endpoint does), every other command at once, and offers PIPELINING. drip sends a
pass of PEOPLE due people (a fresh copy of a SQLite file each time; 1,600 by default, 100 steps
of 16 messages, so that a pass's first claim and connections are not most of what is timed) with
1, 4 and 16 pipelined connections, interleaved round by round, warm as in bench/send.py; the
window is drip's default, four times the connections. Prints msg/s min/median/max for each, the fraction of the ideal
`connections / delay`, and the 16-to-1 ratio (target >= 12).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import drip_round, make_template_db  # noqa: E402
from sink import free_port  # noqa: E402

CONNECTIONS = (1, 4, 16)


class SlowSession(asyncio.Protocol):
    """One SMTP session; the reply to the end of DATA waits `delay`, replies stay in order."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.in_data = False
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 slow relay ESMTP\r\n")
        self.task = asyncio.get_running_loop().create_task(self.drain())

    async def drain(self) -> None:
        while True:
            delay, reply = await self.queue.get()
            if delay:
                await asyncio.sleep(delay)
            self.transport.write(reply)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.queue.put_nowait((self.delay, b"250 2.0.0 queued\r\n"))
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply = b"250-slow\r\n250-PIPELINING\r\n250 SIZE 52428800\r\n"
            elif verb == b"DATA":
                self.in_data = True
                reply = b"354 go ahead\r\n"
            elif verb == b"QUIT":
                self.queue.put_nowait((0.0, b"221 bye\r\n"))
                return
            else:
                reply = b"250 OK\r\n"
            self.queue.put_nowait((0.0, reply))

    def connection_lost(self, exc: Exception | None) -> None:
        self.task.cancel()


async def serve(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SlowSession(delay), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        print("ready", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--people", type=int, default=1600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.delay))
        return
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
    rates: dict[int, list[float]] = {n: [] for n in CONNECTIONS}
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            template = tmp / "template.db"
            make_template_db(template, args.people)
            for r in range(args.rounds):
                order = list(CONNECTIONS[r % 3 :] + CONNECTIONS[: r % 3])
                for n in order:
                    options = SimpleNamespace(connections=n, window="auto")
                    started = time.perf_counter()
                    rate, _cpu = drip_round(template, tmp, port, args.people, options)
                    rates[n].append(rate)
                    print(
                        f"round {r + 1}: {n:2d} connections {rate:7,.0f} msg/s "
                        f"({time.perf_counter() - started:.1f} s)"
                    )
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(10)
    print(f"\n{args.people} people, DATA answered after {args.delay * 1000:g} ms:")
    for n, values in rates.items():
        ideal = n / args.delay
        low, mid, high = min(values), statistics.median(values), max(values)
        print(
            f"  {n:2d} connections: {low:6,.0f} / {mid:6,.0f} / {high:6,.0f} msg/s "
            f"(min/median/max), {mid / ideal:.2f} of the ideal {ideal:,.0f}"
        )
    ratio = statistics.median(rates[16]) / statistics.median(rates[1])
    print(f"16 connections / 1, median: {ratio:.1f}x (target >= 12)")


if __name__ == "__main__":
    main()
