"""A dispatcher pass: claim due enrollments, plan each, build and send its lesson, record it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from drip.checkpoints import checkpoints_aside
from drip.curriculum.load import Catalog
from drip.curriculum.model import Course
from drip.errors import DripError, RenderError
from drip.mail.build import LessonMail, Recipient
from drip.mail.message import new_message_id, sender_domain
from drip.mail.notes import NoteMail, Summary
from drip.mail.transports import Outcome, Outgoing, SendResult, Transport
from drip.schedule import days_text, local_date, next_slot, unstarted
from drip.sending import record, store
from drip.sending.claims import claim, release, wake_paused, worker_name
from drip.sending.plan import (
    Autopause,
    Complete,
    Finish,
    Hold,
    Job,
    Quarantine,
    Reschedule,
    Send,
    plan,
)
from drip.sending.retry import HOLD, POLICY_WAVE, Verdict, Wave, decide
from drip.states import DeliveryKind

log = logging.getLogger("drip.sending")

WINDOW = 8  # messages the server may have accepted before their outcome is recorded


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
    held: int = 0
    items: list[Item] = field(default_factory=list)
    stopped: str = ""  # why the pass ended early: the relay is down

    def add(self, other: PassResult) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.completed += other.completed
        self.rescheduled += other.rescheduled
        self.held += other.held
        self.items.extend(other.items)
        self.stopped = self.stopped or other.stopped

    def summary(self) -> str:
        held = f", held {self.held}" if self.held else ""
        stopped = f"; stopped: {self.stopped}" if self.stopped else ""
        return (
            f"sent {self.sent}, retry later {self.retried}, failed {self.failed}, "
            f"completed {self.completed}, rescheduled {self.rescheduled}{held}{stopped}"
        )


@dataclass
class Dispatcher:
    """Everything a pass needs, passed in: database, transport, message builder and courses."""

    engine: Engine
    transport: Transport
    mail: LessonMail
    notes: NoteMail
    catalog: Catalog
    batch_size: int = 200
    lease: timedelta = timedelta(minutes=5)
    retry_lifetime: timedelta = timedelta(days=3)
    worker: str = field(default_factory=worker_name)
    window: int = WINDOW
    policy_wave: int = POLICY_WAVE
    recorded_versions: set[str] = field(default_factory=set)


def send_due(
    dispatcher: Dispatcher,
    now: datetime,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    max_batches: int | None = None,
) -> PassResult:
    """One pass: claim due enrollments batch by batch and send each its next lesson."""
    total = PassResult()
    wave = Wave(dispatcher.policy_wave)
    wake_paused(dispatcher.engine, now)
    batches = 0
    started = time.monotonic()
    ahead: list[Batch | None] = []  # claimed while the last batch's last step was on the wire
    # The pass claims, plans, records and releases on one connection, a transaction at a time.
    db = dispatcher.engine.connect()

    def next_batch(result: PassResult) -> Batch | None:
        nonlocal batches
        if should_stop() or (max_batches is not None and batches >= max_batches):
            return None
        # What is due is judged at the pass's time; a lease runs from the claim itself, since a
        # long pass may outlast a lease.
        claimed = time.monotonic()
        claimed_at = now + timedelta(seconds=claimed - started)
        ids = claim(
            db,
            now,
            dispatcher.batch_size,
            dispatcher.lease,
            dispatcher.worker,
            claimed_at,
        )
        if not ids:
            return None
        batches += 1
        return Batch(prepare(dispatcher, db, ids, now, result), claimed)

    def claim_ahead(result: PassResult) -> None:
        ahead.append(next_batch(result))

    try:
        # On SQLite, a thread makes the pass's checkpoints: none of its commits waits for one.
        with checkpoints_aside(db):
            while True:
                batch = ahead.pop() if ahead else next_batch(total)
                if batch is None:
                    break
                done = _process(dispatcher, db, batch, now, should_stop, started, wave, claim_ahead)
                total.add(done)
                if done.stopped:
                    log.error(
                        "pass stopped, everyone due stays due for the next pass: %s", done.stopped
                    )
                    break
                if wave.tripped:
                    total.stopped = wave.why()
                    log.error("pass stopped: %s", total.stopped)
                    break
    finally:
        try:
            unstarted = [p.job.row.enrollment_id for b in ahead if b is not None for p in b.jobs]
            if unstarted:  # claimed and planned but never sent: due exactly as they were
                release(db, dispatcher.worker, [(e, None) for e in unstarted], True)
        finally:
            db.close()
    return total


@dataclass(frozen=True)
class Prepared:
    """A job with what its e-mail needs beyond the plan: an automatic pause's reason, or the
    person's summary for the completion e-mail."""

    job: Job
    autopause: str = ""
    summary: Summary | None = None


def prepare(
    d: Dispatcher, db: Connection, ids: list[int], now: datetime, result: PassResult
) -> list[Prepared]:
    """Plan a claimed batch and store what the plan says; return the sends, in due order."""
    courses: dict[str, Course | DripError] = {}
    autopause: dict[int, str] = {}
    domain = sender_domain(d.mail.sender)
    releases: list[tuple[int, datetime | None]] = []
    with db.begin():
        rows, existing = store.load_batch(db, ids)
        sends: list[Send] = []
        completed: list[int] = []
        finished: list[int] = []
        held: list[tuple[int, str]] = []
        for row in rows:
            if row.course not in courses:
                try:
                    courses[row.course] = d.catalog.get(row.course)
                except DripError as exc:
                    courses[row.course] = exc
                    log.error(
                        "course %s cannot be loaded, holding its lessons: %s", row.course, exc
                    )
            action = plan(row, courses[row.course], existing.get(row.enrollment_id, {}), now)
            match action:
                case Send():
                    sends.append(action)
                case Autopause(send, reason):
                    sends.append(send)
                    autopause[row.enrollment_id] = reason
                case Finish(eid):
                    finished.append(eid)
                case Reschedule(eid, at):
                    releases.append((eid, at))
                    result.rescheduled += 1
                case Hold(eid, until, reason):
                    releases.append((eid, until))
                    result.items.append(Item(row.email, row.course, "held", reason))
                case Quarantine(eid, reason):
                    held.append((eid, reason))
                    result.held += 1
                    result.items.append(Item(row.email, row.course, "held", reason))
                    log.warning("%s held: %s", row.email, reason)
                case Complete(eid):
                    completed.append(eid)
                    result.completed += 1
        jobs = store.open_deliveries(db, sends, now, lambda: new_message_id(domain))
        store.complete(db, d.worker, completed, now)
        store.finish(db, d.worker, finished)
        store.quarantine(db, d.worker, held, now)
        summaries = {
            j.row.enrollment_id: store.summary(
                db, j.row.enrollment_id, j.send.course, j.row.cohort, j.cadence.timezone, now
            )
            for j in jobs
            if j.send.kind is DeliveryKind.completion
        }
        store.record_versions(db, d.mail.renderer, d.recorded_versions, jobs)
    if releases:
        release(db, d.worker, releases)
    return [
        Prepared(j, autopause.get(j.row.enrollment_id, ""), summaries.get(j.row.enrollment_id))
        for j in jobs
    ]


@dataclass(frozen=True)
class Batch:
    """A claimed batch, planned, with the moment of its claim (its lease runs from there)."""

    jobs: list[Prepared]
    claimed: float  # time.monotonic()


def _process(
    d: Dispatcher,
    db: Connection,
    batch: Batch,
    now: datetime,
    should_stop: Callable[[], bool],
    pass_started: float,
    wave: Wave,
    claim_ahead: Callable[[PassResult], None] | None = None,
) -> PassResult:
    """Send a claimed batch a step at a time (one message per connection): while a step is on
    the wire, build the next and record the last, and while the last step is on the wire, claim
    and plan the next batch (`claim_ahead`). What the server may have accepted and is not
    recorded yet never exceeds `d.window` messages: that bounds the resends after a crash."""
    result = PassResult()
    started = batch.claimed
    width = max(1, min(d.transport.width, d.window))
    todo = iter(batch.jobs)
    unrecorded: list[tuple[Prepared, datetime, SendResult]] = []
    unsent: list[Prepared] = []

    def moment() -> datetime:
        # The pass's clock moved on by the real time spent, to the second.
        return now + timedelta(seconds=int(time.monotonic() - pass_started))

    def build_step() -> list[tuple[Prepared, datetime, Outgoing]]:
        step: list[tuple[Prepared, datetime, Outgoing]] = []
        for prepared in todo:
            job = prepared.job
            if wave.tripped:
                # A content or policy block for everyone: this lesson waits, unsent.
                later = [prepared, *todo]
                release(db, d.worker, [(p.job.row.enrollment_id, now + HOLD) for p in later])
                result.rescheduled += len(later)
                break
            if should_stop() or time.monotonic() - started > d.lease.total_seconds() * 0.5:
                # Hand the rest back rather than risk another worker reclaiming them.
                unsent.append(prepared)
                unsent.extend(todo)
                break
            current = moment()
            if job.send.kind is DeliveryKind.lesson:
                slot = next_slot(job.cadence, current, job.row.last_sent_on)
            else:  # may go before the start date
                slot = next_slot(unstarted(job.cadence), current, job.row.last_sent_on)
            if slot > current:  # the window closed (or the day turned) during the batch
                release(db, d.worker, [(job.row.enrollment_id, slot)])
                result.rescheduled += 1
                continue
            try:
                envelope, data = build(d, prepared, current)
            except RenderError as exc:  # a broken template: hold, never loop
                log.error("cannot build %s for %s: %s", job.send.slug, job.row.email, exc)
                release(db, d.worker, [(job.row.enrollment_id, now + HOLD)])
                result.items.append(Item(job.row.email, job.send.slug, "held", str(exc)[:200]))
                continue
            except DripError as exc:  # the recipient's own values cannot go in a header
                failure = SendResult(Outcome.rejected, None, f"cannot build the message: {exc}")
                unrecorded.append((prepared, current, failure))
                continue
            except Exception as exc:  # a bug: hold, never loop
                log.exception("cannot build %s for %s", job.send.slug, job.row.email)
                release(db, d.worker, [(job.row.enrollment_id, now + HOLD)])
                result.items.append(Item(job.row.email, job.send.slug, "held", str(exc)[:200]))
                continue
            step.append((prepared, current, (envelope, job.row.email, data)))
            if len(step) == width:
                break
        return step

    def flush() -> None:
        if unrecorded:
            _record(d, db, unrecorded, now, result)
            unrecorded.clear()

    # Whatever happens, what was sent is recorded: an unrecorded send would go out again.
    try:
        step = build_step()
        while step:
            if len(unrecorded) + len(step) > d.window:
                flush()
            d.transport.start([message for _job, _at, message in step])
            on_wire, step = step, []
            try:
                if d.transport.down is None:
                    step = build_step()
                    if not step and claim_ahead is not None and not wave.tripped:
                        claim_ahead(result)  # the batch is all on the wire or recorded
                        claim_ahead = None
                    d.transport.offer([message for _job, _at, message in step])
                    if len(unrecorded) + len(on_wire) + len(step) > d.window:
                        flush()  # while the server works on the step on the wire
            finally:
                for (prepared, at, _message), outcome in zip(
                    on_wire, d.transport.finish(), strict=True
                ):
                    if outcome.outcome is Outcome.unsent:
                        unsent.append(prepared)
                    else:
                        unrecorded.append((prepared, at, wave.judge(outcome)))
            if d.transport.down is not None:
                unsent.extend(prepared for prepared, _at, _message in step)
                unsent.extend(todo)
                break
            if wave.tripped and step:
                # A content or policy block for everyone: what is built waits, unsent.
                later = [prepared for prepared, _at, _message in step]
                release(db, d.worker, [(p.job.row.enrollment_id, now + HOLD) for p in later])
                result.rescheduled += len(later)
                step = build_step()  # releases the rest the same way and returns nothing
    finally:
        flush()
        if unsent:
            # Never sent: they stay due exactly as they were, for the next pass.
            rest = [(p.job.row.enrollment_id, None) for p in unsent]
            release(db, d.worker, rest, keep_due=True)
    if d.transport.down is not None:
        result.stopped = d.transport.down
    return result


def _recipient(job: Job) -> Recipient:
    return Recipient(
        delivery_id=job.delivery.id,
        address=job.row.email,
        name=job.row.name,
        date=job.delivery.created_at,
        message_id=job.delivery.message_id,
    )


def build(d: Dispatcher, prepared: Prepared, at: datetime) -> tuple[str, bytes]:
    """The envelope sender and bytes of a job's e-mail, whatever its kind."""
    job, send = prepared.job, prepared.job.send
    recipient = _recipient(job)
    if send.kind is DeliveryKind.lesson and send.lesson is not None:
        data = d.mail.build(send.course, send.lesson, recipient, send.extras)
        return d.mail.return_path(job.delivery.id, d.mail.envelope_from), data
    if send.kind is DeliveryKind.welcome:
        today = local_date(at, job.cadence.timezone)
        data = d.notes.welcome(
            send.course,
            recipient,
            cohort=job.row.cohort,
            sponsor=job.row.sponsor,
            first_lesson=next_slot(job.cadence, at, today).astimezone(job.cadence.zone),
            timezone=job.cadence.timezone,
            days=days_text(job.cadence.days),
        )
    elif send.kind is DeliveryKind.review and send.lesson is not None:
        data = d.notes.review(send.course, send.lesson, recipient)
    elif send.kind is DeliveryKind.completion and prepared.summary is not None:
        data = d.notes.completion(send.course, recipient, prepared.summary)
    elif send.kind is DeliveryKind.note:
        data = d.notes.note(send.course, recipient, send.extras.catch_up)
    else:
        raise RenderError(f"nothing to build for a {send.kind.value} e-mail ({send.slug})")
    return d.mail.return_path(job.delivery.id, d.notes.envelope_from), data


def _next(job: Job, at: datetime, day: date) -> datetime | None:
    """The next slot after an e-mail went out today (the plan decides then what it carries)."""
    send = job.send
    if send.kind is DeliveryKind.note:
        return None  # paused: the reader resumes
    if send.kind is DeliveryKind.completion and job.row.review is None:
        return None  # completed, nothing left to review
    if send.kind in (DeliveryKind.lesson, DeliveryKind.welcome):
        return next_slot(job.cadence, at, day)
    return next_slot(unstarted(job.cadence), at, day)


def _record(
    d: Dispatcher,
    db: Connection,
    pending: list[tuple[Prepared, datetime, SendResult]],
    now: datetime,
    result: PassResult,
) -> None:
    """Decide each outcome with the retry policy and write them all in one transaction."""
    sent: list[record.Sent] = []
    retried: list[tuple[Job, datetime, str, datetime, datetime]] = []
    failed: list[tuple[Job, datetime, str, str]] = []
    for prepared, at, outcome in pending:
        job = prepared.job
        slug = job.send.slug
        decision = decide(
            outcome,
            lesson=slug,
            attempts=job.delivery.attempts,
            first_try=job.delivery.created_at,
            sent_at=at,
            now=now,
            lifetime=d.retry_lifetime,
            key=job.delivery.id,
        )
        if decision.verdict is Verdict.sent:
            day = local_date(at, job.cadence.timezone)
            sent.append(
                record.Sent(job, at, day, outcome.reply, _next(job, at, day), prepared.autopause)
            )
            result.sent += 1
            result.completed += int(job.send.kind is DeliveryKind.completion)
            result.items.append(Item(job.row.email, slug, "sent", outcome.reply))
        elif decision.verdict is Verdict.retry:
            assert decision.retry_at is not None
            due = next_slot(job.cadence, decision.retry_at, job.row.last_sent_on)
            retried.append((job, at, str(outcome), decision.retry_at, due))
            result.retried += 1
            result.items.append(Item(job.row.email, slug, "retry", str(outcome)))
        else:
            failed.append((job, at, str(outcome), decision.reason))
            result.failed += 1
            result.items.append(Item(job.row.email, slug, "failed", str(outcome)))
            log.warning("%s: %s", job.row.email, decision.reason)
    with db.begin():
        record.record_outcomes(db, d.worker, sent, retried, failed, now)
