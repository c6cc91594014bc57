"""What the pages behind the links show and change: an enrollment's state, and the pause,
resume and unsubscribe a reader asks for (through drip.lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import lifecycle
from drip.lifecycle import Change, Transition, next_due
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.schedule import local_date


@dataclass(frozen=True)
class Status:
    """An enrollment as a page shows it: status, pause end and next lesson in local time."""

    status: str
    paused_until: date | None
    next_local: datetime | None
    timezone: str
    changed: bool = False


def enrollment_state(conn: sa.Connection, enrollment_id: int, changed: bool = False) -> Status:
    """An enrollment's status and next lesson in its own local time."""
    row = conn.execute(
        sa.select(E.c.status, E.c.paused_until, E.c.next_due_at, P.c.timezone, C.c.timezone)
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id == enrollment_id)
    ).one()
    zone = row[3] or row[4] or "UTC"
    try:
        local = row.next_due_at.astimezone(ZoneInfo(zone)) if row.next_due_at else None
    except (ValueError, KeyError):  # a zone this machine does not know: show UTC
        zone, local = "UTC", row.next_due_at
    return Status(row.status, row.paused_until, local, zone, changed)


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


def database_ok(engine: Engine) -> bool:
    """Whether the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1
    except sa.exc.SQLAlchemyError:
        return False
