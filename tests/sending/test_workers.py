"""Many `drip send-due` workers on one PostgreSQL database deliver each lesson exactly once."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from support import PG_URL, ROOT, cli_env, make_settings, utc

from drip.db import make_engine, migrate
from drip.models import Delivery, Enrollment
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="needs PostgreSQL: set DRIP_TEST_DATABASE_URL=postgresql://user@host/db"
)

PEOPLE = 5000
WORKERS = 4
LEASE_SECONDS = 300
# A Tuesday, inside the cohort's 07:30-18:00 UTC window: everyone's first lesson is due now.
NOW = utc(2026, 3, 3, 10, 0)


def load_sink() -> ModuleType:
    """Import bench/sink.py, which is a script rather than part of the package."""
    spec = importlib.util.spec_from_file_location("drip_bench_sink", ROOT / "bench" / "sink.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sink = load_sink()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own, dropped afterwards."""
    admin_url = sa.engine.make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"drip_w_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def sink_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The fast SMTP sink (bench/sink.py) in its own process: (process, port, stats file)."""
    port = sink.free_port()
    process, stats_path = sink.start_sink_process(port, tmp_path / "sink.json")
    yield process, port, stats_path
    if process.poll() is None:
        process.kill()
        process.wait()


def enroll_everyone(url: str, people: int = PEOPLE, name: str = "load") -> None:
    """One cohort on the sample course with `people` people, all due at NOW."""
    engine = make_engine(url)
    cohort = create_cohort(
        engine, name=name, course="sample", start=NOW.date(), timezone="UTC", now=NOW
    )
    rows = [Row(n + 2, f"{name}{n:05d}@example.com", f"Reader {n}", None) for n in range(people)]
    assert enroll_rows(engine, cohort, rows, now=NOW).enrolled == people
    engine.dispose()


def start_worker(env: dict[str, str], now: datetime, cwd: Path) -> subprocess.Popen[str]:
    """One `drip send-due` pass in its own process (in folder cwd), reporting each message as JSON."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drip.cli",
            "send-due",
            "--now",
            now.isoformat(),
            "--format",
            "json",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Wait for a worker and return the messages it reports."""
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    return list(json.loads(out))


def database_state(url: str) -> dict[str, Any]:
    """Deliveries and enrolments as the database records them."""
    engine = make_engine(url)
    d = Delivery.__table__  # type: ignore[attr-defined]
    e = Enrollment.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        deliveries = conn.execute(sa.select(d.c.enrollment_id, d.c.status, d.c.message_id)).all()
        enrollments = conn.execute(
            sa.select(e.c.id, e.c.lessons_sent, e.c.claimed_by, e.c.claimed_until)
        ).all()
    engine.dispose()
    return {"deliveries": deliveries, "enrollments": enrollments}


def worker_env(tmp_path: Path, url: str, port: int) -> dict[str, str]:
    settings = make_settings(
        tmp_path,
        url,
        mail_url=f"smtp://127.0.0.1:{port}",
        batch_size="100",
        lease_seconds=str(LEASE_SECONDS),
    )
    return cli_env(settings)


def assert_each_delivered_once(url: str, stats: dict[str, Any]) -> None:
    """Every enrolment's first lesson is sent in the database and reached the sink once by ID."""
    state = database_state(url)
    sent = [row for row in state["deliveries"] if row.status == "sent"]
    assert len(state["deliveries"]) == PEOPLE
    assert len(sent) == PEOPLE
    assert len({row.enrollment_id for row in sent}) == PEOPLE
    assert all(row.lessons_sent == 1 and row.claimed_by is None for row in state["enrollments"])
    at_sink = {message_id for message_id, _ in stats["messages"]}
    assert at_sink == {row.message_id for row in sent}
    # One Message-ID per recipient: a resent message is the same message, never a new one.
    ids_by_recipient: dict[str, set[str]] = {}
    for message_id, recipients in stats["messages"]:
        assert len(recipients) == 1
        ids_by_recipient.setdefault(recipients[0], set()).add(message_id)
    assert len(ids_by_recipient) == PEOPLE
    assert all(len(ids) == 1 for ids in ids_by_recipient.values())


def test_four_workers_deliver_each_lesson_exactly_once(
    tmp_path: Path, pg_url: str, sink_process: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    process, port, stats_path = sink_process
    enroll_everyone(pg_url)
    env = worker_env(tmp_path, pg_url, port)

    workers = [start_worker(env, NOW, tmp_path) for _ in range(WORKERS)]
    reports = [finish(w) for w in workers]

    stats = sink.stop_sink(process, stats_path)
    assert stats["count"] == PEOPLE
    assert len({message_id for message_id, _ in stats["messages"]}) == PEOPLE
    assert_each_delivered_once(pg_url, stats)
    sent_by_worker = [sum(1 for item in r if item["outcome"] == "sent") for r in reports]
    assert sum(sent_by_worker) == PEOPLE
    assert sum(1 for n in sent_by_worker if n > 0) >= 2, sent_by_worker  # the work was shared


def test_a_killed_worker_loses_nothing_and_resends_only_its_messages_in_flight(
    tmp_path: Path, pg_url: str, sink_process: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    process, port, stats_path = sink_process
    enroll_everyone(pg_url)
    env = worker_env(tmp_path, pg_url, port)

    workers = [start_worker(env, NOW, tmp_path) for _ in range(WORKERS)]
    deadline = time.monotonic() + 120
    while sink.request_stats(port, stats_path)["count"] < PEOPLE // 5:
        assert time.monotonic() < deadline, "the workers sent too little to test a crash"
        assert all(w.poll() is None for w in workers), "a worker finished before the crash"
        time.sleep(0.02)
    # Freeze a worker, and kill it only while it holds claimed enrolments, so it dies mid-batch.
    victim = workers[0]
    claims: list[Any] = []
    while not claims:
        assert victim.poll() is None, "the worker finished before it could be killed"
        victim.send_signal(signal.SIGSTOP)
        claims = [
            row
            for row in database_state(pg_url)["enrollments"]
            if row.claimed_by and row.claimed_by.endswith(f":{victim.pid}")
        ]
        if not claims:
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    in_flight = {row.id for row in claims}
    lease_ends = max(row.claimed_until for row in claims)
    assert lease_ends >= NOW + timedelta(seconds=LEASE_SECONDS)
    for worker in workers[1:]:
        finish(worker)
    before = sink.request_stats(port, stats_path)["count"]
    assert PEOPLE - len(in_flight) <= before <= PEOPLE

    # A pass before the lease ends leaves the killed worker's claims alone...
    early = start_worker(
        env, min(row.claimed_until for row in claims) - timedelta(seconds=1), tmp_path
    )
    assert [i for i in finish(early) if i["outcome"] == "sent"] == []

    # ...and one after it sends them.
    recovery = start_worker(env, lease_ends + timedelta(seconds=1), tmp_path)
    recovered = [i for i in finish(recovery) if i["outcome"] == "sent"]
    assert len(recovered) == len(in_flight)

    stats = sink.stop_sink(process, stats_path)
    assert_each_delivered_once(pg_url, stats)
    received = Counter(message_id for message_id, _ in stats["messages"])
    duplicates = stats["count"] - PEOPLE
    assert duplicates == sum(n - 1 for n in received.values())
    assert 0 <= duplicates <= len(in_flight)
    assert max(received.values()) <= 2
    twice = {
        recipients[0] for message_id, recipients in stats["messages"] if received[message_id] > 1
    }
    assert twice <= {item["email"] for item in recovered}


def test_a_pass_longer_than_the_lease_keeps_its_claims(
    tmp_path: Path, pg_url: str, sink_process: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    """A rate-limited worker whose pass outlasts the lease still holds the batch it is sending."""
    # Each `drip run` tick passes its start time as `now`, and a later tick of another worker a
    # later one; here B's `now` is A's plus the real time since A started, as in production.
    process, port, stats_path = sink_process
    people, lease = 1000, 4
    enroll_everyone(pg_url, people, "slow")
    settings = make_settings(
        tmp_path,
        pg_url,
        mail_url=f"smtp://127.0.0.1:{port}",
        batch_size="25",
        lease_seconds=str(lease),
        smtp_max_per_second="100",
    )
    env = cli_env(settings)

    started = time.monotonic()
    a = start_worker(env, NOW, tmp_path)
    while sink.request_stats(port, stats_path)["count"] < people // 2:
        assert a.poll() is None, "worker A finished before its pass outlasted the lease"
        time.sleep(0.05)
    assert time.monotonic() - started > lease + 1
    b = start_worker(env, NOW + timedelta(seconds=time.monotonic() - started), tmp_path)
    sent = [item for item in finish(a) + finish(b) if item["outcome"] == "sent"]

    stats = sink.stop_sink(process, stats_path)
    received = Counter(message_id for message_id, _ in stats["messages"])
    assert [m for m, n in received.items() if n > 1] == []
    assert stats["count"] == people
    assert len(sent) == people
