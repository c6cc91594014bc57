"""The store step, SQL only: read a claimed batch, open its delivery rows (one per enrollment
and lesson; Message-ID and Date fixed there), record lesson versions, and write outcomes.
Status changes go through drip.lifecycle, in the same transaction as the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from drip import events, lifecycle
from drip.db import insert_ignoring_conflicts
from drip.lifecycle import Change, Transition
from drip.mail.render import Renderer
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import DeliveryStatus, Verdict
from drip.schedule import local_date
from drip.sending.plan import Claimed, DeliveryState, Job, Send

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


def _state(mapping: Any) -> DeliveryState:
    return DeliveryState(
        id=mapping["id"],
        lesson_slug=mapping["lesson_slug"],
        status=mapping["status"],
        attempts=mapping["attempts"],
        message_id=mapping["message_id"],
        created_at=mapping["created_at"],
        next_attempt_at=mapping["next_attempt_at"],
    )


def load_batch(
    conn: sa.Connection, ids: Sequence[int]
) -> tuple[list[Claimed], dict[int, dict[str, DeliveryState]]]:
    """The claimed enrollments, in due order, and each one's deliveries by lesson slug."""
    rows = conn.execute(
        sa.select(
            E.c.id,
            P.c.email,
            P.c.name,
            C.c.course,
            E.c.last_sent_on,
            sa.func.coalesce(P.c.timezone, C.c.timezone),
            C.c.send_time,
            C.c.window_end,
            C.c.send_days,
            C.c.skip_dates,
            C.c.start_date,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id.in_(list(ids)))
        .order_by(E.c.next_due_at, E.c.id)
    ).all()
    claimed = [Claimed(*row) for row in rows]
    existing: dict[int, dict[str, DeliveryState]] = {}
    for mapping in conn.execute(
        sa.select(*DELIVERY_STATE).where(D.c.enrollment_id.in_(list(ids)))
    ).mappings():
        existing.setdefault(mapping["enrollment_id"], {})[mapping["lesson_slug"]] = _state(mapping)
    return claimed, existing


def open_deliveries(
    conn: sa.Connection, sends: Sequence[Send], now: datetime, new_message_id: Any
) -> list[Job]:
    """Create the delivery row of each new send and mark reused ones as sending again."""
    new = [s for s in sends if s.delivery is None]
    if new:
        conn.execute(
            insert_ignoring_conflicts(conn, D),
            [
                {
                    "enrollment_id": s.row.enrollment_id,
                    "lesson_slug": s.lesson.slug,
                    "position": s.course.position(s.lesson.slug),
                    "content_hash": s.lesson.content_hash,
                    "message_id": new_message_id(),
                    "created_at": now,
                    "status": DeliveryStatus.sending.value,
                    "attempts": 1,
                    "last_error": "",
                }
                for s in new
            ],
        )
    created: dict[tuple[int, str], DeliveryState] = {}
    if new:
        for mapping in conn.execute(
            sa.select(*DELIVERY_STATE).where(
                D.c.enrollment_id.in_([s.row.enrollment_id for s in new])
            )
        ).mappings():
            state = _state(mapping)
            # attempts before this one, as for reused rows
            created[(mapping["enrollment_id"], state.lesson_slug)] = DeliveryState(
                **{**state.__dict__, "attempts": 0}
            )
    reused = [s for s in sends if s.delivery is not None]
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
                    "did": s.delivery.id,
                    "hash": s.lesson.content_hash,
                    "pos": s.course.position(s.lesson.slug),
                }
                for s in reused
                if s.delivery is not None
            ],
        )
        # A lesson that failed before and was resumed by hand gets a fresh retry lifetime.
        failed = [
            s.delivery.id
            for s in reused
            if s.delivery is not None and s.delivery.status == DeliveryStatus.failed.value
        ]
        if failed:
            conn.execute(D.update().where(D.c.id.in_(failed)).values(created_at=now, attempts=1))
    jobs = []
    for s in sends:
        if s.delivery is None:
            delivery = created[(s.row.enrollment_id, s.lesson.slug)]
        elif s.delivery.status == DeliveryStatus.failed.value:
            delivery = DeliveryState(**{**s.delivery.__dict__, "created_at": now, "attempts": 0})
        else:
            delivery = s.delivery
        jobs.append(Job(s.row, s.cadence, s.course, s.lesson, s.sent_slugs, delivery))
    return jobs


def record_versions(
    conn: sa.Connection, renderer: Renderer, recorded: set[str], jobs: Sequence[Job]
) -> None:
    """Store each lesson version's links, takeaway and check, so the web app never trusts a URL."""
    rows = []
    for job in jobs:
        lesson = job.lesson
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


def complete(conn: sa.Connection, worker: str, ids: Sequence[int], now: datetime) -> None:
    """Mark enrollments that have every lesson completed, and give their claims back."""
    lifecycle.apply(
        conn,
        Transition.complete,
        [Change(eid, reason="every lesson sent") for eid in ids],
        now=now,
        method="dispatch",
        verdict=Verdict.unknown,
        held_by=worker,
        release_claim=True,
    )


def quarantine(
    conn: sa.Connection, worker: str, held: Sequence[tuple[int, str]], now: datetime
) -> None:
    """Hold enrollments whose own data cannot be used, with the reason, and release them."""
    lifecycle.apply(
        conn,
        Transition.hold,
        [Change(eid, reason=reason) for eid, reason in held],
        now=now,
        method="dispatch",
        verdict=Verdict.unknown,
        held_by=worker,
        release_claim=True,
    )


def record_outcomes(
    conn: sa.Connection,
    worker: str,
    sent: Sequence[tuple[Job, datetime, str, datetime | None, bool]],
    retried: Sequence[tuple[Job, datetime, str, datetime, datetime]],
    failed: Sequence[tuple[Job, datetime, str, str]],
    now: datetime,
) -> None:
    """Write what sending did: deliveries, their events, schedules and status changes.

    sent: (job, sent_at, reply, next slot or None when that was the last lesson, completed)
    retried: (job, sent_at, reply, retry_at, next slot)
    failed: (job, sent_at, reply, reason)"""
    deliveries: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    schedule: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    completed: list[int] = []
    for job, at, reply, due, done in sent:
        deliveries.append(_delivery(job, DeliveryStatus.sent, sent_at=at))
        rows.append(events.sent(job.row.enrollment_id, job.delivery.id, at, reply))
        progress.append(
            {
                "eid": job.row.enrollment_id,
                "sent": len(job.sent_slugs) + 1,
                "last": _local_day(job, at),
            }
        )
        if done:
            completed.append(job.row.enrollment_id)
        else:
            schedule.append({"eid": job.row.enrollment_id, "due": due})
    for job, at, reply, retry_at, due in retried:
        deliveries.append(
            _delivery(job, DeliveryStatus.retry, next_attempt_at=retry_at, error=reply)
        )
        rows.append(events.retry(job.row.enrollment_id, job.delivery.id, at, reply))
        schedule.append({"eid": job.row.enrollment_id, "due": due})
    for job, _at, reply, _reason in failed:
        deliveries.append(_delivery(job, DeliveryStatus.failed, error=reply))
    if deliveries:
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
    events.insert(conn, rows)
    mine = sa.and_(E.c.id == sa.bindparam("eid"), E.c.claimed_by == worker)
    if progress:
        conn.execute(
            E.update()
            .where(mine)
            .values(lessons_sent=sa.bindparam("sent"), last_sent_on=sa.bindparam("last")),
            progress,
        )
    if schedule:
        # The schedule changes only while the person is still active: a pause or an unsubscribe
        # that arrived while the message was on the wire stands.
        conn.execute(
            E.update().where(mine, E.c.status == "active").values(next_due_at=sa.bindparam("due")),
            schedule,
        )
    lifecycle.apply(
        conn,
        Transition.complete,
        [Change(eid, reason="every lesson sent") for eid in completed],
        now=now,
        method="dispatch",
        verdict=Verdict.unknown,
        held_by=worker,
    )
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
    ids = [j.row.enrollment_id for j, *_ in sent] + [j.row.enrollment_id for j, *_ in retried]
    ids += [j.row.enrollment_id for j, *_ in failed]
    if ids:
        conn.execute(
            E.update()
            .where(E.c.id.in_(ids), E.c.claimed_by == worker)
            .values(claimed_until=None, claimed_by=None)
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


def _local_day(job: Job, at: datetime) -> date:
    return local_date(at, job.cadence.timezone)
