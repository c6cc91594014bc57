"""Cohorts, CSV enrolment (all or nothing), and pause, resume and unsubscribe of people."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drip.db import session as open_session
from drip.errors import InputError, NotFound
from drip.models import Cohort, Enrollment, EnrollmentStatus, Event, EventKind, Person, Verdict
from drip.people_csv import Row, read_people_csv, valid_address
from drip.schedule import (
    Cadence,
    format_days,
    next_slot,
    parse_clock,
    parse_dates,
    parse_days,
    parse_timezone,
)

CHUNK = 500


@lru_cache(maxsize=4096)
def cadence_for(
    timezone: str, send_time: str, window_end: str, days: str, skip: str, start: date | None
) -> Cadence:
    """The cadence of one person in one cohort (cached: cohorts are few, people many)."""
    return Cadence.of(timezone, send_time, window_end, days, skip, start)


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


# -- cohorts -------------------------------------------------------------------------------


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
    now: datetime,
) -> Cohort:
    """Create a cohort after checking every field."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError([f"cohort name '{name}' must be 1-200 characters"])
    if "=?" in name or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise InputError([f"cohort name {name!r} holds a control character or '=?'; remove it"])
    timezone = parse_timezone(timezone)
    opens, closes = parse_clock(send_time, "send time"), parse_clock(window_end, "window end")
    if closes <= opens:
        raise InputError([f"window end {window_end} must be after the send time {send_time}"])
    day_set = parse_days(days)
    skipped = parse_dates(skip)
    if manager:
        manager = valid_address(manager)
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
        enrollment.next_due_at = next_slot(
            cohort_cadence(cohort, person.timezone), now, enrollment.last_sent_on
        )
        db.add(enrollment)


# -- CSV import ----------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an enrolment did (or would do, on a dry run)."""

    rows: int = 0
    enrolled: int = 0
    already: int = 0
    new_people: int = 0
    dry_run: bool = False
    emails: list[str] = field(default_factory=list)


def enroll_csv(
    engine: Engine,
    cohort_name: str,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Enrol every person in the CSV into the cohort, all or nothing."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    rows = read_people_csv(path, progress)
    return enroll_rows(engine, cohort, rows, now=now, dry_run=dry_run)


def _chunks(items: list[str], size: int = CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enroll_rows(
    engine: Engine, cohort: Cohort, rows: list[Row], *, now: datetime, dry_run: bool = False
) -> ImportResult:
    """Write people and enrolments in one transaction; people already enrolled are counted."""
    person = Person.__table__  # type: ignore[attr-defined]
    enrollment = Enrollment.__table__  # type: ignore[attr-defined]
    result = ImportResult(rows=len(rows), dry_run=dry_run)
    emails = [r.email for r in rows]
    with engine.begin() as conn:
        ids: dict[str, int] = {}
        for chunk in _chunks(emails):
            ids.update(
                conn.execute(
                    sa.select(person.c.email, person.c.id).where(person.c.email.in_(chunk))
                ).all()
            )  # type: ignore[arg-type]
        new = [r for r in rows if r.email not in ids]
        result.new_people = len(new)
        enrolled: set[int] = set()
        known_ids = list(ids.values())
        for start in range(0, len(known_ids), CHUNK):
            enrolled.update(
                conn.execute(
                    sa.select(enrollment.c.person_id).where(
                        enrollment.c.cohort_id == cohort.id,
                        enrollment.c.person_id.in_(known_ids[start : start + CHUNK]),
                    )
                ).scalars()
            )
        result.already = len(enrolled)
        result.enrolled = len(rows) - result.already
        if dry_run:
            return result
        if new:
            conn.execute(
                person.insert(),
                [
                    {"email": r.email, "name": r.name, "timezone": r.timezone, "created_at": now}
                    for r in new
                ],
            )
            for chunk in _chunks([r.email for r in new]):
                ids.update(
                    conn.execute(
                        sa.select(person.c.email, person.c.id).where(person.c.email.in_(chunk))
                    ).all()
                )  # type: ignore[arg-type]
        zones: dict[int, str | None] = {}
        all_ids = list(ids.values())
        for start in range(0, len(all_ids), CHUNK):
            zones.update(
                conn.execute(  # type: ignore[arg-type]
                    sa.select(person.c.id, person.c.timezone).where(
                        person.c.id.in_(all_ids[start : start + CHUNK])
                    )
                ).all()
            )
        values = []
        for row in rows:
            person_id = ids[row.email]
            if person_id in enrolled:
                continue
            cadence = cohort_cadence(cohort, zones.get(person_id) or row.timezone)
            values.append(
                {
                    "person_id": person_id,
                    "cohort_id": cohort.id,
                    "status": EnrollmentStatus.active.value,
                    "status_reason": "",
                    "lessons_sent": 0,
                    "next_due_at": next_slot(cadence, now),
                    "created_at": now,
                }
            )
            result.emails.append(row.email)
        if values:
            conn.execute(enrollment.insert(), values)
    return result


# -- people ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    """A person with each of their enrolments and cohorts."""

    person: Person
    enrollments: list[tuple[Enrollment, Cohort]]


def get_person(engine: Engine, email: str) -> PersonView:
    """A person and their enrolments, by e-mail address."""
    address = email.strip().lower()
    with open_session(engine) as db:
        person = db.exec(select(Person).where(Person.email == address)).first()
        if person is None:
            raise NotFound(f"no person with e-mail '{address}'; see drip people list")
        pairs = db.exec(
            select(Enrollment, Cohort)
            .join(Cohort, col(Cohort.id) == col(Enrollment.cohort_id))
            .where(Enrollment.person_id == person.id)
            .order_by(Cohort.name)
        ).all()
    return PersonView(person, [(e, c) for e, c in pairs])


def list_people(
    engine: Engine, cohort_name: str | None = None, limit: int | None = None
) -> list[tuple[Person, Enrollment, Cohort]]:
    """People with their enrolments, optionally of one cohort."""
    with open_session(engine) as db:
        query = (
            select(Person, Enrollment, Cohort)
            .join(Enrollment, col(Enrollment.person_id) == col(Person.id))
            .join(Cohort, col(Cohort.id) == col(Enrollment.cohort_id))
            .order_by(Cohort.name, Person.email)
        )
        if cohort_name:
            cohort = get_cohort(db, cohort_name)
            query = query.where(Enrollment.cohort_id == cohort.id)
        if limit:
            query = query.limit(limit)
        return [(p, e, c) for p, e, c in db.exec(query).all()]


CHANGES = {
    "pause": ({EnrollmentStatus.active}, EnrollmentStatus.paused, EventKind.pause),
    "resume": (
        {EnrollmentStatus.paused, EnrollmentStatus.bounced},
        EnrollmentStatus.active,
        EventKind.resume,
    ),
    "unsubscribe": (
        {EnrollmentStatus.active, EnrollmentStatus.paused, EnrollmentStatus.bounced},
        EnrollmentStatus.unsubscribed,
        EventKind.unsubscribe,
    ),
}


def change_enrollment(
    db: Session,
    enrollment: Enrollment,
    cohort: Cohort,
    person: Person,
    action: str,
    *,
    now: datetime,
    method: str,
    until: date | None = None,
    delivery_id: int | None = None,
    verdict: Verdict = Verdict.human,
    reason: str = "",
    seconds_since_send: float | None = None,
) -> bool:
    """Pause, resume or unsubscribe one enrolment and log it; False when it was already so."""
    allowed, target, kind = CHANGES[action]
    if enrollment.status not in {s.value for s in allowed}:
        if action == "pause" and enrollment.status == EnrollmentStatus.paused.value and until:
            enrollment.paused_until = until
            db.add(enrollment)
            return True
        return False
    enrollment.status = target.value
    if target is EnrollmentStatus.active:
        enrollment.status_reason = ""
        enrollment.paused_until = None
        enrollment.next_due_at = next_slot(
            cohort_cadence(cohort, person.timezone), now, enrollment.last_sent_on
        )
    elif target is EnrollmentStatus.paused:
        enrollment.paused_until = until
        enrollment.status_reason = f"paused until {until.isoformat()}" if until else "paused"
        enrollment.next_due_at = None
    else:
        enrollment.status_reason = "unsubscribed"
        enrollment.next_due_at = None
    db.add(enrollment)
    db.add(
        Event(
            enrollment_id=enrollment.id or 0,
            delivery_id=delivery_id,
            kind=kind.value,
            at=now,
            method=method,
            seconds_since_send=seconds_since_send,
            verdict=verdict.value,
            reason=reason or f"{action} via {method}",
        )
    )
    return True


def change_person(
    engine: Engine, email: str, action: str, *, now: datetime, cohort_name: str | None = None
) -> list[tuple[str, bool]]:
    """Apply pause/resume/unsubscribe to a person's enrolments; return (cohort, changed) pairs."""
    view = get_person(engine, email)
    results = []
    with open_session(engine) as db:
        for enrollment, cohort in view.enrollments:
            if cohort_name and cohort.name != cohort_name:
                continue
            fresh = db.get(Enrollment, enrollment.id)
            assert fresh is not None
            changed = change_enrollment(
                db, fresh, cohort, view.person, action, now=now, method="cli"
            )
            results.append((cohort.name, changed))
        if cohort_name and not results:
            raise NotFound(f"{view.person.email} is not enrolled in cohort '{cohort_name}'")
        db.commit()
    return results
