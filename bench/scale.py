"""Deliveries per second with 1, 2 and 4 workers on PostgreSQL, and 1 worker on SQLite.

Each run gets a fresh database with one cohort of --people people all due at the same moment, a
fresh SMTP sink process (bench/sink.py), and N worker processes that load drip, then wait at a
start line; the clock runs from the start signal until every worker's pass is over. The sink's
count and Message-IDs are checked against the number of people, so a fast wrong run cannot pass.

    python bench/scale.py [--people 3000] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sink import free_port, start_sink_process, stop_sink

from drip.app import App
from drip.config import Settings, load_settings
from drip.db import make_engine, migrate
from drip.models import ENROLLMENT
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.sending import store
from drip.sending.plan import Send, plan
from drip.sending.run import send_due

ROOT = Path(__file__).resolve().parent.parent
# A Tuesday inside the cohort's sending window: every first lesson is due now.
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    """One measured configuration."""

    backend: str
    workers: int
    people: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.people / self.seconds


def settings_for(url: str, port: int) -> Settings:
    """drip settings for a benchmark run: this database, the sink, the checkout's lessons."""
    env = {
        "DRIP_DATABASE_URL": url,
        "DRIP_MAIL_URL": f"smtp://127.0.0.1:{port}",
        "DRIP_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "DRIP_BASE_URL": "https://learn.example.com",
        "DRIP_FROM": "Drip Lessons <lessons@example.com>",
        "DRIP_LESSONS_DIR": str(ROOT / "lessons"),
        "DRIP_TEMPLATES_DIR": str(ROOT / "templates"),
    }
    return load_settings(env=env, config_path=ROOT / "no-such-drip.toml")


def worker(url: str, port: int, ready: Any, start: Any, results: Any) -> None:
    """A worker process: get ready (imports, templates), wait for the start, make one pass."""
    app = App.open(settings_for(url, port))
    dispatcher = app.dispatcher()
    # Render and inline the variant the pass sends, as a worker that ran a pass before holds it.
    with dispatcher.engine.connect() as conn:
        first = conn.execute(sa.select(ENROLLMENT.c.id).limit(1)).scalar_one()
        rows, existing = store.load_batch(conn, [first])
    action = plan(rows[0], dispatcher.catalog.get(rows[0].course), existing.get(first, {}), NOW)
    assert isinstance(action, Send), action
    dispatcher.mail.template(action.course, action.lesson, action.extras)
    ready.put(os.getpid())
    start.wait()
    try:
        result = send_due(dispatcher, NOW)
    finally:
        dispatcher.transport.close()
        app.engine.dispose()
    results.put(result.sent)


@contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    """A fresh, migrated database of the backend, removed afterwards."""
    if backend == "SQLite":
        with tempfile.TemporaryDirectory(prefix="drip-bench-") as folder:
            url = f"sqlite:///{folder}/drip.db"
            _migrate(url)
            yield url
        return
    admin_url = sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"drip_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


def enroll(url: str, people: int) -> None:
    """One cohort on the sample course, everyone due at NOW."""
    engine = make_engine(url)
    cohort = create_cohort(
        engine, name="bench", course="sample", start=NOW.date(), timezone="UTC", now=NOW
    )
    rows = [Row(n + 2, f"reader{n:06d}@example.com", f"Reader {n}", None) for n in range(people)]
    enroll_rows(engine, cohort, rows, now=NOW)
    engine.dispose()


def wait_for_result(results: Any, processes: list[Any]) -> int:
    """The next worker's count of sent messages; stop if a worker died without one."""
    while True:
        try:
            return int(results.get(timeout=1.0))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                for p in processes:
                    p.kill()
                raise SystemExit("a worker failed; its traceback is above") from None


def measure(backend: str, workers: int, people: int, pg_url: str) -> Run:
    """Run one configuration and check the sink got each lesson exactly once."""
    spawn = mp.get_context("spawn")
    with database(backend, pg_url) as url:
        enroll(url, people)
        port = free_port()
        sink, stats_path = start_sink_process(port)
        try:
            ready, start, results = spawn.Queue(), spawn.Event(), spawn.Queue()
            processes = [
                spawn.Process(target=worker, args=(url, port, ready, start, results))
                for _ in range(workers)
            ]
            for process in processes:
                process.start()
            for _ in processes:
                ready.get(timeout=120)
            began = time.perf_counter()
            start.set()
            sent = sum(wait_for_result(results, processes) for _ in processes)
            seconds = time.perf_counter() - began
            for process in processes:
                process.join()
        finally:
            stats = stop_sink(sink, stats_path)
    unique = len({message_id for message_id, _ in stats["messages"]})
    if not sent == stats["count"] == unique == people:
        raise SystemExit(
            f"{backend} x{workers}: {people} people, workers sent {sent}, sink got "
            f"{stats['count']} ({unique} unique)"
        )
    return Run(backend, workers, people, seconds)


def main() -> None:
    """Measure every configuration and print a table with ratios against one PostgreSQL worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=3000, help="People (messages) per run.")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "DRIP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="A PostgreSQL server where benchmark databases may be created and dropped.",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="Runs of each configuration; the median one counts."
    )
    args = parser.parse_args()
    plan = [("PostgreSQL", 1), ("PostgreSQL", 2), ("PostgreSQL", 4), ("SQLite", 1)]
    load = os.getloadavg()[0]
    runs: dict[tuple[str, int], list[Run]] = {config: [] for config in plan}
    # Rounds go through every configuration in turn, so noise from other work hits them alike.
    for round_number in range(1, args.rounds + 1):
        for backend, workers in plan:
            run = measure(backend, workers, args.people, args.pg_url)
            print(
                f"  round {round_number}: {backend} x{workers}: {run.rate:,.0f} msg/s",
                file=sys.stderr,
                flush=True,
            )
            runs[(backend, workers)].append(run)
    # The median run of each configuration counts (the best of a few flatters).
    best = {
        config: sorted(found, key=lambda r: r.rate)[len(found) // 2]
        for config, found in runs.items()
    }
    baseline = best[plan[0]].rate
    print(
        f"\ndrip delivery throughput: {args.people} people per run, median of {args.rounds} "
        f"rounds, {os.cpu_count()} CPUs (load {load:.1f} at start), fast SMTP sink\n"
    )
    print(
        f"{'backend':<12}{'workers':>8}{'seconds':>10}{'msg/s':>10}{'vs 1 PG worker':>16}"
        f"{'all rounds (msg/s)':>28}"
    )
    for config in plan:
        run = best[config]
        every = ", ".join(f"{r.rate:,.0f}" for r in runs[config])
        print(
            f"{run.backend:<12}{run.workers:>8}{run.seconds:>10.2f}{run.rate:>10,.0f}"
            f"{run.rate / baseline:>15.2f}x{every:>28}"
        )


if __name__ == "__main__":
    main()
