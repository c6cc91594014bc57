"""What the pages behind the links show and change: an enrollment's state, and the pause,
resume and unsubscribe a reader asks for (through drip.lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import events, lifecycle
from drip.errors import DripError
from drip.lifecycle import Change, Transition, next_due
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.schedule import cadence_for, local_date, local_moment, next_slot
from drip.states import RECEIVING, EventKind, Verdict


@dataclass(frozen=True)
class Status:
    """An enrollment as a page shows it: status, pause end, next lesson in local time (for a
    timed pause, the first lesson after it, on a send day), lessons received and the course."""

    status: str
    paused_until: date | None
    next_local: datetime | None
    timezone: str
    changed: bool = False
    lessons_sent: int = 0
    course: str = ""


def enrollment_state(conn: sa.Connection, enrollment_id: int, changed: bool = False) -> Status:
    """An enrollment's status and next lesson in its own local time."""
    row = conn.execute(
        sa.select(
            E.c.status,
            E.c.paused_until,
            E.c.next_due_at,
            P.c.timezone.label("person_zone"),
            C.c.timezone.label("cohort_zone"),
            E.c.lessons_sent,
            E.c.last_sent_on,
            C.c.course,
            C.c.send_time,
            C.c.window_end,
            C.c.send_days,
            C.c.skip_dates,
            C.c.start_date,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id == enrollment_id)
    ).one()
    zone = row.person_zone or row.cohort_zone or "UTC"
    due = row.next_due_at
    if row.status == "paused" and row.paused_until is not None:
        due = _after_pause(row, zone)
    try:
        local = due.astimezone(ZoneInfo(zone)) if due else None
    except (ValueError, KeyError):  # a zone this machine does not know: show UTC
        zone, local = "UTC", due
    return Status(
        row.status, row.paused_until, local, zone, changed, row.lessons_sent or 0, row.course
    )


def _after_pause(row: Any, zone: str) -> datetime | None:
    """The first send slot on or after the day a timed pause ends (never a non-send day)."""
    try:
        cadence = cadence_for(
            zone, row.send_time, row.window_end, row.send_days, row.skip_dates, row.start_date
        )
        wakes = local_moment(row.paused_until, time(0, 0), cadence.zone).astimezone(UTC)
        return next_slot(cadence, wakes, row.last_sent_on)
    except (DripError, ValueError, KeyError):
        return None


def enrollment_status(engine: Engine, delivery_id: int) -> Status | None:
    """The state of the delivery's enrollment, for the pause and unsubscribe pages."""
    with engine.connect() as conn:
        enrollment_id = conn.execute(
            sa.select(D.c.enrollment_id).where(D.c.id == delivery_id)
        ).scalar()
        return None if enrollment_id is None else enrollment_state(conn, enrollment_id)


PAUSES = {"pause1": 7, "pause2": 14}
ACTIONS = {
    "pause1": Transition.pause,
    "pause2": Transition.pause,
    "resume": Transition.resume,
    "unsubscribe": Transition.unsubscribe,
    "resubscribe": Transition.resubscribe,
}


def change(
    engine: Engine,
    delivery_id: int,
    action: str,
    *,
    now: datetime,
    method: str,
    reason: str = "",
) -> Status | None:
    """Pause (pause1/pause2), resume, unsubscribe or resubscribe the delivery's enrollment, as
    its reader asked; an action that does not apply to the current status changes nothing."""
    transition = ACTIONS[action]
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(D.c.enrollment_id, D.c.sent_at, E.c.status, P.c.timezone, C.c.timezone)
            .select_from(
                D.join(E, E.c.id == D.c.enrollment_id)
                .join(P, P.c.id == E.c.person_id)
                .join(C, C.c.id == E.c.cohort_id)
            )
            .where(D.c.id == delivery_id)
        ).first()
        if found is None:
            return None
        enrollment_id, sent_at, status, zone, cohort_zone = found
        until = None
        if action in PAUSES:
            try:
                today = local_date(now, zone or cohort_zone)
            except (ValueError, KeyError):  # a zone this machine does not know
                today = now.date()
            until = today + timedelta(days=PAUSES[action])
        default = {
            Transition.pause: f"paused until {until.isoformat() if until else ''} via the pause page",
            Transition.resume: "resumed via the pause page",
            Transition.unsubscribe: "unsubscribed via the page",
            Transition.resubscribe: "resubscribed via the page",
        }[transition]
        due = next_due(conn, [enrollment_id], now).get(enrollment_id)
        seconds = None if sent_at is None else round((now - sent_at).total_seconds(), 3)
        applied = lifecycle.apply(
            conn,
            transition,
            [
                Change(
                    enrollment_id,
                    due=due,
                    until=until,
                    reason=reason or default,
                    delivery_id=delivery_id,
                    seconds_since_send=seconds,
                )
            ],
            now=now,
            method=method,
        )
        return enrollment_state(conn, enrollment_id, bool(applied))


SEND_TIMES = tuple(f"{h:02d}:{m:02d}" for h in range(6, 12) for m in (0, 30))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    """A reader's send time and days, as the "change time" page shows them."""

    send_time: str
    days: tuple[str, ...]
    window_end: str
    status: Status


def schedule_of(engine: Engine, delivery_id: int) -> Schedule | None:
    """The send time and days in force for the delivery's enrollment."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                D.c.enrollment_id,
                sa.case((E.c.send_time != "", E.c.send_time), else_=C.c.send_time),
                sa.case((E.c.send_days != "", E.c.send_days), else_=C.c.send_days),
                C.c.window_end,
            )
            .select_from(D.join(E, E.c.id == D.c.enrollment_id).join(C, C.c.id == E.c.cohort_id))
            .where(D.c.id == delivery_id)
        ).first()
        if row is None:
            return None
        days = tuple(d for d in row[2].split(",") if d)
        return Schedule(row[1], days, row[3], enrollment_state(conn, row[0]))


def change_schedule(
    engine: Engine, delivery_id: int, send_time: str, days: list[str], *, now: datetime, method: str
) -> Schedule | str | None:
    """Set the reader's own send time and days; the next lesson moves to the new slot. Returns
    the new schedule, a message saying what to fix, or None for an unknown delivery."""
    if send_time not in SEND_TIMES:
        return f"pick a time between {SEND_TIMES[0]} and {SEND_TIMES[-1]}"
    chosen = [d for d in WEEKDAYS if d in days]
    if not chosen:
        return "pick at least one day"
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(D.c.enrollment_id, C.c.window_end)
            .select_from(D.join(E, E.c.id == D.c.enrollment_id).join(C, C.c.id == E.c.cohort_id))
            .where(D.c.id == delivery_id)
        ).first()
        if found is None:
            return None
        enrollment_id, window_end = found
        if send_time >= window_end:
            return f"pick a time before {window_end}, when the day's sending window closes"
        conn.execute(
            E.update()
            .where(E.c.id == enrollment_id)
            .values(send_time=send_time, send_days=",".join(chosen))
        )
        due = next_due(conn, [enrollment_id], now).get(enrollment_id)
        conn.execute(
            E.update()
            .where(E.c.id == enrollment_id, E.c.status.in_(RECEIVING), E.c.next_due_at.is_not(None))
            .values(next_due_at=due)
        )
        events.insert(
            conn,
            [
                events.row(
                    EventKind.schedule,
                    enrollment_id,
                    now,
                    delivery_id=delivery_id,
                    method=method,
                    verdict=Verdict.human,
                    detail=f"{send_time} {','.join(chosen)}",
                )
            ],
        )
    return schedule_of(engine, delivery_id)


def database_ok(engine: Engine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1
    except sa.exc.SQLAlchemyError:
        return False
