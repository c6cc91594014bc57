"""The one table of allowed enrollment transitions, and the one function that applies them.

Every status change in drip (CLI, web pages, dispatcher, scheduler) goes through `apply`, which
writes the new status and its event in the caller's transaction, so replaying a person's events
always gives their current status."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from drip import events
from drip.errors import DripError
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import EnrollmentStatus as S
from drip.models import EventKind, Verdict
from drip.schedule import cadence_for, next_slot, unreadable


class Transition(enum.StrEnum):
    """What can happen to an enrollment."""

    enrol = "enrol"
    pause = "pause"
    resume = "resume"
    wake = "wake"
    autopause = "autopause"
    complete = "complete"
    unsubscribe = "unsubscribe"
    resubscribe = "resubscribe"
    bounce = "bounce"
    hold = "hold"
    release = "release"
    remove = "remove"


@dataclass(frozen=True)
class Rule:
    """Where a transition may start, where it ends, and the event that records it."""

    sources: frozenset[S]
    target: S
    event: EventKind


def _rule(sources: Iterable[S], target: S, event: EventKind) -> Rule:
    return Rule(frozenset(sources), target, event)


RULES: dict[Transition, Rule] = {
    Transition.enrol: _rule((), S.active, EventKind.enrol),
    # Pausing someone already paused moves the end of their pause.
    Transition.pause: _rule((S.active, S.paused), S.paused, EventKind.pause),
    Transition.resume: _rule((S.paused, S.bounced, S.held, S.removed), S.active, EventKind.resume),
    Transition.wake: _rule((S.paused,), S.active, EventKind.wake),
    Transition.autopause: _rule((S.active,), S.paused, EventKind.autopause),
    Transition.complete: _rule((S.active,), S.completed, EventKind.complete),
    Transition.unsubscribe: _rule(
        (S.active, S.paused, S.bounced, S.completed, S.held), S.unsubscribed, EventKind.unsubscribe
    ),
    Transition.resubscribe: _rule((S.unsubscribed,), S.active, EventKind.resubscribe),
    # A bounce found while sending hits an active enrollment; one that comes back later by mail
    # may find it paused (an out-of-office pause, a manager's pause).
    Transition.bounce: _rule((S.active, S.paused), S.bounced, EventKind.bounce),
    Transition.hold: _rule((S.active,), S.held, EventKind.hold),
    Transition.release: _rule((S.held,), S.active, EventKind.release),
    Transition.remove: _rule(
        (S.active, S.paused, S.bounced, S.completed, S.held, S.unsubscribed),
        S.removed,
        EventKind.remove,
    ),
}

# The status each recorded event kind leaves an enrollment in, for replaying the log.
STATUS_AFTER: dict[str, S] = {rule.event.value: rule.target for rule in RULES.values()}


class TransitionError(DripError):
    """A status change that the lifecycle does not allow."""


@dataclass(frozen=True)
class Change:
    """One enrollment's part in a transition: its new schedule and what the event says."""

    enrollment_id: int
    due: datetime | None = None  # the next slot, for transitions that end in `active`
    until: date | None = None  # the end of a timed pause
    reason: str = ""
    delivery_id: int | None = None
    seconds_since_send: float | None = None


def allowed(transition: Transition, status: str) -> bool:
    """Whether an enrollment in `status` may take this transition."""
    return status in {s.value for s in RULES[transition].sources}


def explain(transition: Transition, status: str) -> str:
    """Why a transition does not apply, in words a manager can act on."""
    starts = ", ".join(sorted(s.value for s in RULES[transition].sources)) or "a new enrolment"
    return f"cannot {transition.value}: the enrolment is {status} ({transition.value} applies to {starts})"


def _status_reason(transition: Transition, change: Change) -> str:
    target = RULES[transition].target
    if target is S.active:
        return ""
    if target is S.paused and not change.reason:
        return f"paused until {change.until.isoformat()}" if change.until else "paused"
    return change.reason or target.value


def apply(
    conn: sa.Connection,
    transition: Transition,
    changes: Sequence[Change],
    *,
    now: datetime,
    method: str,
    verdict: Verdict = Verdict.human,
    held_by: str | None = None,
    release_claim: bool = False,
) -> list[Change]:
    """Apply a transition to the enrollments whose status allows it, with one event each.

    Runs in the caller's transaction (SQLite takes its write lock at BEGIN; PostgreSQL locks the
    rows here), so the status read and the change cannot be split by another writer. `held_by`
    limits the change to enrollments that worker has claimed. Returns the changes applied; the
    caller decides whether one that did not apply is an error (see `apply_one`)."""
    if not changes:
        return []
    rule = RULES[transition]
    ids = [c.enrollment_id for c in changes]
    query = sa.select(E.c.id).where(
        E.c.id.in_(ids), E.c.status.in_(sorted(s.value for s in rule.sources))
    )
    if held_by is not None:
        query = query.where(E.c.claimed_by == held_by)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    ready = set(conn.execute(query).scalars())
    applied = [c for c in changes if c.enrollment_id in ready]
    if not applied:
        return []
    values: dict[str, object] = {
        "status": rule.target.value,
        "status_reason": sa.bindparam("b_reason"),
        "next_due_at": sa.bindparam("b_due"),
        "paused_until": sa.bindparam("b_until"),
    }
    if release_claim:
        values.update(claimed_until=None, claimed_by=None)
    conn.execute(
        E.update().where(E.c.id == sa.bindparam("b_id")).values(**values),
        [
            {
                "b_id": c.enrollment_id,
                "b_reason": _status_reason(transition, c)[:1000],
                "b_due": c.due if rule.target is S.active else None,
                "b_until": c.until if rule.target is S.paused else None,
            }
            for c in applied
        ],
    )
    events.insert(
        conn,
        [
            events.row(
                rule.event,
                c.enrollment_id,
                now,
                delivery_id=c.delivery_id,
                method=method,
                seconds_since_send=c.seconds_since_send,
                verdict=verdict,
                reason=c.reason or f"{transition.value} via {method}",
                detail=c.until.isoformat() if c.until else "",
            )
            for c in applied
        ],
    )
    return applied


def enrol(
    conn: sa.Connection, rows: Sequence[Mapping[str, Any]], *, now: datetime, method: str
) -> list[int]:
    """Insert new enrollments (active, with their first slot) and their `enrol` events."""
    if not rows:
        return []
    conn.execute(E.insert(), [{**r, "status": S.active.value, "status_reason": ""} for r in rows])
    pairs = [(r["person_id"], r["cohort_id"]) for r in rows]
    skipped = {(r["person_id"], r["cohort_id"]): r.get("skipped") or [] for r in rows}
    found: list[tuple[int, list[str]]] = []
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        found.extend(
            (eid, skipped[(person, cohort)])
            for eid, person, cohort in conn.execute(
                sa.select(E.c.id, E.c.person_id, E.c.cohort_id).where(
                    sa.tuple_(E.c.person_id, E.c.cohort_id).in_(chunk)
                )
            )
        )
    events.insert(
        conn,
        [
            events.row(
                EventKind.enrol,
                eid,
                now,
                method=method,
                verdict=Verdict.unknown,
                detail=catch_up_detail(gone),
            )
            for eid, gone in found
        ],
    )
    return [eid for eid, _ in found]


def catch_up_detail(skipped: Sequence[str]) -> str:
    """The enrol event's note of a late joiner's catch-up ("" for a start at lesson 1)."""
    if not skipped:
        return ""
    return f"catch-up: starts at lesson {len(skipped) + 1}; skipped: {', '.join(skipped)}"


def apply_one(
    conn: sa.Connection,
    transition: Transition,
    change: Change,
    *,
    now: datetime,
    method: str,
    verdict: Verdict = Verdict.human,
) -> None:
    """Apply a transition to one enrollment, or raise TransitionError saying why it cannot."""
    if apply(conn, transition, [change], now=now, method=method, verdict=verdict):
        return
    status = conn.execute(sa.select(E.c.status).where(E.c.id == change.enrollment_id)).scalar()
    if status is None:
        raise TransitionError(f"no enrolment {change.enrollment_id}")
    raise TransitionError(explain(transition, status))


def replay(kinds: Iterable[str]) -> S | None:
    """The status a sequence of event kinds leaves an enrollment in (None before `enrol`)."""
    status: S | None = None
    for kind in kinds:
        status = STATUS_AFTER.get(kind, status)
    return status


def schedules(
    conn: sa.Connection, ids: Sequence[int], now: datetime
) -> tuple[dict[int, datetime], dict[int, str]]:
    """Each enrollment's next slot from `now` on its own calendar, and, apart, why the ones whose
    stored timezone or times cannot be read have none (each row is its own problem)."""
    rows = conn.execute(
        sa.select(
            E.c.id,
            E.c.last_sent_on,
            P.c.timezone,
            C.c.timezone,
            sa.case((E.c.send_time != "", E.c.send_time), else_=C.c.send_time),
            C.c.window_end,
            sa.case((E.c.send_days != "", E.c.send_days), else_=C.c.send_days),
            C.c.skip_dates,
            C.c.start_date,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id.in_(list(ids)))
    ).all()
    due: dict[int, datetime] = {}
    problems: dict[int, str] = {}
    for eid, last, zone, cohort_zone, send, end, days, skip, start in rows:
        try:
            due[eid] = next_slot(
                cadence_for(zone or cohort_zone, send, end, days, skip, start), now, last
            )
        except Exception as exc:  # bad stored data stays this row's problem
            problems[eid] = unreadable(zone or cohort_zone, send, end, days, exc)
    return due, problems


def next_due(conn: sa.Connection, ids: Sequence[int], now: datetime) -> dict[int, datetime]:
    """Each enrollment's next slot from `now` on its own calendar, for transitions to `active`;
    one whose stored timezone or times cannot be read is due now (the claim holds it)."""
    due, problems = schedules(conn, ids, now)
    return {**due, **dict.fromkeys(problems, now)}
