"""Cohorts: create, find, list with their counts, edit, rename, pause, archive and delete."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drip.addresses import valid_address
from drip.db import session as open_session
from drip.errors import InputError, NotFound
from drip.models import COHORT as C
from drip.models import DAY_TALLY as DT
from drip.models import DELIVERY as D
from drip.models import DIGEST_LOG as DL
from drip.models import ENROLLMENT as E
from drip.models import ENROLLMENT_TALLY as ET
from drip.models import EVENT as EV
from drip.models import LESSON_TALLY as LT
from drip.models import Cohort, Enrollment, EnrollmentStatus, Person
from drip.people.zones import read_zone
from drip.schedule import (
    Cadence,
    cadence_for,
    check_date,
    format_days,
    next_slot,
    parse_clock,
    parse_dates,
    parse_days,
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
    name = check_name(name)
    timezone = cohort_zone(timezone)
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


def check_name(name: str) -> str:
    """A cohort name, stripped, or InputError."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError([f"cohort name '{name}' must be 1-200 characters"])
    if "=?" in name or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise InputError([f"cohort name {name!r} holds a control character or '=?'; remove it"])
    return name


def cohort_zone(value: str) -> str:
    """A cohort's timezone: an IANA or Windows name; a legacy zone like EST is refused, since
    everyone without their own timezone would get it."""
    zone, note = read_zone(value)
    if note:
        raise InputError([f"--timezone {note}"])
    return zone


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


def list_cohorts(engine: Engine, archived: bool = False) -> list[CohortRow]:
    """Every cohort with its counts by status (archived ones only when asked)."""
    with open_session(engine) as db:
        query = select(Cohort).order_by(Cohort.name)
        if not archived:
            query = query.where(Cohort.archived == False)  # noqa: E712 - SQL, not Python
        cohorts = db.exec(query).all()
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
        if cohort.archived and not paused:
            raise InputError([f"cohort '{name}' is archived; it sends no more lessons"])
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


@dataclass(frozen=True)
class CohortEdit:
    """What `drip cohort edit` changes; None leaves a setting as it is."""

    start: date | None = None
    timezone: str | None = None
    send_time: str | None = None
    days: str | None = None
    window_end: str | None = None
    skip: str | None = None
    manager: str | None = None  # "" removes the manager


def edit_cohort(
    engine: Engine, name: str, edit: CohortEdit, now: datetime
) -> tuple[Cohort, list[str]]:
    """Change a cohort's calendar or manager; everyone active gets their next slot on the new
    calendar (never a second lesson on a day they already had one)."""
    said: list[str] = []
    with open_session(engine) as db:
        cohort = get_cohort(db, name)
        if edit.timezone is not None:
            cohort.timezone = cohort_zone(edit.timezone)
            said.append(f"timezone {cohort.timezone}")
        if edit.send_time is not None:
            cohort.send_time = parse_clock(edit.send_time, "send time").strftime("%H:%M")
            said.append(f"send time {cohort.send_time}")
        if edit.window_end is not None:
            cohort.window_end = parse_clock(edit.window_end, "window end").strftime("%H:%M")
            said.append(f"window end {cohort.window_end}")
        if parse_clock(cohort.window_end) <= parse_clock(cohort.send_time):
            raise InputError(
                [f"window end {cohort.window_end} must be after the send time {cohort.send_time}"]
            )
        if edit.days is not None:
            cohort.send_days = format_days(parse_days(edit.days))
            said.append(f"days {cohort.send_days}")
        if edit.skip is not None:
            cohort.skip_dates = ",".join(d.isoformat() for d in sorted(parse_dates(edit.skip)))
            said.append(f"skipping {cohort.skip_dates or 'no dates'}")
        if edit.start is not None:
            cohort.start_date = edit.start
            said.append(f"start {cohort.start_date}")
        if edit.manager is not None:
            cohort.manager_email = valid_address(edit.manager) if edit.manager.strip() else None
            said.append(f"manager {cohort.manager_email or 'none'}")
        if not said:
            raise InputError(["nothing to change; see drip cohort edit --help"])
        db.add(cohort)
        _reschedule(db, cohort, now)
        db.commit()
        db.refresh(cohort)
        return cohort, said


def rename_cohort(engine: Engine, name: str, new_name: str) -> None:
    """Give a cohort a new name; its people, lessons and history stay with it."""
    new_name = check_name(new_name)
    with open_session(engine) as db:
        cohort = get_cohort(db, name)
        if new_name != name and db.exec(select(Cohort).where(Cohort.name == new_name)).first():
            raise InputError([f"a cohort named '{new_name}' already exists; pick another name"])
        cohort.name = new_name
        db.add(cohort)
        db.commit()


def archive_cohort(engine: Engine, name: str) -> None:
    """Stop a cohort for good and hide it from lists; its reports stay."""
    with open_session(engine) as db:
        cohort = get_cohort(db, name)
        cohort.archived = True
        cohort.paused = True
        db.add(cohort)
        db.commit()


def delete_cohort(engine: Engine, name: str) -> int:
    """Delete a cohort nothing was sent to (a mistyped one), with its enrolments; returns how
    many enrolments went. A cohort that sent lessons is archived instead, to keep the record."""
    with engine.begin() as conn:
        found = conn.execute(sa.select(C.c.id).where(C.c.name == name)).scalar()
        if found is None:
            with open_session(engine) as db:
                get_cohort(db, name)  # raises NotFound listing the cohorts
        ids = list(conn.execute(sa.select(E.c.id).where(E.c.cohort_id == found)).scalars())
        sent = (
            conn.execute(
                sa.select(sa.func.count()).select_from(D).where(D.c.enrollment_id.in_(ids))
            ).scalar_one()
            if ids
            else 0
        )
        if sent:
            raise InputError(
                [
                    f"cohort '{name}' has {sent} lesson deliveries; its record stays: "
                    f"drip cohort archive '{name}' stops it and hides it instead"
                ]
            )
        if ids:
            conn.execute(EV.delete().where(EV.c.enrollment_id.in_(ids)))
            conn.execute(ET.delete().where(ET.c.enrollment_id.in_(ids)))
            conn.execute(E.delete().where(E.c.id.in_(ids)))
        conn.execute(DT.delete().where(DT.c.cohort_id == found))
        conn.execute(LT.delete().where(LT.c.cohort_id == found))
        conn.execute(DL.delete().where(DL.c.cohort_id == found))
        conn.execute(C.delete().where(C.c.id == found))
    return len(ids)
