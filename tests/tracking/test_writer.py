"""The pixel's group commit: one thread looks up, judges and writes each batch of opens."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from pathlib import Path

import sqlalchemy as sa
from support import utc
from test_web import IPHONE, LATER, start_site

from drip.db import make_engine
from drip.models import EVENT as EV
from drip.tracking.writer import EventWriter


def run_now(callback: object) -> None:
    callback()  # type: ignore[operator]


def opens(engine: sa.Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        query = sa.select(EV.c.delivery_id, EV.c.method, EV.c.verdict).where(EV.c.kind == "open")
        return [tuple(row) for row in conn.execute(query.order_by(EV.c.id))]  # type: ignore[misc]


def test_a_batch_settles_each_hit_after_its_commit(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> None:
    site = start_site(tmp_path, db_url, engine)
    delivery = site.delivery("ada@example.com")
    writer = EventWriter(engine)
    hits = [(delivery, "GET"), (delivery, "HEAD"), (delivery + 1000, "GET"), (delivery, "GET")]
    waiters: list[Future[bool]] = []
    for delivery_id, method in hits:
        waiter: Future[bool] = Future()
        writer.submit([(delivery_id, method, IPHONE, LATER, waiter, run_now)])
        waiters.append(waiter)
    assert [w.result(timeout=10) for w in waiters] == [True, True, False, True]
    writer.close()
    # HEAD never counts and an unknown delivery writes nothing.
    assert opens(engine) == [(delivery, "GET", "human")] * 2


def test_checkpoints_run_in_their_own_thread_and_the_pool_keeps_automatic_ones(
    tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        return  # PostgreSQL has no WAL checkpoints to move
    # Two: a sending pass records on one connection while it claims the next batch on another.
    engine = make_engine(db_url, pool_size=2, max_overflow=0)
    site = start_site(tmp_path, db_url, engine)
    delivery = site.delivery("ada@example.com")
    database = Path(sa.engine.make_url(db_url).database or "")
    # Held open throughout, so no connection closing last checkpoints on its way out.
    bystander = sqlite3.connect(database, isolation_level=None)
    bystander.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = database.stat().st_size
    writer = EventWriter(engine, checkpoint_every=50)
    waiters: list[Future[bool]] = []
    for i in range(400):
        waiter: Future[bool] = Future()
        writer.submit(
            [(delivery, "GET", IPHONE, utc(2026, 11, 30, 10, 0, i % 60), waiter, run_now)]
        )
        waiters.append(waiter)
    assert all(w.result(timeout=10) for w in waiters)
    writer.close()
    # The writer's connection turned automatic checkpoints off, so only the checkpointer can
    # have moved its 400 events from the WAL into the database file.
    assert database.stat().st_size > size
    pooled = engine.raw_connection()  # a pooled connection: never the writer's
    assert pooled.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    pooled.close()
    assert len(opens(engine)) == 400
    bystander.close()
    engine.dispose()
