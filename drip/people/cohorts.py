"""Cohorts: create, find, list with their counts, pause and resume as a whole."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drip.db import session as open_session
from drip.errors import InputError, NotFound
from drip.models import Cohort, Enrollment, EnrollmentStatus, Person
from drip.people.csv import valid_address
from drip.schedule import (
    Cadence,
    cadence_for,
    check_date,
    format_days,
    next_slot,
    parse_clock,
    parse_dates,
    parse_days,
    parse_timezone,
)


def cohort_cadence(cohort: Cohort, person_timezone: str | None) -> Cadence:
    """A person's cadence: their own timezone, else the cohort's."""
    return cadence_for(
        person_timezone or cohort.timezone,
        cohort.send_time,
        cohort.window_end,
        cohort.send_days,
        cohort.skip_dates,
        cohort.start_date,
    )


def create_cohort(
    engine: Engine,
    *,
    name: str,
    course: str,
    start: date,
    timezone: str,
    send_time: str = "07:30",
    days: str = "mon-fri",
    window_end: str = "18:00",
    skip: str = "",
    manager: str | None = None,
    welcome: bool = True,
    sponsor: str = "",
    now: datetime,
) -> Cohort:
    """Create a cohort after checking every field."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError([f"cohort name '{name}' must be 1-200 characters"])
    if "=?" in name or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise InputError([f"cohort name {name!r} holds a control character or '=?'; remove it"])
    timezone = parse_timezone(timezone)
    check_date(start, "start date")
    opens, closes = parse_clock(send_time, "send time"), parse_clock(window_end, "window end")
    if closes <= opens:
        raise InputError([f"window end {window_end} must be after the send time {send_time}"])
    day_set = parse_days(days)
    skipped = parse_dates(skip)
    if manager:
        manager = valid_address(manager)
    sponsor = " ".join(sponsor.split())
    if len(sponsor) > 300 or any(unicodedata.category(c) == "Cc" for c in sponsor):
        raise InputError(
            [f"sponsor line {sponsor[:40]!r}... must be one line of at most 300 characters"]
        )
    cohort = Cohort(
        name=name,
        course=course,
        start_date=start,
        timezone=timezone,
        send_time=opens.strftime("%H:%M"),
        window_end=closes.strftime("%H:%M"),
        send_days=format_days(day_set),
        skip_dates=",".join(d.isoformat() for d in sorted(skipped)),
        manager_email=manager,
        welcome=welcome,
        sponsor=sponsor,
        created_at=now,
    )
    with open_session(engine) as db:
        if db.exec(select(Cohort).where(Cohort.name == name)).first():
            raise InputError([f"a cohort named '{name}' already exists; pick another name"])
        db.add(cohort)
        db.commit()
        db.refresh(cohort)
    return cohort


def get_cohort(db: Session, name: str) -> Cohort:
    """The cohort of that name, or NotFound listing the known ones."""
    cohort = db.exec(select(Cohort).where(Cohort.name == name)).first()
    if cohort is None:
        names = ", ".join(db.exec(select(Cohort.name).order_by(Cohort.name)).all()) or "none yet"
        raise NotFound(f"no cohort '{name}'; cohorts: {names}")
    return cohort


@dataclass(frozen=True)
class CohortRow:
    """A cohort with its enrolment counts by status."""

    cohort: Cohort
    counts: dict[str, int]

    @property
    def enrolled(self) -> int:
        return sum(self.counts.values())


def list_cohorts(engine: Engine) -> list[CohortRow]:
    """Every cohort with its counts by status."""
    with open_session(engine) as db:
        cohorts = db.exec(select(Cohort).order_by(Cohort.name)).all()
        rows = db.execute(
            sa.select(col(Enrollment.cohort_id), col(Enrollment.status), sa.func.count()).group_by(
                col(Enrollment.cohort_id), col(Enrollment.status)
            )
        ).all()
    counts: dict[int, dict[str, int]] = {}
    for cohort_id, status, count in rows:
        counts.setdefault(cohort_id, {})[status] = count
    return [CohortRow(c, counts.get(c.id or 0, {})) for c in cohorts]


def set_cohort_paused(engine: Engine, name: str, paused: bool, now: datetime) -> Cohort:
    """Pause or resume a whole cohort; on resume, missed slots are caught up inside the window."""
    with open_session(engine) as db:
        cohort = get_cohort(db, name)
        cohort.paused = paused
        db.add(cohort)
        if not paused:
            _reschedule(db, cohort, now)
        db.commit()
        return cohort


def _reschedule(db: Session, cohort: Cohort, now: datetime) -> None:
    rows = db.exec(
        select(Enrollment, Person)
        .join(Person, col(Person.id) == col(Enrollment.person_id))
        .where(
            Enrollment.cohort_id == cohort.id, Enrollment.status == EnrollmentStatus.active.value
        )
    ).all()
    for enrollment, person in rows:
        try:
            enrollment.next_due_at = next_slot(
                cohort_cadence(cohort, person.timezone), now, enrollment.last_sent_on
            )
        except Exception:  # an unreadable stored zone: due now, and the claim holds it
            enrollment.next_due_at = now
        db.add(enrollment)
