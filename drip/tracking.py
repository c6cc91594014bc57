"""Record opens, clicks, confirmations, answers, pauses and unsubscribes with a verdict."""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from drip.db import session as open_session
from drip.enrollment import change_enrollment
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import (
    Cohort,
    Delivery,
    Enrollment,
    EnrollmentStatus,
    EventKind,
    Person,
    Verdict,
)
from drip.schedule import local_date
from drip.verdict import BURST_SECONDS, LINK_KINDS, Hit, Judgement, counts, judge

log = logging.getLogger("drip.tracking")

PAUSES = {"pause1": 7, "pause2": 14}
IMPLIED = "implied by "


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request that tracking may keep: method, user agent and time."""

    method: str
    user_agent: str
    now: datetime


@dataclass(frozen=True)
class Sent:
    """The delivery facts a hit needs: its enrollment and when it was sent."""

    enrollment_id: int
    sent_at: datetime | None
    settled: bool = True  # False while sent_at is only the row's creation time


class SentCache:
    """A bounded LRU of sent deliveries; a sent delivery never changes, so opens skip a query."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[int, Sent] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, delivery_id: int) -> Sent | None:
        with self._lock:
            found = self._items.get(delivery_id)
            if found is not None:
                self._items.move_to_end(delivery_id)
            return found

    def put(self, delivery_id: int, sent: Sent) -> None:
        if not sent.settled:
            return
        with self._lock:
            self._items[delivery_id] = sent
            if len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass(frozen=True)
class Status:
    """An enrollment as a page shows it: status, pause end and next lesson in local time."""

    status: str
    paused_until: date | None
    next_local: datetime | None
    timezone: str
    changed: bool = False


@dataclass(frozen=True)
class Confirmed:
    """What the "got it" page shows."""

    title: str
    takeaway: str
    status: Status


@dataclass(frozen=True)
class Answered:
    """What the answer page shows: the answer of record, whether it is right, and why."""

    title: str
    question: str
    options: list[str]
    chosen: int
    correct: int
    explanation: str
    repeat: bool


def _seconds(sent_at: datetime | None, now: datetime) -> float | None:
    return None if sent_at is None else round((now - sent_at).total_seconds(), 3)


def _event(
    sent: Sent, delivery_id: int, kind: str, req: Request, judgement: Judgement, detail: str = ""
) -> dict[str, Any]:
    return {
        "enrollment_id": sent.enrollment_id,
        "delivery_id": delivery_id,
        "kind": kind,
        "at": req.now,
        "method": req.method.upper()[:10],
        "seconds_since_send": _seconds(sent.sent_at, req.now),
        "verdict": judgement.verdict.value,
        "reason": judgement.reason,
        "detail": detail,
    }


def _sent(conn: sa.Connection, delivery_id: int) -> Sent | None:
    row = conn.execute(
        sa.select(D.c.enrollment_id, D.c.sent_at, D.c.created_at).where(D.c.id == delivery_id)
    ).first()
    if row is None:
        return None
    # Mail can be fetched before the pass records sent_at; the row's creation is the best bound.
    return Sent(row.enrollment_id, row.sent_at or row.created_at, row.sent_at is not None)


def sent_of(engine: Engine, cache: SentCache, delivery_id: int) -> Sent | None:
    """The delivery's enrollment and send time, from the cache or the database."""
    sent = cache.get(delivery_id)
    if sent is None:
        with engine.connect() as conn:
            sent = _sent(conn, delivery_id)
        if sent is not None:
            cache.put(delivery_id, sent)
    return sent


def open_event(sent: Sent, delivery_id: int, req: Request) -> dict[str, Any]:
    """The judged open event row of one hit on the pixel."""
    hit = Hit("open", req.method, req.user_agent, _seconds(sent.sent_at, req.now))
    return _event(sent, delivery_id, "open", req, judge(hit))


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
    "reason", "detail",
)  # fmt: skip
SQLITE_INSERT = (
    f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)


def _insert_events(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of event rows in one transaction; on SQLite straight through the driver,
    whose per-batch cost is a fraction of the ORM-free core path (the hot path of every open)."""
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


def _record_link_hit(
    conn: sa.Connection, sent: Sent, delivery_id: int, kind: str, detail: str, req: Request
) -> Judgement:
    """Judge and write a click, confirm or answer, its burst partners and its implied open."""
    window = req.now - timedelta(seconds=BURST_SECONDS)
    last_other = conn.execute(
        sa.select(sa.func.max(EV.c.at)).where(
            EV.c.delivery_id == delivery_id,
            EV.c.kind.in_(sorted(LINK_KINDS)),
            EV.c.at >= window,
            sa.not_(sa.and_(EV.c.kind == kind, EV.c.detail == detail)),
        )
    ).scalar()
    other = None if last_other is None else max(0.0, (req.now - last_other).total_seconds())
    hit = Hit(kind, req.method, req.user_agent, _seconds(sent.sent_at, req.now), other)
    judgement = judge(hit)
    conn.execute(EV.insert(), _event(sent, delivery_id, kind, req, judgement, detail))
    if other is not None and judgement.verdict is Verdict.machine:
        # The earlier hits of the burst were the same scanner: take back their human verdicts.
        conn.execute(
            EV.update()
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.at >= window,
                EV.c.verdict == Verdict.human.value,
                sa.or_(EV.c.kind.in_(sorted(LINK_KINDS)), EV.c.reason.startswith(IMPLIED)),
            )
            .values(verdict=Verdict.machine.value, reason=judgement.reason)
        )
    if judgement.verdict is Verdict.human:
        opened = conn.execute(
            sa.select(EV.c.id)
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.kind == EventKind.open.value,
                EV.c.verdict == Verdict.human.value,
            )
            .limit(1)
        ).first()
        if opened is None:
            implied = Judgement(Verdict.human, f"{IMPLIED}{kind}")
            conn.execute(EV.insert(), _event(sent, delivery_id, "open", req, implied))
    return judgement


def _delivery_and_version(conn: sa.Connection, delivery_id: int, *version: Any) -> Any:
    """A delivery's enrollment and send time with the given columns of its lesson version."""
    return conn.execute(
        sa.select(D.c.enrollment_id, D.c.sent_at, D.c.created_at, *version)
        .select_from(D.outerjoin(LV, LV.c.content_hash == D.c.content_hash))
        .where(D.c.id == delivery_id)
    ).first()


def record_click(engine: Engine, delivery_id: int, index: int, req: Request) -> str | None:
    """Record a click and return the link recorded at send time, or None if there is none."""
    with engine.begin() as conn:
        row = _delivery_and_version(conn, delivery_id, LV.c.links)
        if row is None:
            return None
        links = json.loads(row.links or "[]")
        if not 0 <= index < len(links):
            return None
        url = str(links[index])
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            _record_link_hit(conn, sent, delivery_id, "click", json.dumps({"link": index}), req)
        return url


def _status(conn: sa.Connection, enrollment_id: int, changed: bool = False) -> Status:
    row = conn.execute(
        sa.select(E.c.status, E.c.paused_until, E.c.next_due_at, P.c.timezone, C.c.timezone)
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id == enrollment_id)
    ).one()
    zone = row[3] or row[4] or "UTC"
    local = row.next_due_at.astimezone(ZoneInfo(zone)) if row.next_due_at else None
    return Status(row.status, row.paused_until, local, zone, changed)


def record_confirm(engine: Engine, delivery_id: int, req: Request) -> Confirmed | None:
    """Record a "got it" and return what the page shows, or None for an unknown delivery."""
    with engine.begin() as conn:
        row = _delivery_and_version(conn, delivery_id, LV.c.title, LV.c.takeaway)
        if row is None:
            return None
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            _record_link_hit(conn, sent, delivery_id, "confirm", "", req)
        return Confirmed(row.title or "", row.takeaway or "", _status(conn, row.enrollment_id))


def record_answer(engine: Engine, delivery_id: int, option: int, req: Request) -> Answered | None:
    """Record an answer; the page shows the first answer a person gave, which stands."""
    with engine.begin() as conn:
        row = _delivery_and_version(conn, delivery_id, LV.c.title, LV.c.check)
        check = json.loads(row.check or "null") if row is not None else None
        if row is None or not check or not 0 <= option < len(check["options"]):
            return None
        first = conn.execute(
            sa.select(EV.c.detail)
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.kind == EventKind.answer.value,
                EV.c.verdict != Verdict.machine.value,
            )
            .order_by(EV.c.id)
            .limit(1)
        ).scalar()
        chosen = json.loads(first)["option"] if first else option
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            detail = {"option": option, "correct": option == check["answer"]}
            _record_link_hit(conn, sent, delivery_id, "answer", json.dumps(detail), req)
        return Answered(
            title=row.title or "",
            question=check["question"],
            options=list(check["options"]),
            chosen=chosen,
            correct=check["answer"],
            explanation=check.get("explanation") or "",
            repeat=first is not None,
        )


def enrollment_status(engine: Engine, delivery_id: int) -> Status | None:
    """The state of the delivery's enrollment, for the pause and unsubscribe pages."""
    with engine.connect() as conn:
        enrollment_id = conn.execute(
            sa.select(D.c.enrollment_id).where(D.c.id == delivery_id)
        ).scalar()
        return None if enrollment_id is None else _status(conn, enrollment_id)


def _plan(action: str, status: str, today: date) -> tuple[str, date | None, str] | None:
    """What a page action does to an enrollment in this status: (change, until, reason)."""
    if action in PAUSES and status in (EnrollmentStatus.active, EnrollmentStatus.paused):
        until = today + timedelta(days=PAUSES[action])
        return "pause", until, f"paused until {until.isoformat()} via the pause page"
    if action == "resume" and status == EnrollmentStatus.paused:
        return "resume", None, "resumed via the pause page"
    if action == "unsubscribe":
        return "unsubscribe", None, "unsubscribed via the page"
    return None


def change(
    engine: Engine, delivery_id: int, action: str, req: Request, reason: str = ""
) -> Status | None:
    """Pause (pause1/pause2), resume or unsubscribe the delivery's enrollment, as a person did."""
    with open_session(engine) as db:
        found = db.exec(
            select(Enrollment, Cohort, Person, Delivery.sent_at)
            .join(Delivery, Delivery.enrollment_id == Enrollment.id)  # type: ignore[arg-type]
            .join(Cohort, Cohort.id == Enrollment.cohort_id)  # type: ignore[arg-type]
            .join(Person, Person.id == Enrollment.person_id)  # type: ignore[arg-type]
            .where(Delivery.id == delivery_id)
        ).first()
        if found is None:
            return None
        enrollment, cohort, person, sent_at = found
        changed = False
        today = local_date(req.now, person.timezone or cohort.timezone)
        plan = _plan(action, enrollment.status, today)
        if plan is not None:
            name, until, default = plan
            changed = change_enrollment(
                db,
                enrollment,
                cohort,
                person,
                name,
                now=req.now,
                method=req.method.upper()[:10],
                until=until,
                delivery_id=delivery_id,
                reason=reason or default,
                seconds_since_send=_seconds(sent_at, req.now),
            )
        db.commit()
        return _status(db.connection(), enrollment.id or 0, changed)


def database_ok(engine: Engine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1
    except sa.exc.SQLAlchemyError:
        return False
