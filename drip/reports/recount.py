"""Recounting the report's tallies: a delivery's from all its events (and the difference into
its lesson's), an enrolment's from its deliveries'. `reports.tally` decides what to recount."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from drip.db import insert_ignoring_conflicts
from drip.events import LINK_KINDS, READER_KINDS
from drip.models import DELIVERY as D
from drip.models import DELIVERY_TALLY as DLT
from drip.models import ENROLLMENT as E
from drip.models import ENROLLMENT_TALLY as ET
from drip.models import EVENT as EV
from drip.models import LESSON_TALLY as LT
from drip.models import Event
from drip.states import DeliveryKind, DeliveryStatus, EventKind, Verdict

BEHIND_AFTER = 3  # the last three lessons sent, all unopened: behind
READER = [k.value for k in READER_KINDS]
HITS = frozenset({EventKind.open.value, *(k.value for k in LINK_KINDS)})  # judged human or not
LESSON_SUMS = ("sent", "opened_h", "opened_a", "confirmed_h", "confirmed_a", "answered", "right",
               "unsubscribed")  # fmt: skip
_AT = Event.__table__.c.at.type  # type: ignore[attr-defined]


def as_time(value: Any) -> datetime | None:
    """A time out of max() or min(), which lose the column type on SQLite."""
    if isinstance(value, str):
        return _AT.process_result_value(value, None)  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


def latest(*values: datetime | None) -> datetime | None:
    return max((v for v in values if v is not None), default=None)


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.max(sa.case((condition, 1), else_=0))


def recount_deliveries(conn: sa.Connection, ids: list[int]) -> None:
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
            "last_at_h": as_time(r[13]),
            "last_at_a": as_time(r[14]),
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


def attribute_unsubscribe(conn: sa.Connection, enrollment_id: int, at: datetime) -> None:
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


def recount_enrollments(
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
        p.last_at_h = latest(p.last_at_h, r.last_at_h)
        p.last_at_a = latest(p.last_at_a, r.last_at_a)
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
        loose_at = latest(old.loose_at if old else None, loose.get(eid))
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
                "last_at_h": latest(p.last_at_h, loose_at),
                "last_at_a": latest(p.last_at_a, loose_at),
                "loose_at": loose_at,
                "questions": (old.questions if old else 0) + questions.get(eid, 0),
            }
        )
    conn.execute(ET.delete().where(ET.c.enrollment_id.in_(ids)))
    conn.execute(ET.insert(), rows)
