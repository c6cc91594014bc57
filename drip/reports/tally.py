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

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.db import insert_ignoring_conflicts
from drip.events import BOOKKEEPING, LINK_KINDS, READER_KINDS
from drip.models import DAY_TALLY as DT
from drip.models import DELIVERY as D
from drip.models import DELIVERY_TALLY as DLT
from drip.models import ENROLLMENT as E
from drip.models import ENROLLMENT_TALLY as ET
from drip.models import EVENT as EV
from drip.models import LESSON_TALLY as LT
from drip.models import TALLY_STATE as TS
from drip.models import Event
from drip.states import DeliveryKind, DeliveryStatus, EventKind, Verdict

NAME = "report"
BATCH = 50_000  # event ids per transaction: a long backlog holds the write lock seconds at a time
CHUNK = 1_000  # ids per IN list
BEHIND_AFTER = 3  # the last three lessons sent, all unopened: behind

READER = [k.value for k in READER_KINDS]
HITS = frozenset({EventKind.open.value, *(k.value for k in LINK_KINDS)})  # judged human or not
SKIPPED = [k.value for k in BOOKKEEPING if k is not EventKind.move]  # a move recounts
LESSON_SUMS = ("sent", "opened_h", "opened_a", "confirmed_h", "confirmed_a", "answered", "right",
               "unsubscribed")  # fmt: skip
_AT = Event.__table__.c.at.type  # type: ignore[attr-defined]


def fold(engine: Engine) -> int:
    """Bring the tallies up to date with the event log; returns the events read."""
    read = 0
    while True:
        upto = _committed_max(engine)
        with engine.begin() as conn:
            mark = _lock_mark(conn)
            if mark >= upto:
                return read
            high = min(upto, mark + BATCH)
            read += _fold_range(conn, mark, high)
            conn.execute(TS.update().where(TS.c.name == NAME).values(last_event_id=high))


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


def _time(value: Any) -> datetime | None:
    """A time out of max() or min(), which lose the column type on SQLite."""
    if isinstance(value, str):
        return _AT.process_result_value(value, None)  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


def _latest(*values: datetime | None) -> datetime | None:
    return max((v for v in values if v is not None), default=None)


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
                loose[enrollment_id] = _latest(loose.get(enrollment_id), at) or at
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
        _recount_deliveries(conn, chunk)
    for enrollment_id, at in unsubscribed:
        _attribute_unsubscribe(conn, enrollment_id, at)
    for chunk in _chunks(enrollments):
        _recount_enrollments(conn, chunk, loose, questions)
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


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.max(sa.case((condition, 1), else_=0))


def _recount_deliveries(conn: sa.Connection, ids: list[int]) -> None:
    """Recompute these deliveries' tallies from all their events, and move the difference into
    their lessons' tallies."""
    is_open = EV.c.kind == EventKind.open.value
    human = EV.c.verdict == Verdict.human.value
    counted_h = sa.or_(EV.c.kind.not_in(sorted(HITS)), human)
    record = sa.and_(EV.c.kind == EventKind.answer.value, EV.c.verdict != Verdict.machine.value)
    rows = conn.execute(
        sa.select(
            D.c.id,
            D.c.enrollment_id,
            E.c.cohort_id,
            D.c.lesson_slug,
            D.c.position,
            D.c.sent_at,
            D.c.status,
            D.c.kind,
            _flag(sa.and_(is_open, human)),
            _flag(is_open),
            _flag(sa.and_(EV.c.kind == EventKind.confirm.value, human)),
            _flag(EV.c.kind == EventKind.confirm.value),
            sa.func.min(
                sa.case((record, EV.c.id))
            ),  # the answer of record: the first not a machine's
            sa.func.max(sa.case((counted_h, EV.c.at))),
            sa.func.max(EV.c.at),
            _flag(EV.c.kind == EventKind.unsubscribe.value),
        )
        .select_from(
            D.join(E, E.c.id == D.c.enrollment_id).outerjoin(
                EV, sa.and_(EV.c.delivery_id == D.c.id, EV.c.kind.in_(READER))
            )
        )
        .where(D.c.id.in_(ids))
        .group_by(D.c.id, E.c.cohort_id)
    ).all()
    answers = [r[12] for r in rows if r[12] is not None]
    right = (
        set(
            conn.execute(
                sa.select(EV.c.id).where(EV.c.id.in_(answers), EV.c.correct.is_(True))
            ).scalars()
        )
        if answers
        else set()
    )
    kept = (DLT.c.delivery_id, DLT.c.cohort_id, DLT.c.slug, DLT.c.counted,
            *(DLT.c[name] for name in LESSON_SUMS[1:-1]), DLT.c.unsubscribed,
            DLT.c.unsubscribed_after)  # fmt: skip
    old = {
        r["delivery_id"]: dict(r)
        for r in conn.execute(sa.select(*kept).where(DLT.c.delivery_id.in_(ids))).mappings()
    }
    sent = DeliveryStatus.sent.value
    new = [
        {
            "delivery_id": r[0],
            "enrollment_id": r[1],
            "cohort_id": r[2],
            "slug": r[3],
            "position": r[4],
            "sent_at": r[5] if r[6] == sent else None,
            "counted": r[6] == sent and r[7] == DeliveryKind.lesson.value,
            "opened_h": bool(r[8]),
            "opened_a": bool(r[9]),
            "confirmed_h": bool(r[10]),
            "confirmed_a": bool(r[11]),
            "answered": r[12] is not None,
            "right": r[12] in right,
            "last_at_h": _time(r[13]),
            "last_at_a": _time(r[14]),
            "unsubscribed": bool(r[15]),
            "unsubscribed_after": bool(old.get(r[0], {}).get("unsubscribed_after")),
        }
        for r in rows
    ]
    conn.execute(DLT.delete().where(DLT.c.delivery_id.in_(ids)))
    conn.execute(DLT.insert(), new)
    changes: dict[tuple[int, str], list[int]] = {}
    for row in new:
        _add(changes, row, 1)
        if row["delivery_id"] in old:
            _add(changes, old[row["delivery_id"]], -1)
    _apply(conn, changes, {(r["cohort_id"], r["slug"]): r["position"] for r in new if r["counted"]})


def _add(changes: dict[tuple[int, str], list[int]], row: dict[str, Any], sign: int) -> None:
    """Add (or take away) what one delivery tally counts in its lesson's tally."""
    counted = bool(row["counted"])
    values = [
        int(counted),
        *(int(counted and bool(row[name])) for name in LESSON_SUMS[1:-1]),
        int(bool(row["unsubscribed"] or row["unsubscribed_after"])),
    ]
    if not any(values):
        return
    total = changes.setdefault((row["cohort_id"], row["slug"]), [0] * len(LESSON_SUMS))
    for i, value in enumerate(values):
        total[i] += sign * value


def _apply(
    conn: sa.Connection, changes: dict[tuple[int, str], list[int]], positions: dict[Any, int]
) -> None:
    """Add the changes to the lessons' tallies."""
    changes = {k: v for k, v in changes.items() if any(v) or k in positions}
    if not changes:
        return
    conn.execute(
        insert_ignoring_conflicts(conn, LT),
        [
            {"cohort_id": c, "slug": s, "position": positions.get((c, s), 0),
             **dict.fromkeys(LESSON_SUMS, 0)}
            for c, s in changes
        ],
    )  # fmt: skip
    p = sa.bindparam("p", type_=sa.Integer)
    lowest = sa.and_(p > 0, sa.or_(LT.c.position == 0, p < LT.c.position))
    conn.execute(
        LT.update()
        .where(LT.c.cohort_id == sa.bindparam("c"), LT.c.slug == sa.bindparam("s"))
        .values(
            {
                **{name: LT.c[name] + sa.bindparam(f"d_{name}") for name in LESSON_SUMS},
                "position": sa.case((lowest, p), else_=LT.c.position),
            }
        ),
        [
            {"c": c, "s": s, "p": positions.get((c, s), 0),
             **{f"d_{name}": d for name, d in zip(LESSON_SUMS, values, strict=True)}}
            for (c, s), values in changes.items()
        ],
    )  # fmt: skip


def _attribute_unsubscribe(conn: sa.Connection, enrollment_id: int, at: datetime) -> None:
    """An unsubscribe without a link (the CLI, a complaint) counts against the last e-mail sent
    before it."""
    last = (
        conn.execute(
            sa.select(DLT)
            .where(DLT.c.enrollment_id == enrollment_id, DLT.c.sent_at <= at)
            .order_by(DLT.c.sent_at.desc(), DLT.c.position.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if last is None or last["unsubscribed_after"]:
        return
    conn.execute(
        DLT.update().where(DLT.c.delivery_id == last["delivery_id"]).values(unsubscribed_after=True)
    )
    changes: dict[tuple[int, str], list[int]] = {}
    _add(changes, {**last, "unsubscribed_after": True}, 1)
    _add(changes, dict(last), -1)
    _apply(conn, changes, {})


@dataclass
class _Person:
    """One enrolment's figures, added up from its delivery tallies."""

    sent: int = 0
    opened_h: int = 0
    opened_a: int = 0
    confirmed_h: int = 0
    confirmed_a: int = 0
    answered: int = 0
    right: int = 0
    last_at_h: datetime | None = None
    last_at_a: datetime | None = None


def _recount_enrollments(
    conn: sa.Connection, ids: list[int], loose: dict[int, datetime], questions: Counter[int]
) -> None:
    """Recompute these enrolments' tallies from their delivery tallies; add the new loose
    events and questions to what they had."""
    kept = {
        r.enrollment_id: r
        for r in conn.execute(
            sa.select(ET.c.enrollment_id, ET.c.loose_at, ET.c.questions).where(
                ET.c.enrollment_id.in_(ids)
            )
        )
    }
    people = {eid: _Person() for eid in ids}
    recent: dict[int, list[tuple[datetime, int, bool, bool]]] = {eid: [] for eid in ids}
    for r in conn.execute(
        sa.select(
            DLT.c.enrollment_id,
            DLT.c.sent_at,
            DLT.c.position,
            DLT.c.counted,
            DLT.c.opened_h,
            DLT.c.opened_a,
            DLT.c.confirmed_h,
            DLT.c.confirmed_a,
            DLT.c.answered,
            DLT.c.right,
            DLT.c.last_at_h,
            DLT.c.last_at_a,
        ).where(DLT.c.enrollment_id.in_(ids))
    ):
        p = people[r.enrollment_id]
        p.last_at_h = _latest(p.last_at_h, r.last_at_h)
        p.last_at_a = _latest(p.last_at_a, r.last_at_a)
        if not r.counted:
            continue
        p.sent += 1
        p.opened_h += r.opened_h
        p.opened_a += r.opened_a
        p.confirmed_h += r.confirmed_h
        p.confirmed_a += r.confirmed_a
        p.answered += r.answered
        p.right += r.right
        recent[r.enrollment_id].append((r.sent_at, r.position, r.opened_h, r.opened_a))
    rows = []
    for eid, p in people.items():
        last = sorted(recent[eid], key=lambda x: (x[0], x[1]), reverse=True)[:BEHIND_AFTER]
        full = len(last) == BEHIND_AFTER
        old = kept.get(eid)
        loose_at = _latest(old.loose_at if old else None, loose.get(eid))
        rows.append(
            {
                "enrollment_id": eid,
                "sent": p.sent,
                "opened_h": p.opened_h,
                "opened_a": p.opened_a,
                "confirmed_h": p.confirmed_h,
                "confirmed_a": p.confirmed_a,
                "answered": p.answered,
                "right": p.right,
                "behind_h": full and not any(x[2] for x in last),
                "behind_a": full and not any(x[3] for x in last),
                "last_at_h": _latest(p.last_at_h, loose_at),
                "last_at_a": _latest(p.last_at_a, loose_at),
                "loose_at": loose_at,
                "questions": (old.questions if old else 0) + questions.get(eid, 0),
            }
        )
    conn.execute(ET.delete().where(ET.c.enrollment_id.in_(ids)))
    conn.execute(ET.insert(), rows)
