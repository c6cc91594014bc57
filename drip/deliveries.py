"""The delivery rows of a batch: pick each claimed person's next lesson, create or reuse its
delivery (one per enrollment and lesson, Message-ID and Date fixed there), and write what
sending did: sent, retry with backoff, or bounced."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum import Catalog, Course, Lesson
from drip.db import insert_ignoring_conflicts
from drip.enrollment import cadence_for
from drip.errors import DripError
from drip.message import new_message_id, sender_domain
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import DeliveryStatus, EnrollmentStatus, EventKind
from drip.render import Renderer
from drip.schedule import Cadence, local_date, next_slot
from drip.transports import Outcome, SendResult

log = logging.getLogger("drip.dispatch")


# What a pass needs to know of a delivery to send it again with the same Message-ID and Date.
DELIVERY_STATE = (
    D.c.id,
    D.c.enrollment_id,
    D.c.lesson_slug,
    D.c.status,
    D.c.attempts,
    D.c.message_id,
    D.c.created_at,
    D.c.next_attempt_at,
)
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=1)
HOLD = timedelta(hours=1)  # how long a lesson that cannot be built or loaded waits


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt: 5 minutes, doubling, capped at one hour."""
    return min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)


@dataclass(frozen=True)
class Item:
    """One message's outcome in a pass."""

    email: str
    lesson: str
    outcome: str
    detail: str = ""


@dataclass
class PassResult:
    """What one pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    completed: int = 0
    rescheduled: int = 0
    items: list[Item] = field(default_factory=list)

    def add(self, other: PassResult) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.completed += other.completed
        self.rescheduled += other.rescheduled
        self.items.extend(other.items)

    def summary(self) -> str:
        return (
            f"sent {self.sent}, retry later {self.retried}, failed {self.failed}, "
            f"completed {self.completed}, rescheduled {self.rescheduled}"
        )


@dataclass
class Job:
    """One claimed enrollment on its way to a send."""

    enrollment_id: int
    email: str
    name: str
    cadence: Cadence
    lessons_sent: int
    last_sent_on: date | None
    sent_slugs: frozenset[str] = frozenset()
    course: Course | None = None
    lesson: Lesson | None = None
    delivery: dict[str, Any] | None = None
    sent_at: datetime | None = None


def prepare_batch(
    engine: Engine,
    ids: list[int],
    now: datetime,
    result: PassResult,
    *,
    catalog: Catalog,
    renderer: Renderer,
    sender: str,
    worker: str,
    recorded_versions: set[str],
) -> tuple[list[Job], list[tuple[int, datetime | None]]]:
    """Load the claimed rows, pick each one's next lesson, and create or reuse its delivery."""
    query = (
        sa.select(
            E.c.id,
            E.c.lessons_sent,
            E.c.last_sent_on,
            P.c.email,
            P.c.name,
            P.c.timezone,
            C.c.course,
            C.c.timezone.label("cohort_tz"),
            C.c.send_time,
            C.c.window_end,
            C.c.send_days,
            C.c.skip_dates,
            C.c.start_date,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id.in_(ids))
        .order_by(E.c.next_due_at, E.c.id)
    )
    releases: list[tuple[int, datetime | None]] = []
    jobs: list[Job] = []
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        existing: dict[int, dict[str, dict[str, Any]]] = {}
        for mapping in conn.execute(
            sa.select(*DELIVERY_STATE).where(D.c.enrollment_id.in_(ids))
        ).mappings():
            existing.setdefault(mapping["enrollment_id"], {})[mapping["lesson_slug"]] = dict(
                mapping
            )
        completed: list[int] = []
        courses: dict[str, Course | DripError] = {}
        for row in rows:
            cadence = cadence_for(
                row.timezone or row.cohort_tz,
                row.send_time,
                row.window_end,
                row.send_days,
                row.skip_dates,
                row.start_date,
            )
            slot = next_slot(cadence, now, row.last_sent_on)
            if slot > now:
                releases.append((row.id, slot))
                result.rescheduled += 1
                continue
            if row.course not in courses:
                try:
                    courses[row.course] = catalog.get(row.course)
                except DripError as exc:
                    courses[row.course] = exc
            course = courses[row.course]
            if isinstance(course, DripError):
                log.error(
                    "course %s cannot be loaded, holding its lessons for an hour: %s",
                    row.course,
                    course,
                )
                releases.append((row.id, now + HOLD))
                result.items.append(
                    Item(row.email, row.course, "held", str(course).splitlines()[0])
                )
                continue
            mine = existing.get(row.id, {})
            sent = {slug for slug, dl in mine.items() if dl["status"] == DeliveryStatus.sent.value}
            lesson = next((x for x in course.lessons if x.slug not in sent), None)
            if lesson is None:
                completed.append(row.id)
                result.completed += 1
                continue
            job = Job(
                row.id,
                row.email,
                row.name,
                cadence,
                row.lessons_sent,
                row.last_sent_on,
                frozenset(sent),
                course,
                lesson,
            )
            delivery = mine.get(lesson.slug)
            if delivery is not None and delivery["status"] == DeliveryStatus.retry.value:
                retry_at = delivery["next_attempt_at"]
                if retry_at is not None and retry_at > now:
                    releases.append((row.id, next_slot(cadence, retry_at, row.last_sent_on)))
                    result.rescheduled += 1
                    continue
            job.delivery = delivery
            jobs.append(job)
        new = [j for j in jobs if j.delivery is None]
        if new:
            domain = sender_domain(sender)
            assert all(j.lesson is not None for j in new)
            conn.execute(
                insert_ignoring_conflicts(conn, D),
                [
                    {
                        "enrollment_id": j.enrollment_id,
                        "lesson_slug": j.lesson.slug,  # type: ignore[union-attr]
                        "position": j.course.position(j.lesson.slug),  # type: ignore[union-attr]
                        "content_hash": j.lesson.content_hash,  # type: ignore[union-attr]
                        "message_id": new_message_id(domain),
                        "created_at": now,
                        "status": DeliveryStatus.sending.value,
                        "attempts": 1,
                        "last_error": "",
                    }
                    for j in new
                ],
            )
            fresh: dict[tuple[int, str], dict[str, Any]] = {
                (r["enrollment_id"], r["lesson_slug"]): dict(r)
                for r in conn.execute(
                    sa.select(*DELIVERY_STATE).where(
                        D.c.enrollment_id.in_([j.enrollment_id for j in new])
                    )
                ).mappings()
            }
            for j in new:
                j.delivery = fresh[(j.enrollment_id, j.lesson.slug)]  # type: ignore[union-attr]
                j.delivery["attempts"] = 0  # attempts before this one, as for reused rows
        fresh_ids = {id(j) for j in new}
        reused = [j for j in jobs if id(j) not in fresh_ids]
        if reused:
            # A resend is built from the lesson as it is now: record that version, so clicks and
            # answers resolve against the links and options this message carries.
            conn.execute(
                D.update()
                .where(D.c.id == sa.bindparam("did"))
                .values(
                    status=DeliveryStatus.sending.value,
                    attempts=D.c.attempts + 1,
                    content_hash=sa.bindparam("hash"),
                    position=sa.bindparam("pos"),
                ),
                [
                    {
                        "did": j.delivery["id"],  # type: ignore[index]
                        "hash": j.lesson.content_hash,  # type: ignore[union-attr]
                        "pos": j.course.position(j.lesson.slug),  # type: ignore[union-attr]
                    }
                    for j in reused
                ],
            )
            # A lesson that failed before and was resumed by hand gets a fresh retry lifetime.
            failed = [
                j.delivery
                for j in jobs
                if j.delivery and j.delivery["status"] == DeliveryStatus.failed.value
            ]
            if failed:
                conn.execute(
                    D.update()
                    .where(D.c.id.in_([f["id"] for f in failed]))
                    .values(created_at=now, attempts=1)
                )
                for f in failed:
                    f.update(created_at=now, attempts=0)
        if completed:
            conn.execute(
                E.update()
                .where(
                    E.c.id.in_(completed),
                    E.c.claimed_by == worker,
                    E.c.status == EnrollmentStatus.active.value,
                )
                .values(
                    status=EnrollmentStatus.completed.value,
                    next_due_at=None,
                    claimed_until=None,
                    claimed_by=None,
                    status_reason="",
                )
            )
        _record_versions(renderer, recorded_versions, conn, jobs)
    return jobs, releases


def _record_versions(
    renderer: Renderer, recorded: set[str], conn: sa.Connection, jobs: list[Job]
) -> None:
    """Store each lesson version's links, takeaway and check, so the web app never trusts a URL."""
    rows = []
    for job in jobs:
        lesson = job.lesson
        assert lesson is not None and job.course is not None
        if lesson.content_hash in recorded:
            continue
        rendered = renderer.render(job.course, lesson)
        check = lesson.check
        rows.append(
            {
                "content_hash": lesson.content_hash,
                "course": job.course.slug,
                "slug": lesson.slug,
                "title": lesson.title,
                "links": json.dumps(list(rendered.links)),
                "takeaway": lesson.takeaway,
                "check": json.dumps(
                    {
                        "question": check.question,
                        "options": list(check.options),
                        "answer": check.answer,
                        "explanation": check.explanation,
                    }
                    if check
                    else None
                ),
            }
        )
        recorded.add(lesson.content_hash)
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, LV), rows)


def record_outcomes(
    engine: Engine,
    worker: str,
    retry_lifetime: timedelta,
    pending: list[tuple[Job, SendResult]],
    now: datetime,
    result: PassResult,
) -> None:
    """Write the outcomes of sent messages, their events and each enrollment's next slot."""
    deliveries, events, enrollments = [], [], []
    for job, outcome in pending:
        assert job.delivery is not None and job.lesson is not None and job.course is not None
        delivery = job.delivery
        base = {
            "did": delivery["id"],
            "status": None,
            "sent_at": None,
            "next_attempt_at": None,
            "last_error": "" if outcome.outcome is Outcome.accepted else str(outcome)[:1000],
        }
        event = {
            "enrollment_id": job.enrollment_id,
            "delivery_id": delivery["id"],
            "at": job.sent_at or now,
            "method": "smtp",
            "seconds_since_send": None,
            "verdict": "unknown",
            "reason": "",
            "detail": str(outcome)[:1000],
        }
        change = {
            "eid": job.enrollment_id,
            "new_status": EnrollmentStatus.active.value,
            "reason": "",
            "sent": job.lessons_sent,
            "last": job.last_sent_on,
            "due": None,
        }
        if outcome.outcome is Outcome.accepted:
            today = local_date(job.sent_at or now, job.cadence.timezone)
            sent_slugs = job.sent_slugs | {job.lesson.slug}
            sent_count = len(sent_slugs)
            done = all(x.slug in sent_slugs for x in job.course.lessons)
            base.update(status=DeliveryStatus.sent.value, sent_at=job.sent_at or now)
            event.update(kind=EventKind.sent.value, seconds_since_send=0.0)
            change.update(sent=sent_count, last=today)
            if done:
                change.update(new_status=EnrollmentStatus.completed.value, due=None)
                result.completed += 1
            else:
                change["due"] = next_slot(job.cadence, job.sent_at or now, today)
            result.sent += 1
            result.items.append(Item(job.email, job.lesson.slug, "sent", outcome.reply))
        elif outcome.outcome is Outcome.retry and now - delivery["created_at"] < retry_lifetime:
            retry_at = (job.sent_at or now) + backoff(delivery["attempts"] + 1)
            base.update(status=DeliveryStatus.retry.value, next_attempt_at=retry_at)
            event.update(kind=EventKind.retry.value)
            change["due"] = next_slot(job.cadence, retry_at, job.last_sent_on)
            result.retried += 1
            result.items.append(Item(job.email, job.lesson.slug, "retry", str(outcome)))
        else:
            if outcome.outcome is Outcome.retry:
                hours = retry_lifetime.total_seconds() / 3600
                reason = f"gave up on lesson '{job.lesson.slug}' after {hours:g} h of failures: {outcome}"
            else:
                reason = f"lesson '{job.lesson.slug}' {outcome}"
            base.update(status=DeliveryStatus.failed.value)
            event.update(kind=EventKind.bounce.value, reason=reason[:1000])
            change.update(new_status=EnrollmentStatus.bounced.value, reason=reason[:1000])
            result.failed += 1
            result.items.append(Item(job.email, job.lesson.slug, "failed", str(outcome)))
            log.warning("%s: %s", job.email, reason)
        deliveries.append(base)
        events.append(event)
        enrollments.append(change)
    with engine.begin() as conn:
        conn.execute(
            D.update()
            .where(D.c.id == sa.bindparam("did"))
            .values(
                status=sa.bindparam("status"),
                sent_at=sa.bindparam("sent_at"),
                next_attempt_at=sa.bindparam("next_attempt_at"),
                last_error=sa.bindparam("last_error"),
            ),
            deliveries,
        )
        conn.execute(EV.insert(), events)
        mine = sa.and_(E.c.id == sa.bindparam("eid"), E.c.claimed_by == worker)
        # The schedule and status change only while the person is still active: a pause or an
        # unsubscribe that arrived while the message was on the wire stands.
        conn.execute(
            E.update()
            .where(mine, E.c.status == EnrollmentStatus.active.value)
            .values(
                status=sa.bindparam("new_status"),
                status_reason=sa.bindparam("reason"),
                next_due_at=sa.bindparam("due"),
            ),
            enrollments,
        )
        conn.execute(
            E.update()
            .where(mine)
            .values(
                lessons_sent=sa.bindparam("sent"),
                last_sent_on=sa.bindparam("last"),
                claimed_until=None,
                claimed_by=None,
            ),
            enrollments,
        )
