"""The record step, SQL only: what sending did, written per flush in one statement per table, with the reviews a message starts or carries and the status changes it brings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from drip import events, lifecycle
from drip.db import executemany, row_insert_ignoring_conflicts
from drip.lifecycle import Change, Transition
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import REVIEW as R
from drip.sending.plan import Job
from drip.spacing import unanswered as spacing_unanswered
from drip.states import (
    RECEIVING,
    DeliveryKind,
    DeliveryStatus,
    EventKind,
    Verdict,
)


@dataclass(frozen=True)
class Sent:
    """A message the relay accepted: when, on which local day, and the next slot after it."""

    job: Job
    at: datetime
    day: date
    reply: str
    due: datetime | None  # None: nothing more for now (the last lesson's completion follows)
    autopause: str = ""  # the reason, for the note of an automatic pause


SENT_EVENT = {
    DeliveryKind.lesson: EventKind.sent,
    DeliveryKind.welcome: EventKind.welcome,
    DeliveryKind.review: EventKind.review,
    DeliveryKind.completion: EventKind.certificate,
    DeliveryKind.note: EventKind.note,
}


# Built once: a flush runs these with one parameter set per message. In the common case a flush
# is three statements, one per table (deliveries, events, enrollments); completions, automatic
# pauses and bounces add their lifecycle change.
_DELIVERY_OUTCOME = (
    D.update()
    .where(D.c.id == sa.bindparam("did"))
    .values(
        status=sa.bindparam("status"),
        sent_at=sa.bindparam("sent_at"),
        next_attempt_at=sa.bindparam("next_attempt_at"),
        last_error=sa.bindparam("last_error"),
    )
)


_EVENT_ROWS = EV.insert().values({c.name: sa.bindparam(c.name) for c in EV.c if c.name != "id"})


_MINE = sa.and_(E.c.id == sa.bindparam("eid"), E.c.claimed_by == sa.bindparam("worker"))


# The schedule changes only while the person is still receiving: a pause or an unsubscribe that
# arrived while the message was on the wire stands. (Not IN: an expanding IN cannot executemany.)
_RECEIVING = sa.or_(*(E.c.status == status for status in RECEIVING))


# Progress (when sent), the next due time and the claim handed back, in one UPDATE.
_ENROLLMENT_OUTCOME = (
    E.update()
    .where(_MINE)
    .values(
        lessons_sent=sa.func.coalesce(sa.bindparam("sent", type_=sa.Integer), E.c.lessons_sent),
        last_sent_on=sa.func.coalesce(sa.bindparam("last", type_=sa.Date), E.c.last_sent_on),
        next_due_at=sa.case(
            (_RECEIVING, sa.bindparam("due", type_=E.c.next_due_at.type)), else_=E.c.next_due_at
        ),
        claimed_until=None,
        claimed_by=None,
    )
)


_PROGRESS = (
    E.update()
    .where(_MINE)
    .values(lessons_sent=sa.bindparam("sent"), last_sent_on=sa.bindparam("last"))
)


_SCHEDULE = E.update().where(_MINE, _RECEIVING).values(next_due_at=sa.bindparam("due"))


_RELEASE = E.update().where(_MINE).values(claimed_until=None, claimed_by=None)


def record_outcomes(
    conn: sa.Connection,
    worker: str,
    sent: Sequence[Sent],
    retried: Sequence[tuple[Job, datetime, str, datetime, datetime]],
    failed: Sequence[tuple[Job, datetime, str, str]],
    now: datetime,
) -> None:
    """Write what sending did: deliveries, their events, schedules, reviews and status changes.

    retried: (job, sent_at, reply, retry_at, next slot); failed: (job, sent_at, reply, reason)"""
    deliveries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []  # progress, schedule and release in one statement
    changing: list[dict[str, Any]] = []  # a lifecycle change comes between progress and schedule
    completed: list[Change] = []
    paused: list[Change] = []
    for item in sent:
        job, send = item.job, item.job.send
        eid, did = send.row.enrollment_id, job.delivery.id
        deliveries.append(_delivery(job, DeliveryStatus.sent, sent_at=item.at))
        rows.append(events.sent(eid, did, item.at, item.reply, SENT_EVENT[send.kind]))
        lessons = len(send.sent_slugs) + (send.kind is DeliveryKind.lesson)
        enrollment = {"eid": eid, "worker": worker, "sent": lessons, "last": item.day,
                      "due": item.due}  # fmt: skip
        if send.kind is DeliveryKind.completion:
            completed.append(Change(eid, reason="course completed; certificate sent"))
            changing.append(enrollment)
        elif send.kind is DeliveryKind.note and item.autopause:
            paused.append(Change(eid, reason=item.autopause, delivery_id=did))
            changing.append(enrollment)
        else:
            plain.append(enrollment)
        if send.extras.review is not None and send.kind is DeliveryKind.lesson:
            rows.append(events.row(EventKind.review, eid, item.at, delivery_id=did,
                                   method="smtp", detail=send.extras.review.slug))  # fmt: skip
    for job, at, reply, retry_at, due in retried:
        deliveries.append(
            _delivery(job, DeliveryStatus.retry, next_attempt_at=retry_at, error=reply)
        )
        rows.append(events.retry(job.row.enrollment_id, job.delivery.id, at, reply))
        plain.append({"eid": job.row.enrollment_id, "worker": worker, "sent": None,
                      "last": None, "due": due})  # fmt: skip
    for job, _at, reply, _reason in failed:
        deliveries.append(_delivery(job, DeliveryStatus.failed, error=reply))
    executemany(conn, _DELIVERY_OUTCOME, deliveries)
    executemany(conn, _EVENT_ROWS, rows)
    _record_reviews(conn, sent)
    executemany(conn, _ENROLLMENT_OUTCOME, plain)
    if changing:
        conn.execute(_PROGRESS, changing)
        lifecycle.apply(conn, Transition.complete, completed, now=now, method="dispatch",
                        verdict=Verdict.unknown, held_by=worker)  # fmt: skip
        lifecycle.apply(conn, Transition.autopause, paused, now=now, method="dispatch",
                        verdict=Verdict.unknown, held_by=worker)  # fmt: skip
        conn.execute(_SCHEDULE, changing)
    if failed:
        lifecycle.apply(
            conn,
            Transition.bounce,
            [
                Change(job.row.enrollment_id, reason=reason, delivery_id=job.delivery.id)
                for job, _at, _reply, reason in failed
            ],
            now=now,
            method="smtp",
            verdict=Verdict.unknown,
            held_by=worker,
        )
    finished = [c["eid"] for c in changing] + [job.row.enrollment_id for job, *_ in failed]
    if finished:
        conn.execute(_RELEASE, [{"eid": eid, "worker": worker} for eid in finished])


def _record_reviews(conn: sa.Connection, sent: Sequence[Sent]) -> None:
    """A lesson with a check starts its spaced review (back in `wrong_days` unless answered);
    a review that went out comes back again unless it is answered."""
    new, carried = [], []
    for item in sent:
        send = item.job.send
        spacing = send.course.spacing
        eid = send.row.enrollment_id
        if send.kind is DeliveryKind.lesson and send.lesson is not None and send.lesson.check:
            state = spacing_unanswered(spacing, item.day)
            new.append({"enrollment_id": eid, "lesson_slug": send.lesson.slug,
                        "due_on": state.due_on, "streak": 0, "rounds": 0, "retired": False,
                        "first_right": None, "updated_at": item.at})  # fmt: skip
        review = send.extras.review or (send.lesson if send.kind is DeliveryKind.review else None)
        if review is not None:
            rounds = send.row.review.rounds + 1 if send.row.review else 1
            state = spacing_unanswered(spacing, item.day, rounds)
            carried.append({"eid": eid, "slug": review.slug, "due": state.due_on,
                            "rounds": rounds, "retired": state.retired, "at": item.at})  # fmt: skip
    executemany(conn, row_insert_ignoring_conflicts(conn, R), new)
    executemany(conn, _CARRY_REVIEW, carried)


_CARRY_REVIEW = (
    R.update()
    .where(R.c.enrollment_id == sa.bindparam("eid"), R.c.lesson_slug == sa.bindparam("slug"))
    .values(
        due_on=sa.bindparam("due"),
        rounds=sa.bindparam("rounds"),
        # The streak stands until an answer comes: a right one adds to it, a wrong one
        # (tracking.hits.advance_review) starts it again.
        retired=sa.bindparam("retired"),
        updated_at=sa.bindparam("at"),
    )
)


def _delivery(
    job: Job,
    status: DeliveryStatus,
    *,
    sent_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
    error: str = "",
) -> dict[str, Any]:
    return {
        "did": job.delivery.id,
        "status": status.value,
        "sent_at": sent_at,
        "next_attempt_at": next_attempt_at,
        "last_error": error[:1000],
    }
