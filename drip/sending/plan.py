"""The plan step, pure: for each claimed enrollment, what today's one e-mail is (a welcome, a
lesson with perhaps a review block and a catch-up line, the completion with its certificate, a
review of its own after the course, or the note of an automatic pause), or reschedule, hold,
quarantine or finish. No SQL and no clock of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from drip.curriculum.model import Course, Lesson
from drip.errors import DripError
from drip.mail.render import Extras, Welcome
from drip.schedule import (
    Cadence,
    cadence_for,
    days_text,
    local_date,
    local_moment,
    next_slot,
    unreadable,
    unstarted,
)
from drip.sending.retry import HOLD
from drip.states import DeliveryKind, DeliveryStatus, EnrollmentStatus

WELCOME = "_welcome"
COMPLETION = "_complete"
AUTOPAUSE_NOTE = "_autopause"


@dataclass(frozen=True)
class DueReview:
    """A person's next review: which lesson's check, the local date it is due, rounds so far."""

    slug: str
    due_on: date
    rounds: int


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
    status: str = EnrollmentStatus.active.value
    welcome: bool = False  # the cohort sends a welcome
    unopened: int = 0  # lessons in a row, most recent first, not opened by a person
    review: DueReview | None = None  # the earliest review not retired
    autopauses: int = 0  # automatic pauses so far (the note goes out once per pause)
    cohort: str = ""
    sponsor: str = ""
    skipped: frozenset[str] = frozenset()  # a late joiner's lessons before theirs: never sent


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
    kind: str = DeliveryKind.lesson.value


@dataclass(frozen=True)
class Send:
    """Send today's e-mail, reusing `delivery` when one exists.

    `slug` names the delivery (a lesson's slug, or WELCOME, COMPLETION, ...); `lesson` is the
    lesson a lesson or review e-mail is about, None for the welcome, completion and note."""

    row: Claimed
    cadence: Cadence
    course: Course
    kind: DeliveryKind
    slug: str
    lesson: Lesson | None
    sent_slugs: frozenset[str]
    delivery: DeliveryState | None
    extras: Extras = field(default_factory=Extras)


@dataclass(frozen=True)
class Autopause:
    """Too many lessons unopened: pause with the reason, and send the one short note."""

    send: Send
    reason: str


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


@dataclass(frozen=True)
class Finish:
    """A completed person with no review left: nothing more to send."""

    enrollment_id: int


Action = Send | Reschedule | Hold | Quarantine | Complete | Autopause | Finish


@dataclass(frozen=True)
class Job:
    """A send with its delivery row in place: everything the build and record steps need."""

    send: Send
    delivery: DeliveryState

    @property
    def row(self) -> Claimed:
        return self.send.row

    @property
    def cadence(self) -> Cadence:
        return self.send.cadence


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
    welcome_owed = row.welcome and not _sent(deliveries, WELCOME)
    try:
        cadence = cadence_of(row)
        # A welcome may go out before the course starts; lessons wait for the start date.
        early = welcome_owed and row.last_sent_on is None
        timing = unstarted(cadence) if early else cadence
        slot = next_slot(timing, now, row.last_sent_on)
        today = local_date(now, cadence.timezone)
    except Exception as exc:  # bad stored data must stay this row's problem
        return Quarantine(row.enrollment_id, _bad_row(row, exc))
    if slot > now:
        return Reschedule(row.enrollment_id, slot)
    if isinstance(course, DripError):
        first = str(course).splitlines()[0] if str(course) else type(course).__name__
        return Hold(row.enrollment_id, now + HOLD, first)
    sent = frozenset(
        slug
        for slug, d in deliveries.items()
        if d.status == DeliveryStatus.sent.value and d.kind == DeliveryKind.lesson.value
    )

    def send(kind: DeliveryKind, slug: str, lesson: Lesson | None, extras: Extras) -> Action:
        delivery = deliveries.get(slug)
        if delivery is not None and delivery.status == DeliveryStatus.retry.value:
            retry_at = delivery.next_attempt_at
            if retry_at is not None and retry_at > now:
                return Reschedule(row.enrollment_id, next_slot(cadence, retry_at, row.last_sent_on))
        return Send(row, cadence, course, kind, slug, lesson, sent, delivery, extras)

    review = _due_review(row, course, today)
    if row.status == EnrollmentStatus.completed.value:
        if row.review is None:
            return Finish(row.enrollment_id)
        if review is None and row.review.due_on <= today:  # its lesson or check is gone
            return Finish(row.enrollment_id)
        if review is None:
            return Reschedule(row.enrollment_id, _slot_on(cadence, row.review.due_on, now, row))
        slug = f"_review:{review.slug}:{row.review.rounds}"
        return send(DeliveryKind.review, slug, review, Extras())
    # A late joiner's skipped lessons count as done for what comes next and for the place in
    # the sequence, never as sent (the welcome, the pause and the reports go by what was sent).
    done = sent | row.skipped
    lesson = next((x for x in course.lessons if x.slug not in done), None)
    if lesson is None:
        if _sent(deliveries, COMPLETION):
            return Complete(row.enrollment_id)
        return send(DeliveryKind.completion, COMPLETION, None, Extras())
    if welcome_owed and not sent:
        start = cadence.start
        if start is not None and today < start:  # a day of its own before the course starts
            return send(DeliveryKind.welcome, WELCOME, None, Extras())
    if sent and row.unopened >= course.pause_after:
        note = f"{AUTOPAUSE_NOTE}:{row.autopauses}"
        action = send(DeliveryKind.note, note, None, Extras(catch_up=row.unopened))
        if isinstance(action, Send):
            reason = (
                f"paused automatically: the last {row.unopened} lessons were not opened; "
                "one click on the note's link resumes"
            )
            return Autopause(action, reason)
        return action
    extras = Extras(
        welcome=Welcome(
            row.cohort, row.sponsor, cadence.send_time.strftime("%H:%M"), days_text(cadence.days)
        )
        if welcome_owed and not sent
        else None,
        review=review,
        catch_up=row.unopened if sent and row.unopened >= course.catch_up_after else 0,
        # Counted in the reader's own sequence: a lesson inserted into a running course is
        # their next one, and its number is theirs, not its place in the course.
        position=1 + sum(1 for x in course.lessons if x.slug in done),
    )
    return send(DeliveryKind.lesson, lesson.slug, lesson, extras)


def _sent(deliveries: dict[str, DeliveryState], slug: str) -> bool:
    return slug in deliveries and deliveries[slug].status == DeliveryStatus.sent.value


def _due_review(row: Claimed, course: Course, today: date) -> Lesson | None:
    """The review due today or earlier whose lesson still has a check, if any."""
    if row.review is None or row.review.due_on > today:
        return None
    slug = row.review.slug
    lesson = next((x for x in course.lessons if x.slug == slug), None)
    return lesson if lesson is not None and lesson.check is not None else None


def _slot_on(cadence: Cadence, day: date, now: datetime, row: Claimed) -> datetime:
    """The first slot on or after a local date."""
    moment = max(now, local_moment(day, time(0, 0), cadence.zone))
    return next_slot(unstarted(cadence), moment, row.last_sent_on)


def _bad_row(row: Claimed, exc: Exception) -> str:
    return unreadable(row.timezone, row.send_time, row.window_end, row.send_days, exc)
