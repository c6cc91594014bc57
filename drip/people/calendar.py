"""What goes out when: each active person's coming lessons on their own calendar, and a cohort's
planned end. The same schedule math the dispatcher uses, so the calendar is what it will send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.model import Course
from drip.errors import NotFound
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import Cohort, DeliveryStatus, EnrollmentStatus
from drip.people.cohorts import cohort_cadence
from drip.schedule import Cadence, local_date, local_moment, next_slot


@dataclass(frozen=True)
class Planned:
    """One lesson planned for one person at one moment."""

    at: datetime  # UTC
    local: datetime  # the person's wall-clock time
    timezone: str
    email: str
    name: str
    position: int  # the lesson's place in the course
    slug: str
    title: str
    number: int  # which lesson this is in the person's own sequence
    total: int


def slots(
    cadence: Cadence, start: datetime, last_sent_on: date | None, count: int
) -> list[datetime]:
    """The next `count` sending moments from `start`, one per local day, as the dispatcher
    takes them: each one at the first pass at or after the slot."""
    found: list[datetime] = []
    moment, last = start, last_sent_on
    for _ in range(count):
        slot = next_slot(cadence, moment, last)
        found.append(slot)
        last, moment = local_date(slot, cadence.timezone), slot
    return found


def planned_end(cohort: Cohort, lessons: int) -> date | None:
    """The local date of the last lesson for someone who starts on the cohort's first day."""
    if lessons <= 0:
        return None
    cadence = cohort_cadence(cohort, None)
    first = local_moment(cohort.start_date, time(0, 0), cadence.zone)
    return local_date(slots(cadence, first, None, lessons)[-1], cohort.timezone)


def lessons_had(cohort: Cohort, lessons: int, timezone: str | None, now: datetime) -> int:
    """How many lessons someone in `timezone` who started on the cohort's first day has had on
    the local days before the first slot of a person joining at `now`: a joiner who catches up
    skips those and gets the lesson the cohort gets that day."""
    cadence = cohort_cadence(cohort, timezone)
    first_day = local_date(next_slot(cadence, now), cadence.timezone)
    opening = local_moment(cohort.start_date, time(0, 0), cadence.zone)
    had = 0
    for at in slots(cadence, opening, None, lessons):
        if local_date(at, cadence.timezone) >= first_day:
            break
        had += 1
    return had


def cohort_calendar(
    engine: Engine,
    cohort: Cohort,
    course: Course,
    now: datetime,
    *,
    days: int = 14,
    email: str | None = None,
) -> list[Planned]:
    """Every lesson the dispatcher will send to the cohort's active people from `now` for
    `days` days, by time; nothing while the cohort is paused."""
    if cohort.paused:
        return []
    until = now + timedelta(days=days)
    query = (
        sa.select(
            E.c.id,
            P.c.email,
            P.c.name,
            P.c.timezone,
            E.c.next_due_at,
            E.c.last_sent_on,
            E.c.skipped,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id))
        .where(E.c.cohort_id == cohort.id, E.c.status == EnrollmentStatus.active.value)
    )
    if email:
        query = query.where(P.c.email == email.strip().lower())
    with engine.connect() as conn:
        people = conn.execute(query).all()
        if email and not people:
            raise NotFound(f"{email} has no active enrolment in '{cohort.name}'")
        sent: dict[int, set[str]] = {}
        for eid, slug in conn.execute(
            sa.select(D.c.enrollment_id, D.c.lesson_slug)
            .join(E, E.c.id == D.c.enrollment_id)
            .where(E.c.cohort_id == cohort.id, D.c.status == DeliveryStatus.sent.value)
        ):
            sent.setdefault(eid, set()).add(slug)
    total = len(course.lessons)
    planned: list[Planned] = []
    for eid, address, name, zone, due, last, skipped in people:
        cadence = cohort_cadence(cohort, zone)
        # A late joiner's skipped lessons are done for the schedule (and count in "N of M").
        done = sent.get(eid, set()) | set(skipped or ())
        remaining = [x for x in course.lessons if x.slug not in done]
        start = max(due or now, now)
        for n, (lesson, at) in enumerate(
            zip(remaining, slots(cadence, start, last, len(remaining)), strict=True)
        ):
            if at >= until:
                break
            planned.append(
                Planned(
                    at=at.astimezone(UTC),
                    local=at.astimezone(cadence.zone),
                    timezone=cadence.timezone,
                    email=address,
                    name=name,
                    position=course.position(lesson.slug),
                    slug=lesson.slug,
                    title=lesson.title,
                    number=sum(1 for x in course.lessons if x.slug in done) + n + 1,
                    total=total,
                )
            )
    return sorted(planned, key=lambda p: (p.at, p.email))
