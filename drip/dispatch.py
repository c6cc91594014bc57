"""A dispatcher pass: claim due enrollments, build each lesson email, send it, record it."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from drip.claims import claim, release, wake_paused, worker_name
from drip.curriculum import Catalog, Course, Lesson
from drip.deliveries import (
    HOLD,
    Item,
    Job,
    PassResult,
    prepare_batch,
    record_outcomes,
)
from drip.errors import DripError
from drip.message import MessageTemplate
from drip.render import Renderer
from drip.schedule import next_slot
from drip.tokens import link_values
from drip.transports import Outcome, SendResult, Transport

log = logging.getLogger("drip.dispatch")

IN_FLIGHT = 1  # messages built ahead of the one being sent


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
    jobs, releases = prepare_batch(
        d.engine,
        ids,
        now,
        result,
        catalog=d.catalog,
        renderer=d.renderer,
        sender=d.sender,
        worker=d.worker,
        recorded_versions=d._recorded_versions,
    )
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
                record_outcomes(d.engine, d.worker, d.retry_lifetime, pending, now, result)
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
            record_outcomes(d.engine, d.worker, d.retry_lifetime, pending, now, result)
    return result


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
