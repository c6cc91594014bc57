"""Open-pixel rate with every hit committed to SQLite vs a bare Starlette GIF endpoint.

Run: python bench/track.py [--seconds 5] [--rounds 3] [--connections 8]
                           [--deliveries 1000000] [--tokens 100000] [--db PATH]
                           [--stack installed|pure] [--events N] [--without-write]

Method: a SQLite file holds DELIVERIES deliveries (50,000 people x 20 lessons, bulk-inserted
after one real pass made the lesson version); the load cycles through TOKENS distinct open
tokens of deliveries spread over the whole table, so most hits miss every cache and read the
database. Each app runs under uvicorn in this process; the load generator is a separate process
(wrk when installed, else http.client keep-alive connections in threads), sending an iPhone's
user agent. Both apps run under the same uvicorn settings as `drip serve` (one worker, no access
log; with --stack installed, the default, httptools and uvloop as drip serve uses them; with
--stack pure, uvicorn's pure-Python h11 on asyncio's loop, which costs the bare endpoint 2-3
times more CPU a request and so flatters the ratio) and send the same pre-built GIF response,
so the difference is drip's work: the token check, the delivery lookup, the verdict and the
committed event. Each round runs the bare endpoint, a plain ASGI callable sending the same GIF
(a second baseline: drip's pixel answers before Starlette's middleware and routing, which the
bare Starlette endpoint still pays) and drip's /o/<token>.gif back to back, rotating which goes
first, over the same slice of the tokens, and every round starts at another slice (a new app, so
its delivery cache is empty).
Prints each round, min/median/max, the ratio of the medians and the median of the per-round
ratios (target >= 0.6), the server's CPU time per request (this process: server threads only,
the load runs elsewhere), the load average before and after, and checks that the events written
equal the 200s; drip's ratio to the plain ASGI baseline is printed too. With --events N the
log first holds N earlier opens of random deliveries (a log that has run a while: each new event
then goes into indexes that size, on random pages; the default, 0, measures an empty log). With
--db the filled database is kept at PATH and reused by the next run (filling a million rows
takes a minute); each run deletes the events it wrote.
With --without-write drip's pixel does everything but write: the token check, the delivery
lookup and the verdict, then no INSERT and no commit (a floor for what a committed event costs;
its 200s then have no events, and the check says so).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from drip import events as events_module
from drip.app import App
from drip.config import load_settings
from drip.db import migrate
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.sending.run import send_due
from drip.states import EventKind, Verdict
from drip.tokens import Purpose, make_token
from drip.tracking import writer
from drip.web import PIXEL, PIXEL_BODY, PIXEL_START, SERVER_OPTIONS, create_app

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, inside everyone's window
SECRET = "bench-secret-key-0123456789"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def fill(engine: sa.Engine, deliveries: int) -> None:
    """Bulk-insert people, enrolments and sent deliveries like the real one, up to `deliveries`."""
    with engine.begin() as conn:
        real = conn.execute(sa.select(D)).mappings().one()
        enrollment = conn.execute(sa.select(E)).mappings().one()
        hashes = list(conn.execute(sa.select(LV.c.slug, LV.c.content_hash)).all())
    lessons = 20
    people = max(1, deliveries // lessons)
    chunk = 5_000
    with engine.begin() as conn:
        for start in range(1, people, chunk):
            ids = range(start + 1, min(people, start + chunk) + 1)
            conn.execute(
                P.insert(),
                [{"id": i, "email": f"x{i}@example.com", "name": f"X {i}", "timezone": None,
                  "created_at": NOW} for i in ids],
            )  # fmt: skip
            conn.execute(
                E.insert(),
                [{**enrollment, "id": i, "person_id": i} for i in ids],
            )
            conn.execute(
                D.insert(),
                [
                    {**real, "id": None, "enrollment_id": i, "lesson_slug": f"{slug}-{n}",
                     "content_hash": content_hash, "message_id": f"<{i}.{n}@example.com>"}
                    for i in ids
                    for n, (slug, content_hash) in enumerate((hashes * lessons)[:lessons])
                ],
            )  # fmt: skip
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def grow_log(engine: sa.Engine, events: int) -> None:
    """Top the event log up to `events` rows with opens of random deliveries, as a log that has
    run for a while holds: each new open then goes into indexes that size, on random pages."""
    with engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(EV)).scalar_one()
        pairs = conn.execute(sa.select(D.c.id, D.c.enrollment_id)).all()
    pick = random.Random(11)
    chunk = 100_000
    with engine.begin() as conn:
        for start in range(have, events, chunk):
            rows = []
            for n in range(start, min(events, start + chunk)):
                delivery, enrollment = pairs[pick.randrange(len(pairs))]
                rows.append(
                    events_module.hit(EventKind.open, enrollment, delivery,
                                      NOW - timedelta(minutes=n % 40_000), method="GET",
                                      seconds_since_send=3600.0, verdict=Verdict.human, reason="")
                )  # fmt: skip
            conn.execute(EV.insert(), rows)


def open_events(engine: sa.Engine) -> int:
    """How many open events the database holds."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(EV).where(EV.c.kind == "open")
        return int(conn.execute(query).scalar_one())


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_app() -> Starlette:
    """The baseline: the same GIF and headers, nothing else."""

    async def gif(request: Request) -> Response:
        return PIXEL

    return Starlette(routes=[Route("/o/{token}.gif", gif, methods=["GET"])])


def raw_app() -> Any:
    """The second baseline: the same GIF and headers from a plain ASGI callable, without
    Starlette's middleware and routing (drip's pixel skips them too)."""

    async def gif(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(PIXEL_START)
            await send(PIXEL_BODY)

    return gif


STACKS = {
    # What `drip serve` runs: uvicorn's auto choice, httptools and uvloop (drip depends on both).
    "installed": {"http": "auto", "loop": "auto"},
    # uvicorn without its extras: the pure-Python HTTP parser on asyncio's own loop.
    "pure": {"http": "h11", "loop": "asyncio"},
}


def serve(app: Any, stack: str) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start uvicorn on a free port in a thread and wait until it listens."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", **SERVER_OPTIONS, **STACKS[stack]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, port


def client_connection(port: int, paths: list[str], stop_at: float, counts: list[int]) -> None:
    """One keep-alive connection issuing GETs until the deadline; counts 200s and others."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"User-Agent": IPHONE}
    i = 0
    while time.perf_counter() < stop_at:
        conn.request("GET", paths[i % len(paths)], headers=headers)
        response = conn.getresponse()
        response.read()
        counts[0 if response.status == 200 else 1] += 1
        i += 1
    conn.close()


def load(port: int, paths: list[str], seconds: float, connections: int, out: object) -> None:
    """The load generator process: `connections` threads for `seconds`; sends (ok, other)."""
    stop_at = time.perf_counter() + seconds
    tallies = [[0, 0] for _ in range(connections)]
    threads = [
        threading.Thread(target=client_connection, args=(port, paths[i::connections], stop_at, t))
        for i, t in enumerate(tallies)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.send((sum(t[0] for t in tallies), sum(t[1] for t in tallies)))  # type: ignore[attr-defined]


def load_wrk(port: int, paths: list[str], seconds: float, connections: int) -> tuple[int, int]:
    """Drive the server with wrk (C, one thread) cycling through the paths; (2xx, others)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        listed = ", ".join(f'"{p}"' for p in paths)
        script.write(
            f'paths = {{{listed}}}\ni = 0\nwrk.headers["User-Agent"] = "{IPHONE}"\n'
            "request = function()\n  i = i + 1\n"
            "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
        )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name,
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    Path(script.name).unlink()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*?read (\d+), write (\d+), timeout (\d+)", out)
    other = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return total - (int(bad.group(1)) if bad else 0), other


def measure(
    app: Any, paths: list[str], seconds: float, connections: int, use_wrk: bool, stack: str
) -> tuple[int, int, float]:
    """Serve the app and run the load process against it; (200 responses, others, CPU seconds
    this process spent meanwhile)."""
    server, thread, port = serve(app, stack)
    cpu = time.process_time()
    if use_wrk:
        ok, other = load_wrk(port, paths, seconds, connections)
    else:
        receive, send = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.Process(
            target=load, args=(port, paths, seconds, connections, send)
        )
        process.start()
        ok, other = receive.recv()
        process.join()
    cpu = time.process_time() - cpu
    server.should_exit = True
    thread.join(10)
    return ok, other, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument(
        "--load", choices=["auto", "wrk", "python"], default="auto",
        help="load generator: wrk when installed (auto), else Python http.client threads",
    )  # fmt: skip
    parser.add_argument(
        "--events", type=int, default=0,
        help="top the event log up to this many earlier opens first (kept in --db); each hit's "
        "event then goes into indexes of that size",
    )  # fmt: skip
    parser.add_argument(
        "--stack", choices=sorted(STACKS), default="installed",
        help="uvicorn's HTTP parser and loop: installed (httptools and uvloop, as drip serve "
        "runs) or pure (h11 on asyncio, uvicorn without extras)",
    )  # fmt: skip
    parser.add_argument(
        "--db", help="keep the filled SQLite database at this path and reuse it when it exists"
    )
    parser.add_argument(
        "--without-write", action="store_true",
        help="drip's pixel does everything but write its events (what the write costs)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.without_write:
        writer._write_sqlite = lambda raw, rows: None  # a measurement, never drip's behaviour
    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk") is not None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.db).resolve().parent if args.db else Path(tmp)
        database = Path(args.db).resolve() if args.db else Path(tmp) / "bench.db"
        settings = load_settings(
            env={
                "DRIP_DATABASE_URL": f"sqlite:///{database}",
                "DRIP_MAIL_URL": f"outbox:{tmp}/outbox",
                "DRIP_SECRET_KEY": SECRET,
                "DRIP_LESSONS_DIR": str(ROOT / "lessons"),
                "DRIP_TEMPLATES_DIR": str(ROOT / "templates"),
                "DRIP_BASE_URL": "https://learn.example.com",
                "DRIP_FROM": "Drip Lessons <lessons@example.com>",
            },
            config_path=folder / "none.toml",
        )
        reuse = database.exists()
        app = App.open(settings, check=False)
        if not reuse:
            migrate(app.engine)
            cohort = create_cohort(
                app.engine, name="bench", course="sample", start=date(2026, 11, 30),
                timezone="UTC", now=NOW,
            )  # fmt: skip
            enroll_rows(app.engine, cohort, [Row(0, "p0@example.com", "P 0", None)], now=NOW)
            result = send_due(app.dispatcher(), NOW)
            assert result.sent == 1, result.summary()
            fill(app.engine, args.deliveries)
        grow_log(app.engine, args.events)
        with app.engine.connect() as conn:
            logged = conn.execute(sa.select(sa.func.count()).select_from(EV)).scalar_one()
        events_before = open_events(app.engine)
        with app.engine.connect() as conn:
            last_event = conn.execute(sa.select(sa.func.max(EV.c.id))).scalar() or 0
        with app.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(D)).scalar_one()
            step = max(1, total // args.tokens)
            ids = list(
                conn.execute(
                    sa.select(D.c.id).where(D.c.id % step == 0).limit(args.tokens)
                ).scalars()
            )
        random.Random(5).shuffle(ids)
        paths = [f"/o/{make_token(SECRET, Purpose.open, i)}.gif" for i in ids]

        load_before = os.getloadavg()
        bare_rates, drip_rates, bare_cpu, drip_cpu = [], [], [], []
        raw_rates: list[float] = []
        drip_ok = drip_other = bare_other = 0
        order = ("bare", "raw", "drip")
        baselines = {"bare": bare_app, "raw": raw_app}
        for n in range(args.rounds):
            start = n * len(paths) // args.rounds
            slice_ = paths[start:] + paths[:start]
            for which in order[n % 3 :] + order[: n % 3]:
                app_ = (
                    baselines[which]()
                    if which in baselines
                    else create_app(app.engine, settings, token_limit=10**9, ip_limit=10**9)
                )
                ok, other, cpu = measure(
                    app_, slice_, args.seconds, args.connections, use_wrk, args.stack
                )
                if which == "raw":
                    raw_rates.append(ok / args.seconds)
                    bare_other += other
                elif which == "bare":
                    bare_rates.append(ok / args.seconds)
                    bare_cpu.append(cpu / max(ok, 1))
                    bare_other += other
                else:
                    drip_rates.append(ok / args.seconds)
                    drip_cpu.append(cpu / max(ok, 1))
                    drip_ok += ok
                    drip_other += other
        load_after = os.getloadavg()
        events = open_events(app.engine) - events_before
        # A reused database starts each run alike: events left behind grow the event indexes
        # the next run inserts into (drip's CPU per hit rose by a third over a dozen runs).
        with app.engine.begin() as conn:
            conn.execute(EV.delete().where(EV.c.id > last_event))
        app.engine.dispose()

    bare_rate, drip_rate = statistics.median(bare_rates), statistics.median(drip_rates)
    ratio = drip_rate / bare_rate if bare_rate else 0.0
    per_round = [d / b if b else 0.0 for b, d in zip(bare_rates, drip_rates, strict=True)]
    print(
        f"load: {'wrk' if use_wrk else 'Python http.client'}, {args.connections} keep-alive "
        "connections from a separate process, "
        f"{args.rounds} rounds of {args.seconds:g} s each, {len(paths):,} distinct tokens over "
        f"{total:,} deliveries and {logged:,} events logged before; uvicorn with {'httptools and uvloop' if args.stack == 'installed' else 'h11 on asyncio'} (--stack {args.stack})"
        + ("" if use_wrk else " (the generator's own CPU caps the bare rate: prefer wrk)")
    )
    print(
        "load average (1/5/15 min)  : before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )
    rounds = ", ".join(f"{b:,.0f}/{d:,.0f}" for b, d in zip(bare_rates, drip_rates, strict=True))
    print(f"rounds (bare/drip req/s)    : {rounds}")
    print(f"bare Starlette GIF endpoint : {bare_rate:9,.0f} req/s median ({bare_other} non-200)")
    print(f"drip /o/<token>.gif (SQLite): {drip_rate:9,.0f} req/s median ({drip_other} non-200)")
    print(
        f"bare min/median/max        : {min(bare_rates):,.0f} / {bare_rate:,.0f} / "
        f"{max(bare_rates):,.0f}; drip: {min(drip_rates):,.0f} / {drip_rate:,.0f} / "
        f"{max(drip_rates):,.0f} req/s"
    )
    print(
        f"server CPU per request      : bare {statistics.median(bare_cpu) * 1e6:,.0f} us, "
        f"drip {statistics.median(drip_cpu) * 1e6:,.0f} us (medians)"
    )
    print(
        f"ratio drip/bare (medians)   : {ratio:9.2f}; per round "
        + ", ".join(f"{r:.2f}" for r in per_round)
        + f", median {statistics.median(per_round):.2f} (target >= 0.6)"
    )
    raw_rate = statistics.median(raw_rates)
    print(
        f"bare ASGI GIF (no Starlette): {raw_rate:9,.0f} req/s median "
        f"({min(raw_rates):,.0f} / {raw_rate:,.0f} / {max(raw_rates):,.0f}); drip/bare ASGI "
        + ", ".join(f"{d / r:.2f}" for r, d in zip(raw_rates, drip_rates, strict=True))
        + f"; of the medians {drip_rate / raw_rate:.2f} (drip's pixel skips Starlette's layers too)"
    )
    # wrk stops counting at the deadline: requests then in flight were answered and written
    # but not counted, at most one per connection and round.
    if args.without_write:
        print(f"events written {events:,}: none, as --without-write asks (not drip's behaviour)")
        sys.exit(1 if events or drip_other else 0)
    in_flight = events - drip_ok
    exact = 0 <= in_flight <= (args.connections * args.rounds if use_wrk else 0)
    print(
        f"events written {events:,} vs 200 responses counted {drip_ok:,} "
        f"(+{in_flight} in flight at the deadlines): {'match' if exact else 'MISMATCH'}"
    )
    if not exact or drip_other:
        sys.exit(1)


if __name__ == "__main__":
    main()
