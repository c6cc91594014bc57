"""Group commit for the open pixel: one thread writes queued event rows in batches and tells
each waiting request once its row is committed."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import events, outgoing
from drip.models import EVENT as EV

log = logging.getLogger("drip.tracking")


class Waiter(Protocol):
    """Something to tell when an event is committed: an asyncio or concurrent Future."""

    def done(self) -> bool: ...
    def set_result(self, result: None) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


Handoff = Callable[[Callable[[], None]], object]  # runs a callable where the waiters live


def _settle(waiters: list[Waiter], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # the request went away meanwhile
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


EVENT_COLUMNS = (
    "enrollment_id", "delivery_id", "kind", "at", "method", "seconds_since_send", "verdict",
    "reason", "detail", "option", "correct", "link",
)  # fmt: skip
SQLITE_INSERT = (
    f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)


def _insert_events(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of event rows in one transaction; on SQLite straight through the driver,
    whose per-batch cost is a fraction of the ORM-free core path (the hot path of every open).
    With an outbox configured, the batch's outbox rows go in the same transaction."""
    if outgoing.config_of(conn) is not None:
        with conn.begin():
            events.insert(conn, rows)
        return
    if conn.dialect.name != "sqlite":
        with conn.begin():
            conn.execute(EV.insert(), rows)
        return
    values = [
        tuple(
            _sqlite_time(row[c]) if c == "at" else row[c]  # stored as UTCDateTime stores it
            for c in EVENT_COLUMNS
        )
        for row in rows
    ]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.executemany(SQLITE_INSERT, values)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
    finally:
        cursor.close()


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class EventWriter:
    """One thread writing queued events in batches (group commit) and telling the waiters once a
    batch is committed; threads taking turns on SQLite's write lock are far slower."""

    def __init__(self, engine: Engine, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Waiter, Handoff] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: sa.Connection | None = None

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection must not stop the writer
                log.debug("closing the event writer's connection failed", exc_info=True)
            self._conn = None

    def submit(self, row: dict[str, Any], waiter: Waiter, handoff: Handoff) -> None:
        """Queue an event row; `handoff` later settles the waiter once the row is committed."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="drip-events", daemon=True)
                self._thread.start()
        self._queue.put((row, waiter, handoff))

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _connection(self) -> sa.Connection:
        # One connection for the thread's life: a pool checkout per batch costs as much as the
        # insert itself.
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                self._close_connection()
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            error: BaseException | None = None
            try:
                _insert_events(self._connection(), [row for row, _, _ in batch])
            except Exception as exc:  # each waiter answers 500; the thread goes on
                log.error("cannot write %d events: %s", len(batch), exc)
                error = exc
                self._close_connection()
            # One wake-up per batch and event loop, not one per request.
            groups: dict[Handoff, list[Waiter]] = {}
            for _, waiter, handoff in batch:
                groups.setdefault(handoff, []).append(waiter)
            for handoff, waiters in groups.items():
                handoff(partial(_settle, waiters, error))
        self._close_connection()
