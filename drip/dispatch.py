"""Claim due enrollments, create deliveries, render, send, record, and retry with backoff."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.claims import claim, release, wake_paused, worker_name
from drip.curriculum import Catalog, Course, Lesson
from drip.db import insert_ignoring_conflicts
from drip.enrollment import cadence_for
from drip.errors import DripError
from drip.message import MessageTemplate, new_message_id, sender_domain
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import (
    DeliveryStatus,
    EnrollmentStatus,
    EventKind,
)
from drip.render import Renderer
from drip.schedule import Cadence, local_date, next_slot
from drip.tokens import link_values
from drip.transports import Outcome, SendResult, Transport

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
IN_FLIGHT = 1  # messages built ahead of the one being sent
FIRST_RETRY = timedelta(minutes=5)
MAX_RETRY = timedelta(hours=1)
HOLD = timedelta(hours=1)  # how long a lesson that cannot be built or loaded waits


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt: 5 minutes, doubling, capped at one hour."""
    return min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)


@dataclass
class Dispatcher:
    """Everything a pass needs, passed in: database, transport, renderer, courses and settings."""

    engine: Engine
    transport: Transport
    renderer: Renderer
    catalog: Catalog
    sender: str
    base_url: str
    secret: str
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    retry_lifetime: timedelta = timedelta(days=3)
    worker: str = field(default_factory=worker_name)
    flush_every: int = 50
    _templates: dict[tuple[str, str, str, str], MessageTemplate] = field(default_factory=dict)
    _recorded_versions: set[str] = field(default_factory=set)


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


def send_due(
    dispatcher: Dispatcher,
    now: datetime,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    max_batches: int | None = None,
) -> PassResult:
    """One pass: claim due enrollments batch by batch and send each its next lesson."""
    total = PassResult()
    wake_paused(dispatcher.engine, now)
    batches = 0
    started = time.monotonic()
    while not should_stop():
        # What is due is judged at the pass's time; a lease runs from the claim itself, since a
        # long pass may outlast a lease.
        claimed_at = now + timedelta(seconds=time.monotonic() - started)
        ids = claim(
            dispatcher.engine,
            now,
            dispatcher.batch_size,
            dispatcher.lease,
            dispatcher.worker,
            claimed_at,
        )
        if not ids:
            break
        total.add(_process(dispatcher, ids, now, should_stop, started))
        batches += 1
        if max_batches is not None and batches >= max_batches:
            break
    return total


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


def _process(
    d: Dispatcher,
    ids: list[int],
    now: datetime,
    should_stop: Callable[[], bool],
    pass_started: float | None = None,
) -> PassResult:
    """Send a claimed batch: build each message while the previous one is on the wire."""
    result = PassResult()
    started = time.monotonic()
    pass_started = started if pass_started is None else pass_started
    jobs, releases = _prepare(d, ids, now, result)
    if releases:
        release(d.engine, d.worker, releases)
    pending: list[tuple[Job, SendResult]] = []
    in_flight: deque[tuple[Job, Future[SendResult]]] = deque()

    def moment() -> datetime:
        # The pass's clock moved on by the real time spent, to the second.
        return now + timedelta(seconds=int(time.monotonic() - pass_started))

    def collect(limit: int) -> None:
        nonlocal pending
        while len(in_flight) > limit:
            job, future = in_flight.popleft()
            pending.append((job, future.result()))
            if len(pending) >= d.flush_every:
                _record(d, pending, now, result)
                pending = []

    # One thread talks SMTP (one connection, messages in order); this one builds and records.
    # Whatever happens, what was sent is recorded: an unrecorded send would go out again.
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drip-smtp") as sender:
            try:
                for index, job in enumerate(jobs):
                    late = time.monotonic() - started > d.lease.total_seconds() * 0.5
                    if should_stop() or late:
                        # Hand the rest back rather than risk another worker reclaiming them.
                        rest = [(j.enrollment_id, None) for j in jobs[index:]]
                        release(d.engine, d.worker, rest, keep_due=True)
                        break
                    current = moment()
                    slot = next_slot(job.cadence, current, job.last_sent_on)
                    if slot > current:  # the window closed (or the day turned) during the batch
                        release(d.engine, d.worker, [(job.enrollment_id, slot)])
                        result.rescheduled += 1
                        continue
                    try:
                        built = _build(d, job)
                    except Exception as exc:  # a bug or a broken template: hold, never loop
                        log.exception("cannot build lesson %s for %s", job.lesson, job.email)
                        release(d.engine, d.worker, [(job.enrollment_id, now + HOLD)])
                        slug = job.lesson.slug if job.lesson else ""
                        result.items.append(Item(job.email, slug, "held", str(exc)[:200]))
                        continue
                    job.sent_at = current
                    future: Future[SendResult]
                    if isinstance(built, SendResult):
                        future = Future()
                        future.set_result(built)
                    else:
                        future = sender.submit(d.transport.send, built[0], job.email, built[1])
                    in_flight.append((job, future))
                    collect(IN_FLIGHT)
            finally:
                collect(0)
    finally:
        if pending:
            _record(d, pending, now, result)
    return result


def _prepare(
    d: Dispatcher, ids: list[int], now: datetime, result: PassResult
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
    with d.engine.begin() as conn:
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
                    courses[row.course] = d.catalog.get(row.course)
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
            domain = sender_domain(d.sender)
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
                    E.c.claimed_by == d.worker,
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
        _record_versions(d, conn, jobs)
    return jobs, releases


def _record_versions(d: Dispatcher, conn: sa.Connection, jobs: list[Job]) -> None:
    """Store each lesson version's links, takeaway and check, so the web app never trusts a URL."""
    rows = []
    for job in jobs:
        lesson = job.lesson
        assert lesson is not None and job.course is not None
        if lesson.content_hash in d._recorded_versions:
            continue
        rendered = d.renderer.render(job.course, lesson)
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
        d._recorded_versions.add(lesson.content_hash)
    if rows:
        conn.execute(insert_ignoring_conflicts(conn, LV), rows)


def _template(d: Dispatcher, course: Course, lesson: Lesson) -> MessageTemplate:
    rendered = d.renderer.render(course, lesson)
    key = (course.slug, lesson.slug, lesson.content_hash, rendered.version)
    template = d._templates.get(key)
    if template is None or template.rendered is not rendered:
        template = MessageTemplate.of(rendered, d.sender)
        d._templates[key] = template
    return template


def _build(d: Dispatcher, job: Job) -> tuple[str, bytes] | SendResult:
    """The envelope sender and message bytes for a job, or the reason it cannot be built."""
    assert job.course is not None and job.lesson is not None and job.delivery is not None
    # The lesson's template failing (a bad DRIP_FROM, a broken template) is not the recipient's
    # fault: it raises, and the caller holds the lesson instead of bouncing the person.
    template = _template(d, job.course, job.lesson)
    rendered = template.rendered
    options = len(job.lesson.check.options) if job.lesson.check else 0
    values = link_values(d.base_url, d.secret, job.delivery["id"], options, len(rendered.links))
    values["NAME"] = job.name or "there"
    try:
        data = template.build(
            to_name=job.name,
            to_address=job.email,
            date=job.delivery["created_at"],
            message_id=job.delivery["message_id"],
            values=values,
        )
    except DripError as exc:
        return SendResult(Outcome.rejected, None, f"cannot build the message: {exc}")
    return template.envelope_from, data


def _record(
    d: Dispatcher, pending: list[tuple[Job, SendResult]], now: datetime, result: PassResult
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
        elif outcome.outcome is Outcome.retry and now - delivery["created_at"] < d.retry_lifetime:
            retry_at = (job.sent_at or now) + backoff(delivery["attempts"] + 1)
            base.update(status=DeliveryStatus.retry.value, next_attempt_at=retry_at)
            event.update(kind=EventKind.retry.value)
            change["due"] = next_slot(job.cadence, retry_at, job.last_sent_on)
            result.retried += 1
            result.items.append(Item(job.email, job.lesson.slug, "retry", str(outcome)))
        else:
            if outcome.outcome is Outcome.retry:
                hours = d.retry_lifetime.total_seconds() / 3600
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
    with d.engine.begin() as conn:
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
        mine = sa.and_(E.c.id == sa.bindparam("eid"), E.c.claimed_by == d.worker)
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
