"""The store step, SQL only: read a claimed batch, open its delivery rows (one per enrollment
and lesson; Message-ID and Date fixed there), record lesson versions, and write outcomes.
Status changes go through drip.lifecycle, in the same transaction as the rest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from drip import lifecycle
from drip.curriculum.model import Check, Course, Lesson
from drip.db import (
    executemany,
    in_ids,
    insert_ignoring_conflicts,
    row_insert_ignoring_conflicts,
)
from drip.lifecycle import Change, Transition
from drip.mail.notes import LessonResult, Summary
from drip.mail.render import Renderer
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import REVIEW as R
from drip.schedule import local_date
from drip.sending.plan import Claimed, DeliveryState, DueReview, Job, Send
from drip.spacing import Spacing
from drip.states import DeliveryKind, DeliveryStatus, EventKind, Verdict

DELIVERY_STATE = (
    D.c.id,
    D.c.enrollment_id,
    D.c.lesson_slug,
    D.c.status,
    D.c.attempts,
    D.c.message_id,
    D.c.created_at,
    D.c.next_attempt_at,
    D.c.kind,
)
RESTARTS = (EventKind.resume.value, EventKind.resubscribe.value, EventKind.wake.value)


def _state(mapping: Any, attempts: int | None = None) -> DeliveryState:
    return DeliveryState(
        id=mapping["id"],
        lesson_slug=mapping["lesson_slug"],
        status=mapping["status"],
        attempts=mapping["attempts"] if attempts is None else attempts,
        message_id=mapping["message_id"],
        created_at=mapping["created_at"],
        next_attempt_at=mapping["next_attempt_at"],
        kind=mapping["kind"],
    )


def load_batch(
    conn: sa.Connection, ids: Sequence[int]
) -> tuple[list[Claimed], dict[int, dict[str, DeliveryState]]]:
    """The claimed enrollments, in due order, with what their next e-mail depends on, and each
    one's deliveries by slug."""
    ids = list(ids)
    rows = conn.execute(
        sa.select(
            E.c.id,
            P.c.email,
            P.c.name,
            C.c.course,
            E.c.last_sent_on,
            sa.func.coalesce(P.c.timezone, C.c.timezone),
            sa.case((E.c.send_time != "", E.c.send_time), else_=C.c.send_time),
            C.c.window_end,
            sa.case((E.c.send_days != "", E.c.send_days), else_=C.c.send_days),
            C.c.skip_dates,
            C.c.start_date,
            E.c.status,
            C.c.welcome,
            C.c.name,
            C.c.sponsor,
            # As text: most have skipped nothing ("[]"), and decoding that costs more than the rest.
            sa.cast(E.c.skipped, sa.Text),
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(in_ids(conn, E.c.id, ids))
        .order_by(E.c.next_due_at, E.c.id)
    ).all()
    existing: dict[int, dict[str, DeliveryState]] = {}
    for mapping in conn.execute(
        sa.select(*DELIVERY_STATE).where(in_ids(conn, D.c.enrollment_id, ids))
    ).mappings():
        existing.setdefault(mapping["enrollment_id"], {})[mapping["lesson_slug"]] = _state(mapping)
    unopened = _unopened(conn, ids)
    reviews: dict[int, DueReview] = {}
    for eid, slug, due_on, rounds in conn.execute(
        sa.select(R.c.enrollment_id, R.c.lesson_slug, R.c.due_on, R.c.rounds)
        .where(in_ids(conn, R.c.enrollment_id, ids), R.c.retired.is_(False))
        .order_by(R.c.due_on, R.c.id)
    ):
        reviews.setdefault(eid, DueReview(slug, due_on, rounds))
    autopauses: dict[int, int] = dict(
        conn.execute(
            sa.select(EV.c.enrollment_id, sa.func.count())
            .where(in_ids(conn, EV.c.enrollment_id, ids), EV.c.kind == EventKind.autopause.value)
            .group_by(EV.c.enrollment_id)
        ).all()
    )
    claimed = [
        Claimed(
            enrollment_id=row[0],
            email=row[1],
            name=row[2],
            course=row[3],
            last_sent_on=row[4],
            timezone=row[5],
            send_time=row[6],
            window_end=row[7],
            send_days=row[8],
            skip_dates=row[9],
            start_date=row[10],
            status=row[11],
            welcome=bool(row[12]),
            unopened=unopened.get(row[0], 0),
            review=reviews.get(row[0]),
            autopauses=int(autopauses.get(row[0], 0)),
            cohort=row[13],
            sponsor=row[14],
            skipped=frozenset(json.loads(row[15])) if row[15] != "[]" else frozenset(),
        )
        for row in rows
    ]
    return claimed, existing


def _unopened(conn: sa.Connection, ids: list[int]) -> dict[int, int]:
    """Per enrollment, the lessons in a row, most recent first, that no person opened since the
    last time the enrollment (re)started."""
    restart = (
        sa.select(sa.func.max(EV.c.at))
        .where(EV.c.enrollment_id == D.c.enrollment_id, EV.c.kind.in_(RESTARTS))
        .scalar_subquery()
    )
    opened = (
        sa.select(EV.c.id)
        .where(
            EV.c.delivery_id == D.c.id,
            EV.c.kind == EventKind.open.value,
            EV.c.verdict == Verdict.human.value,
        )
        .exists()
    )
    rows = conn.execute(
        sa.select(D.c.enrollment_id, opened, D.c.sent_at, restart)
        .where(
            in_ids(conn, D.c.enrollment_id, ids),
            D.c.kind == DeliveryKind.lesson.value,
            D.c.status == DeliveryStatus.sent.value,
        )
        .order_by(D.c.enrollment_id, D.c.sent_at.desc())
    ).all()
    streaks: dict[int, int] = {}
    stopped: set[int] = set()
    for eid, was_opened, sent_at, restarted in rows:
        if eid in stopped:
            continue
        if was_opened or (restarted is not None and sent_at is not None and sent_at <= restarted):
            stopped.add(eid)
            continue
        streaks[eid] = streaks.get(eid, 0) + 1
    return streaks


def open_deliveries(
    conn: sa.Connection, sends: Sequence[Send], now: datetime, new_message_id: Any
) -> list[Job]:
    """Create the delivery row of each new send and mark reused ones as sending again; each
    row records the lesson version and the review version its message carries."""
    new = [s for s in sends if s.delivery is None]
    if new:
        executemany(
            conn,
            row_insert_ignoring_conflicts(conn, D),
            [
                {
                    "enrollment_id": s.row.enrollment_id,
                    "lesson_slug": s.slug,
                    "kind": s.kind.value,
                    "position": s.course.position(s.lesson.slug) if s.lesson else 0,
                    "content_hash": _content_hash(s),
                    **_review_columns(s, "review_slug", "review_hash"),
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
        # The rows just opened, through the unique (enrollment, slug) index: not every earlier
        # delivery of these people (twenty a person by the last lesson).
        slugs = sorted({s.slug for s in new})
        for mapping in conn.execute(
            sa.select(*DELIVERY_STATE).where(
                in_ids(conn, D.c.enrollment_id, [s.row.enrollment_id for s in new]),
                D.c.lesson_slug.in_(slugs),
            )
        ).mappings():
            # attempts before this one, as for reused rows
            created[(mapping["enrollment_id"], mapping["lesson_slug"])] = _state(mapping, 0)
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
                review_slug=sa.bindparam("rslug"),
                review_hash=sa.bindparam("rhash"),
            ),
            [
                {
                    "did": s.delivery.id,
                    "hash": _content_hash(s),
                    "pos": s.course.position(s.lesson.slug) if s.lesson else 0,
                    **_review_columns(s, "rslug", "rhash"),
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
            delivery = created[(s.row.enrollment_id, s.slug)]
        elif s.delivery.status == DeliveryStatus.failed.value:
            delivery = replace(s.delivery, created_at=now, attempts=0)
        else:
            delivery = s.delivery
        jobs.append(Job(s, delivery))
    return jobs


def _reviewed(send: Send) -> Lesson | None:
    """The lesson whose review question this e-mail carries, if any."""
    if send.kind is DeliveryKind.review:
        return send.lesson
    return send.extras.review


def _review_columns(send: Send, slug: str, content_hash: str) -> dict[str, str | None]:
    lesson = _reviewed(send)
    return {
        slug: lesson.slug if lesson else None,
        content_hash: lesson.content_hash if lesson else None,
    }


def _content_hash(send: Send) -> str:
    if send.lesson is not None:
        return send.lesson.content_hash
    return send.course.lessons[-1].content_hash if send.course.lessons else ""


def _check_json(check: Check | None, spacing: Spacing) -> str:
    if check is None:
        return json.dumps(None)
    return json.dumps(
        {
            "question": check.question,
            "options": list(check.options),
            "answer": check.answer,
            "explanation": check.explanation,
            "spacing": spacing.as_dict(),
        }
    )


def record_versions(
    conn: sa.Connection, renderer: Renderer, recorded: set[str], jobs: Sequence[Job]
) -> None:
    """Store each lesson version's links, takeaway, check and review wording, so the web app
    never trusts a URL and judges answers against what the message carried."""
    rows = []
    for job in jobs:
        course = job.send.course
        for lesson in (job.send.lesson, _reviewed(job.send)):
            if lesson is None or lesson.content_hash in recorded:
                continue
            links = (
                renderer.render(course, lesson, job.send.extras).links
                if job.send.lesson is lesson
                else ()
            )
            check = lesson.check
            rows.append(
                {
                    "content_hash": lesson.content_hash,
                    "course": course.slug,
                    "slug": lesson.slug,
                    "title": lesson.title,
                    "links": json.dumps(list(links)),
                    "takeaway": lesson.takeaway,
                    "check": _check_json(check, course.spacing),
                    "review": _check_json(
                        (check.review or check) if check else None, course.spacing
                    ),
                }
            )
            if links or job.send.lesson is lesson:
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


def finish(conn: sa.Connection, worker: str, ids: Sequence[int]) -> None:
    """Completed people with no review left: nothing more is due."""
    if ids:
        conn.execute(
            E.update()
            .where(E.c.id.in_(list(ids)), E.c.claimed_by == worker)
            .values(next_due_at=None, claimed_until=None, claimed_by=None)
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


def summary(
    conn: sa.Connection, eid: int, course: Course, cohort: str, zone: str, now: datetime
) -> Summary:
    """One person's course in figures, for the completion e-mail and the certificate."""
    first = conn.execute(
        sa.select(sa.func.min(D.c.sent_at)).where(
            D.c.enrollment_id == eid, D.c.status == DeliveryStatus.sent.value
        )
    ).scalar()
    confirmed = conn.execute(
        sa.select(sa.func.count(sa.distinct(EV.c.delivery_id))).where(
            EV.c.enrollment_id == eid,
            EV.c.kind == EventKind.confirm.value,
            EV.c.verdict != Verdict.machine.value,
        )
    ).scalar_one()
    reviews = {
        slug: (first_right, retired)
        for slug, first_right, retired in conn.execute(
            sa.select(R.c.lesson_slug, R.c.first_right, R.c.retired).where(R.c.enrollment_id == eid)
        )
    }
    lessons = []
    still_open = []
    for lesson in course.lessons:
        right, retired = reviews.get(lesson.slug, (None, True))
        if lesson.check is None:
            result = "no check"
        else:
            result = {True: "right", False: "wrong", None: "not answered"}[right]
            if not retired:
                still_open.append((lesson.check.review or lesson.check).question)
        lessons.append(LessonResult(lesson.title, lesson.takeaway, result))
    return Summary(
        cohort=cohort,
        started=local_date(first or now, zone),
        finished=local_date(now, zone),
        confirmed=int(confirmed),
        lessons=lessons,
        open_reviews=still_open,
    )
