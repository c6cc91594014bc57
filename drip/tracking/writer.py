"""Group commit for the open pixel: the hits that arrive together (over the event loop's turns
until one brings none) are a batch; its deliveries not cached are read in one query, each hit is
judged, the events are written in one transaction and then each waiting request is told whether
its delivery exists. On SQLite the event loop does this itself while nobody else holds the write
lock; otherwise (a lock held, or PostgreSQL, or an outbox to fill) one writer thread does it."""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import events, outgoing
from drip.checkpoints import Checkpointer
from drip.models import DELIVERY as D
from drip.tracking.hits import Sent, SentCache, open_row
from drip.tracking.verdict import counts

log = logging.getLogger("drip.tracking")


class Waiter(Protocol):
    """Told once a hit is settled: True when its delivery exists (and its event, if it counts,
    is committed), False when there is no such delivery. An asyncio or concurrent Future."""

    def done(self) -> bool: ...
    def set_result(self, result: bool) -> None: ...
    def set_exception(self, exception: BaseException) -> None: ...


Handoff = Callable[[Callable[[], None]], object]  # runs a callable where the waiters live
# One hit on the pixel: delivery id, HTTP method, user agent, time, and whom to tell.
OpenHit = tuple[int, str, str, datetime, Waiter, Handoff]


def _settle(waiters: list[tuple[Waiter, bool]], error: BaseException | None) -> None:
    for waiter, found in waiters:
        if waiter.done():  # the request went away meanwhile
            continue
        if error is None:
            waiter.set_result(found)
        else:
            waiter.set_exception(error)


EVENT_COLUMNS = (
    "enrollment_id", "delivery_id", "kind", "at", "method", "seconds_since_send", "verdict",
    "reason", "detail", "option", "correct", "link",
)  # fmt: skip
SQLITE_INSERT = (
    f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
SQLITE_SENT = "SELECT id, enrollment_id, sent_at, created_at FROM delivery WHERE id IN ({})"


def _sent(delivery_id: int, enrollment_id: int, sent_at: Any, created_at: Any) -> Sent:
    # Mail can be fetched before the pass records sent_at; the row's creation is the best bound.
    if sent_at is None:
        return Sent(enrollment_id, _utc(created_at), settled=False)
    return Sent(enrollment_id, _utc(sent_at))


def _utc(value: Any) -> datetime | None:
    # As UTCDateTime reads it: naive UTC, a string on SQLite's driver.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


def _lookup(conn: sa.Connection, ids: list[int]) -> dict[int, Sent]:
    """The deliveries among `ids`, in one query."""
    if not ids:
        return {}
    query = sa.select(D.c.id, D.c.enrollment_id, D.c.sent_at, D.c.created_at).where(D.c.id.in_(ids))
    return {row[0]: _sent(*row) for row in conn.execute(query)}


def _lookup_raw(raw: sqlite3.Connection, ids: list[int]) -> dict[int, Sent]:
    """_lookup straight through SQLite's driver (the hot path of every open)."""
    if not ids:
        return {}
    cursor = raw.execute(SQLITE_SENT.format(",".join("?" * len(ids))), ids)
    return {row[0]: _sent(*row) for row in cursor.fetchall()}


def _rows(batch: list[OpenHit], known: dict[int, Sent]) -> tuple[list[dict[str, Any]], list[bool]]:
    """The judged event rows of the hits that count, and whether each hit's delivery exists."""
    rows, found = [], []
    for delivery_id, method, agent, now, _, _ in batch:
        sent = known.get(delivery_id)
        found.append(sent is not None)
        if sent is not None and counts(method):
            rows.append(open_row(sent, delivery_id, method, agent, now))
    return rows, found


def _write_sqlite(raw: Any, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of event rows in one transaction straight through the driver, whose
    per-batch cost is a fraction of the core path (the hot path of every open)."""
    values = []
    for row in rows:
        value = list(_VALUES(row))
        value[_AT] = _sqlite_time(value[_AT])  # stored as UTCDateTime stores it
        values.append(value)
    raw.execute("BEGIN IMMEDIATE")
    try:
        raw.executemany(SQLITE_INSERT, values)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise


_VALUES = itemgetter(*EVENT_COLUMNS)
_AT = EVENT_COLUMNS.index("at")


def _sqlite_time(moment: datetime) -> str:
    # SQLAlchemy's SQLite DateTime text, "2026-11-30 09:00:00.000000" (naive UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def record_opens(conn: sa.Connection, cache: SentCache, batch: list[OpenHit]) -> list[bool]:
    """Look up, judge and write a batch of hits in one transaction; whether each delivery exists.
    With an outbox configured, the batch's outbox rows go in the same transaction."""
    if conn.dialect.name == "sqlite" and outgoing.config_of(conn) is None:
        return record_opens_now(conn.connection.dbapi_connection, cache, batch)  # type: ignore[arg-type]
    missing = sorted({hit[0] for hit in batch if cache.get(hit[0]) is None})
    with conn.begin():
        known = _known(cache, batch, _lookup(conn, missing))
        rows, found = _rows(batch, known)
        events.insert(conn, rows)
    return found


def _known(cache: SentCache, batch: Iterable[OpenHit], read: dict[int, Sent]) -> dict[int, Sent]:
    for delivery_id, sent in read.items():
        cache.put(delivery_id, sent)
    known = dict(read)
    for hit in batch:
        if hit[0] not in known:
            cached = cache.get(hit[0])
            if cached is not None:
                known[hit[0]] = cached
    return known


# SQLite's "busy" and "locked": another connection holds the lock, nothing was done.
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
MMAP_BYTES = 256 * 2**20  # reads of hot pages without a copy through SQLite's page cache
GATHER = 64  # hits at most in a batch the event loop gathers before it writes


def _tune(raw: Any) -> None:
    """Settings of a connection that only records opens (out of the pool, so its own)."""
    raw.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
    raw.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    # An open's event names the delivery just read (or cached: deliveries are never deleted)
    # and that delivery's enrollment, which its own foreign key keeps: the checks would find
    # nothing, at two index probes an event.
    raw.execute("PRAGMA foreign_keys=OFF")


def _busy(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) in BUSY_CODES
    )


def record_opens_now(raw: sqlite3.Connection, cache: SentCache, batch: list[OpenHit]) -> list[bool]:
    """record_opens straight through a SQLite driver connection: on the event loop's, which
    never waits for the lock, it raises the driver's busy error, with nothing written, while
    another connection holds it."""
    missing = sorted({hit[0] for hit in batch if cache.get(hit[0]) is None})
    known = _known(cache, batch, _lookup_raw(raw, missing))
    rows, found = _rows(batch, known)
    if rows:
        _write_sqlite(raw, rows)
    return found


class EventWriter:
    """Records pixel hits in batches (group commit) and tells the waiters once a batch is
    committed. On SQLite the event loop writes each batch itself on a connection of its own
    that never waits for the lock: a hand-off to a thread and back costs more than the
    batch's own work. A batch that finds the lock held (a sending pass, a report's write) goes
    to one writer thread, which waits its turn; so does every batch on PostgreSQL or with an
    outbox to fill, whose writes may wait on the network."""

    def __init__(
        self,
        engine: Engine,
        max_batch: int = 500,
        cache_size: int = 10_000,
        checkpoint_every: int = 1000,
        inline: bool = True,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.checkpoint_every = checkpoint_every
        self.cache = SentCache(cache_size)  # the writer thread's
        # The event loop's own connection and cache; None until its first batch, False when
        # this database cannot be written from the loop.
        self._here: sa.Connection | None | bool = None if inline else False
        self._here_cache = SentCache(cache_size)
        self._checkpointer: Checkpointer | None = None
        self._queue: queue.SimpleQueue[list[OpenHit] | None] = queue.SimpleQueue()
        self._turn: list[OpenHit] = []  # hits from the event loop's current turn
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

    def submit(self, hits: list[OpenHit]) -> None:
        """Queue hits; each one's handoff later settles its waiter once its batch is committed."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="drip-events", daemon=True
                    )
                    self._thread.start()
        self._queue.put(hits)

    def submit_from(self, loop: asyncio.AbstractEventLoop, hit: OpenHit) -> None:
        """Queue a hit from the event loop (only ever from it). A batch is the hits of the
        loop's turns until a turn brings no new one (or GATHER are waiting): one commit then
        covers every connection whose request was already on its way, at the cost of one more
        look at the sockets, which wait no time. With 8 busy clients that is 8 hits a commit
        instead of 1 to 8 (4 on average), 5-9 % less CPU a hit; a lone hit waits one turn."""
        if not self._turn:
            loop.call_soon(self._end_turn, loop, 0)
        self._turn.append(hit)

    def _end_turn(self, loop: asyncio.AbstractEventLoop, seen: int) -> None:
        if seen < len(self._turn) < GATHER:
            loop.call_soon(self._end_turn, loop, len(self._turn))  # more came: one more turn
            return
        hits, self._turn = self._turn, []
        # The event loop writes it when it can, else the writer thread (one wake-up a batch).
        if not self._record_here(hits):
            self.submit(hits)

    def _record_here(self, batch: list[OpenHit]) -> bool:
        """Record a batch on the event loop; False, with nothing written, when it must go to
        the writer thread instead (the lock is held, or this database is not SQLite's)."""
        try:
            conn = self._loop_connection()
        except Exception:  # the writer thread tries, and answers 500 and logs if it fails too
            log.debug("cannot open the event loop's connection", exc_info=True)
            return False
        if conn is None:
            return False
        if self._checkpointer is not None and self._checkpointer.rewinding.locked():
            return False  # the writer thread waits for the rewind
        raw = conn.connection.dbapi_connection
        error: BaseException | None = None
        found: list[bool] = []
        try:
            found = record_opens_now(raw, self._here_cache, batch)  # type: ignore[arg-type]
        except Exception as exc:
            if _busy(exc):
                return False
            log.error("cannot record %d opens: %s", len(batch), exc)
            error = exc
            self._close_loop_connection()
        else:
            if self._checkpointer is not None:
                self._checkpointer.wrote(len(batch))
        _settle([(hit[4], bool(found and found[i])) for i, hit in enumerate(batch)], error)
        return True

    def _loop_connection(self) -> sa.Connection | None:
        if self._here is False:
            return None
        if isinstance(self._here, sa.Connection) and not self._here.closed:
            return self._here
        conn = self.engine.connect()
        if conn.dialect.name != "sqlite" or outgoing.config_of(conn) is not None:
            conn.close()
            self._here = False
            return None
        conn.detach()  # out of the pool: its settings are its own
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # Never wait for the lock on the event loop: a busy batch goes to the writer thread.
        raw.execute("PRAGMA busy_timeout=0")
        _tune(raw)
        self._start_checkpointer()
        self._here = conn
        return conn

    def _close_loop_connection(self) -> None:
        if isinstance(self._here, sa.Connection):
            try:
                self._here.close()
            except Exception:  # closing a broken connection must not stop the pixel
                log.debug("closing the event loop's connection failed", exc_info=True)
            self._here = None

    def _start_checkpointer(self) -> None:
        with self._lock:
            if self._checkpointer is None:
                self._checkpointer = Checkpointer(self.engine, self.checkpoint_every)

    def close(self) -> None:
        """Write what is queued, stop the thread and close the connections."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        self._close_loop_connection()
        with self._lock:
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()

    def _connection(self) -> sa.Connection:
        # One connection for the thread's life: a pool checkout per batch costs as much as the
        # insert itself.
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            conn = self.engine.connect()
            if conn.dialect.name == "sqlite":
                # Its checkpoints run in their own thread; the connection leaves the pool so
                # no other user gets it without automatic checkpoints.
                conn.detach()
                raw = conn.connection.dbapi_connection
                assert raw is not None
                _tune(raw)
                self._start_checkpointer()
            self._conn = conn
        return self._conn

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = list(first)
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.extend(more)
            error: BaseException | None = None
            found: list[bool] = []
            try:
                conn = self._connection()
                if self._checkpointer is not None:
                    with self._checkpointer.rewinding:
                        pass  # a rewind under way ends first
                found = record_opens(conn, self.cache, batch)
                if self._checkpointer is not None:
                    self._checkpointer.wrote(len(batch))
            except Exception as exc:  # each waiter answers 500; the thread goes on
                log.error("cannot record %d opens: %s", len(batch), exc)
                error = exc
                self._close_connection()
            # One wake-up per batch and event loop, not one per request.
            groups: dict[Handoff, list[tuple[Waiter, bool]]] = {}
            for i, hit in enumerate(batch):
                groups.setdefault(hit[5], []).append((hit[4], bool(found and found[i])))
            for handoff, waiters in groups.items():
                handoff(partial(_settle, waiters, error))
        self._close_connection()
