"""The plan step, pure: for each claimed enrollment, send which lesson, reschedule, hold,
quarantine or complete. No SQL and no clock of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from drip.curriculum.load import Course, Lesson
from drip.errors import DripError
from drip.models import DeliveryStatus
from drip.schedule import Cadence, cadence_for, next_slot, unreadable
from drip.sending.retry import HOLD


@dataclass(frozen=True)
class Claimed:
    """A claimed enrollment with what its schedule and message need."""

    enrollment_id: int
    email: str
    name: str
    course: str
    last_sent_on: date | None
    timezone: str
    send_time: str
    window_end: str
    send_days: str
    skip_dates: str
    start_date: date | None


@dataclass(frozen=True)
class DeliveryState:
    """What a pass needs of a delivery to send it again with the same Message-ID and Date."""

    id: int
    lesson_slug: str
    status: str
    attempts: int
    message_id: str
    created_at: datetime
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class Send:
    """Send `lesson` now, reusing `delivery` when one exists."""

    row: Claimed
    cadence: Cadence
    course: Course
    lesson: Lesson
    sent_slugs: frozenset[str]
    delivery: DeliveryState | None


@dataclass(frozen=True)
class Reschedule:
    """Not due yet after all: come back at `at`."""

    enrollment_id: int
    at: datetime


@dataclass(frozen=True)
class Hold:
    """The course cannot be loaded: wait and try again at `until` (nothing about the person)."""

    enrollment_id: int
    until: datetime
    reason: str


@dataclass(frozen=True)
class Quarantine:
    """This enrollment's own data cannot be used (a timezone or time the worker cannot read):
    hold it with the reason until someone fixes it, and let the others go on."""

    enrollment_id: int
    reason: str


@dataclass(frozen=True)
class Complete:
    """Every lesson has been sent."""

    enrollment_id: int


Action = Send | Reschedule | Hold | Quarantine | Complete


@dataclass(frozen=True)
class Job:
    """A send with its delivery row in place: everything the build and record steps need."""

    row: Claimed
    cadence: Cadence
    course: Course
    lesson: Lesson
    sent_slugs: frozenset[str]
    delivery: DeliveryState


def cadence_of(row: Claimed) -> Cadence:
    """The enrollment's cadence; raises when its stored values cannot be read."""
    return cadence_for(
        row.timezone,
        row.send_time,
        row.window_end,
        row.send_days,
        row.skip_dates,
        row.start_date,
    )


def plan(
    row: Claimed,
    course: Course | DripError,
    deliveries: dict[str, DeliveryState],
    now: datetime,
) -> Action:
    """What to do with one claimed enrollment at `now`."""
    try:
        cadence = cadence_of(row)
        slot = next_slot(cadence, now, row.last_sent_on)
    except Exception as exc:  # bad stored data must stay this row's problem
        return Quarantine(row.enrollment_id, _bad_row(row, exc))
    if slot > now:
        return Reschedule(row.enrollment_id, slot)
    if isinstance(course, DripError):
        first = str(course).splitlines()[0] if str(course) else type(course).__name__
        return Hold(row.enrollment_id, now + HOLD, first)
    sent = frozenset(
        slug for slug, d in deliveries.items() if d.status == DeliveryStatus.sent.value
    )
    lesson = next((x for x in course.lessons if x.slug not in sent), None)
    if lesson is None:
        return Complete(row.enrollment_id)
    delivery = deliveries.get(lesson.slug)
    if delivery is not None and delivery.status == DeliveryStatus.retry.value:
        retry_at = delivery.next_attempt_at
        if retry_at is not None and retry_at > now:
            return Reschedule(row.enrollment_id, next_slot(cadence, retry_at, row.last_sent_on))
    return Send(row, cadence, course, lesson, sent, delivery)


def _bad_row(row: Claimed, exc: Exception) -> str:
    return unreadable(row.timezone, row.send_time, row.window_end, row.send_days, exc)
