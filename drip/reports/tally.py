"""The report's tallies: the event log added up per delivery, per enrolment and per day.

A cohort of 100,000 people has millions of events; a report that added them up each time took
half a minute. `fold` reads only the events written since it last ran, in id order, and brings
the tallies up to date in the same transaction that moves its mark, so every event is counted
once. The worker folds every minute and every report folds first, so a report is exact and reads
one row per person and one per lesson.

What a delivery's events say (opened, confirmed, the answer of record) is recomputed from all of
that delivery's events whenever one of them is new, so a verdict taken back later (a scanner
caught after its first hits looked human) is counted right. Counts of events (questions, the
activity chart) are added from the new events only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.db import insert_ignoring_conflicts
from drip.events import BOOKKEEPING
from drip.models import DAY_TALLY as DT
from drip.models import DELIVERY_TALLY as DLT
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import TALLY_STATE as TS
from drip.reports.recount import (
    HITS,
    READER,
    attribute_unsubscribe,
    latest,
    recount_deliveries,
    recount_enrollments,
)
from drip.states import EventKind, Verdict

NAME = "report"
# Each transaction holds the write lock while it runs, and sending passes and the pixel wait
# meanwhile; yet each one also recounts every enrolment its events touch, so many small ones
# cost more in all. A fold sizes its transactions to hold the lock about HOLD seconds. On a
# first fold of 3.35 million events (100,000 people), fixed sizes measured: 50,000 ids held it
# 1.8 s (median; longest 2.9 s) for 131 s in all; 20,000 0.7 s (1.3 s) for 148 s; 5,000 0.24 s
# (1.0 s) for 169 s.
HOLD = 0.5  # seconds a transaction aims to hold the write lock
FIRST, FEWEST, MOST = 10_000, 1_000, 100_000  # event ids per transaction
CHUNK = 1_000  # ids per IN list

SKIPPED = [k.value for k in BOOKKEEPING if k is not EventKind.move]  # a move recounts


def fold(engine: Engine, hold: float = HOLD) -> int:
    """Bring the tallies up to date with the event log, in transactions of about `hold`
    seconds each; returns the events read."""
    if not _behind(engine):  # most calls: no lock, no write transaction
        return 0
    upto = _committed_max(engine)  # events committed after this wait for the next fold
    read = 0
    size = FIRST
    while True:
        with engine.begin() as conn:
            mark = _lock_mark(conn)
            # Timed from here: waiting for the lock (a sending pass's) is not holding it.
            started = time.monotonic()
            if mark >= upto:
                return read
            high = min(upto, mark + size)
            read += _fold_range(conn, mark, high)
            conn.execute(TS.update().where(TS.c.name == NAME).values(last_event_id=high))
        took = time.monotonic() - started
        # The next transaction sized after this one, changing at most fourfold at a time.
        wanted = size * hold / took if took > 0 else MOST
        size = int(min(MOST, max(FEWEST, size / 4, min(size * 4, wanted))))


def _behind(engine: Engine) -> bool:
    """Whether any event has an id past the mark, read without a lock."""
    with engine.connect() as conn:
        conn.execution_options(drip_read_only=True)
        mark = conn.execute(sa.select(TS.c.last_event_id).where(TS.c.name == NAME)).scalar()
        last = conn.execute(sa.select(sa.func.max(EV.c.id))).scalar()
    return last is not None and last > (mark or 0)


def _committed_max(engine: Engine) -> int:
    """The highest event id below which every event is committed.

    PostgreSQL hands out ids before commit, so a later id can commit first; a SHARE lock waits
    for every transaction writing events to end (and holds new ones for a moment). SQLite has
    one writer at a time, which commits its ids in order."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE event IN SHARE MODE")
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(EV.c.id), 0))).scalar_one())


def _lock_mark(conn: sa.Connection) -> int:
    """The mark, locked for this transaction (SQLite's BEGIN IMMEDIATE already holds the lock)."""
    conn.execute(insert_ignoring_conflicts(conn, TS).values(name=NAME, last_event_id=0))
    query = sa.select(TS.c.last_event_id).where(TS.c.name == NAME)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one())


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def _fold_range(conn: sa.Connection, low: int, high: int) -> int:
    """Count the events with low < id <= high."""
    events = conn.execute(
        sa.select(EV.c.enrollment_id, EV.c.delivery_id, EV.c.kind, EV.c.at, EV.c.verdict).where(
            EV.c.id > low, EV.c.id <= high, EV.c.kind.not_in(SKIPPED)
        )
    ).all()
    deliveries: set[int] = set()
    enrollments: set[int] = set()
    loose: dict[int, datetime] = {}
    unsubscribed: list[tuple[int, datetime]] = []
    questions: Counter[int] = Counter()
    moved: set[int] = set()
    for enrollment_id, delivery_id, kind, at, verdict in events:
        if kind == EventKind.move.value:
            moved.add(enrollment_id)
        elif kind == EventKind.question.value:
            questions[enrollment_id] += 1
            enrollments.add(enrollment_id)
        elif kind in READER or kind == EventKind.sent.value:
            enrollments.add(enrollment_id)
            if delivery_id is not None:
                deliveries.add(delivery_id)
            elif kind not in HITS or verdict == Verdict.human.value:
                loose[enrollment_id] = latest(loose.get(enrollment_id), at) or at
                if kind == EventKind.unsubscribe.value:
                    unsubscribed.append((enrollment_id, at))
    _fold_days(conn, [e for e in events if e[2] != EventKind.move.value])
    for chunk in _chunks(moved):  # what they did is counted in their new cohort from now on
        deliveries.update(
            conn.execute(
                sa.select(DLT.c.delivery_id).where(DLT.c.enrollment_id.in_(chunk))
            ).scalars()
        )
    enrollments |= moved
    for chunk in _chunks(deliveries):
        recount_deliveries(conn, chunk)
    for enrollment_id, at in unsubscribed:
        attribute_unsubscribe(conn, enrollment_id, at)
    for chunk in _chunks(enrollments):
        recount_enrollments(conn, chunk, loose, questions)
    return len(events)


def _what(kind: str) -> str:
    if kind == EventKind.sent.value:
        return "sent"
    if kind == EventKind.open.value:
        return "opened"
    if kind in HITS:
        return "responded"
    return "other"


def _fold_days(conn: sa.Connection, events: Sequence[Any]) -> None:
    """Add the new events to their cohort's day in the activity chart (people's hits apart)."""
    cohorts: dict[int, int] = {}
    for chunk in _chunks({e[0] for e in events}):
        cohorts.update(
            conn.execute(sa.select(E.c.id, E.c.cohort_id).where(E.c.id.in_(chunk))).all()
        )
    counts: dict[tuple[int, str, str], list[int]] = {}
    for enrollment_id, _delivery, kind, at, verdict in events:
        cohort = cohorts.get(enrollment_id)
        if cohort is None:
            continue
        what = _what(kind)
        pair = counts.setdefault((cohort, at.date().isoformat(), what), [0, 0])
        pair[0] += 1
        pair[1] += 1 if what not in ("opened", "responded") or verdict == Verdict.human.value else 0
    if not counts:
        return
    keys = list(counts)
    conn.execute(
        insert_ignoring_conflicts(conn, DT),
        [{"cohort_id": c, "day": d, "what": w, "count_a": 0, "count_h": 0} for c, d, w in keys],
    )
    conn.execute(
        DT.update()
        .where(
            DT.c.cohort_id == sa.bindparam("c"),
            DT.c.day == sa.bindparam("d"),
            DT.c.what == sa.bindparam("w"),
        )
        .values(count_a=DT.c.count_a + sa.bindparam("a"), count_h=DT.c.count_h + sa.bindparam("h")),
        [{"c": c, "d": d, "w": w, "a": a, "h": h} for (c, d, w), (a, h) in counts.items()],
    )
