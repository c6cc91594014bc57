"""Record opens, clicks, confirmations and answers, each judged human, machine or unknown."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import events
from drip.db import insert_ignoring_conflicts
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import REVIEW as R
from drip.models import EventKind, Verdict
from drip.schedule import local_date
from drip.spacing import Spacing, answered
from drip.tracking.pages import Status, enrollment_state
from drip.tracking.verdict import BURST_SECONDS, LINK_KINDS, Hit, Judgement, counts, judge

log = logging.getLogger("drip.tracking.hits")

IMPLIED = "implied by "


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request that tracking may keep: method, user agent and time."""

    method: str
    user_agent: str
    now: datetime


class Sent(NamedTuple):
    """The delivery facts a hit needs: its enrollment and when it was sent."""

    enrollment_id: int
    sent_at: datetime | None
    settled: bool = True  # False while sent_at is only the row's creation time


class SentCache:
    """A bounded LRU of sent deliveries, for the one thread that records opens; a sent delivery
    never changes, so an open of a cached one skips the query."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: OrderedDict[int, Sent] = OrderedDict()

    def get(self, delivery_id: int) -> Sent | None:
        found = self._items.get(delivery_id)
        if found is not None:
            self._items.move_to_end(delivery_id)
        return found

    def put(self, delivery_id: int, sent: Sent) -> None:
        if not sent.settled:
            return
        self._items[delivery_id] = sent
        if len(self._items) > self.size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class Confirmed:
    """What the "got it" page shows."""

    title: str
    takeaway: str
    status: Status


@dataclass(frozen=True)
class Answered:
    """What the answer page shows: the answer of record, whether it is right, and why."""

    title: str
    question: str
    options: list[str]
    chosen: int
    correct: int
    explanation: str
    repeat: bool
    review: bool = False
    status: Status | None = None


def _seconds(sent_at: datetime | None, now: datetime) -> float | None:
    return None if sent_at is None else round((now - sent_at).total_seconds(), 3)


def _event(
    sent: Sent,
    delivery_id: int,
    kind: EventKind,
    req: Request,
    judgement: Judgement,
    *,
    option: int | None = None,
    correct: bool | None = None,
    link: int | None = None,
) -> dict[str, Any]:
    return events.hit(
        kind,
        sent.enrollment_id,
        delivery_id,
        req.now,
        method=req.method,
        seconds_since_send=_seconds(sent.sent_at, req.now),
        verdict=judgement.verdict,
        reason=judgement.reason,
        option=option,
        correct=correct,
        link=link,
    )


def open_row(
    sent: Sent, delivery_id: int, method: str, user_agent: str, now: datetime
) -> dict[str, Any]:
    """The judged open event row of one hit on the pixel."""
    seconds = _seconds(sent.sent_at, now)
    judgement = judge(Hit("open", method, user_agent, seconds))
    return events.hit(
        EventKind.open,
        sent.enrollment_id,
        delivery_id,
        now,
        method=method,
        seconds_since_send=seconds,
        verdict=judgement.verdict,
        reason=judgement.reason,
    )


def _record_link_hit(
    conn: sa.Connection,
    sent: Sent,
    delivery_id: int,
    kind: EventKind,
    req: Request,
    *,
    option: int | None = None,
    correct: bool | None = None,
    link: int | None = None,
) -> Judgement:
    """Judge and write a click, confirm or answer, its burst partners and its implied open."""
    window = req.now - timedelta(seconds=BURST_SECONDS)
    last_other = conn.execute(
        sa.select(sa.func.max(EV.c.at)).where(
            EV.c.delivery_id == delivery_id,
            EV.c.kind.in_(sorted(LINK_KINDS)),
            EV.c.at >= window,
            sa.not_(events.same_link_hit(kind, option, link)),
        )
    ).scalar()
    other = None if last_other is None else max(0.0, (req.now - last_other).total_seconds())
    hit = Hit(kind, req.method, req.user_agent, _seconds(sent.sent_at, req.now), other)
    judgement = judge(hit)
    events.insert(
        conn,
        [
            _event(
                sent, delivery_id, kind, req, judgement, option=option, correct=correct, link=link
            )
        ],
    )
    if other is not None and judgement.verdict is Verdict.machine:
        # The earlier hits of the burst were the same scanner: take back their human verdicts.
        conn.execute(
            EV.update()
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.at >= window,
                EV.c.verdict == Verdict.human.value,
                sa.or_(EV.c.kind.in_(sorted(LINK_KINDS)), EV.c.reason.startswith(IMPLIED)),
            )
            .values(verdict=Verdict.machine.value, reason=judgement.reason)
        )
    if judgement.verdict is Verdict.human:
        opened = conn.execute(
            sa.select(EV.c.id)
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.kind == EventKind.open.value,
                EV.c.verdict == Verdict.human.value,
            )
            .limit(1)
        ).first()
        if opened is None:
            implied = Judgement(Verdict.human, f"{IMPLIED}{kind}")
            events.insert(conn, [_event(sent, delivery_id, EventKind.open, req, implied)])
    return judgement


def _delivery_and_version(conn: sa.Connection, delivery_id: int, *version: Any) -> Any:
    """A delivery's enrollment and send time with the given columns of its lesson version."""
    return conn.execute(
        sa.select(D.c.enrollment_id, D.c.sent_at, D.c.created_at, *version)
        .select_from(D.outerjoin(LV, LV.c.content_hash == D.c.content_hash))
        .where(D.c.id == delivery_id)
    ).first()


def record_click(engine: Engine, delivery_id: int, index: int, req: Request) -> str | None:
    """Record a click and return the link recorded at send time, or None if there is none."""
    with engine.begin() as conn:
        row = _delivery_and_version(conn, delivery_id, LV.c.links)
        if row is None:
            return None
        links = json.loads(row.links or "[]")
        if not 0 <= index < len(links):
            return None
        url = str(links[index])
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            _record_link_hit(conn, sent, delivery_id, EventKind.click, req, link=index)
        return url


def record_confirm(engine: Engine, delivery_id: int, req: Request) -> Confirmed | None:
    """Record a "got it" and return what the page shows, or None for an unknown delivery."""
    with engine.begin() as conn:
        row = _delivery_and_version(conn, delivery_id, LV.c.title, LV.c.takeaway)
        if row is None:
            return None
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            _record_link_hit(conn, sent, delivery_id, EventKind.confirm, req)
        state = enrollment_state(conn, row.enrollment_id)
        return Confirmed(row.title or "", row.takeaway or "", state)


def record_answer(engine: Engine, delivery_id: int, option: int, req: Request) -> Answered | None:
    """Record an answer to a lesson's check; the first answer a person gives stands, and starts
    the question's spaced review (back soon when wrong, later when right)."""
    return _answer(engine, delivery_id, option, req, EventKind.answer)


def record_review_answer(
    engine: Engine, delivery_id: int, option: int, req: Request
) -> Answered | None:
    """Record an answer to the review question an e-mail carried; the first one stands, and
    moves the question along its review schedule (or retires it)."""
    return _answer(engine, delivery_id, option, req, EventKind.review_answer)


def _answer(
    engine: Engine, delivery_id: int, option: int, req: Request, kind: EventKind
) -> Answered | None:
    review = kind is EventKind.review_answer
    with engine.begin() as conn:
        hash_column = D.c.review_hash if review else D.c.content_hash
        row = conn.execute(
            sa.select(
                D.c.enrollment_id,
                D.c.sent_at,
                D.c.created_at,
                LV.c.slug,
                LV.c.title,
                LV.c.review if review else LV.c.check,
            )
            .select_from(D.join(LV, LV.c.content_hash == hash_column))
            .where(D.c.id == delivery_id)
        ).first()
        check = json.loads(row[5] or "null") if row is not None else None
        if row is None or not check or not 0 <= option < len(check["options"]):
            return None
        first = conn.execute(
            sa.select(EV.c.option)
            .where(
                EV.c.delivery_id == delivery_id,
                EV.c.kind == kind.value,
                EV.c.verdict != Verdict.machine.value,
                EV.c.option.is_not(None),
            )
            .order_by(EV.c.id)
            .limit(1)
        ).scalar()
        chosen = option if first is None else first
        if counts(req.method):
            sent = Sent(row.enrollment_id, row.sent_at or row.created_at)
            right = option == check["answer"]
            judgement = _record_link_hit(
                conn, sent, delivery_id, kind, req, option=option, correct=right
            )
            if first is None and judgement.verdict is not Verdict.machine:
                advance_review(conn, row.enrollment_id, row.slug, right, check, req.now, review)
        state = enrollment_state(conn, row.enrollment_id)
        return Answered(
            title=row.title or "",
            question=check["question"],
            options=list(check["options"]),
            chosen=chosen,
            correct=check["answer"],
            explanation=check.get("explanation") or "",
            repeat=first is not None,
            review=review,
            status=state,
        )


def advance_review(
    conn: sa.Connection,
    enrollment_id: int,
    slug: str,
    right: bool,
    check: dict[str, Any],
    now: datetime,
    review: bool,
) -> None:
    """Move a question along its spaced review after the answer of record."""
    spacing = Spacing(**check.get("spacing", {}))
    zone = conn.execute(
        sa.select(sa.func.coalesce(P.c.timezone, C.c.timezone))
        .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
        .where(E.c.id == enrollment_id)
    ).scalar_one()
    today = local_date(now, zone)
    current = conn.execute(
        sa.select(R.c.streak).where(R.c.enrollment_id == enrollment_id, R.c.lesson_slug == slug)
    ).first()
    if current is None:  # the answer came before the send was recorded
        conn.execute(
            insert_ignoring_conflicts(conn, R).values(
                enrollment_id=enrollment_id, lesson_slug=slug, due_on=today, streak=0,
                rounds=0, retired=False, first_right=None, updated_at=now,
            )
        )  # fmt: skip
    streak = current.streak if current is not None and review else 0
    state = answered(spacing, today, streak, right)
    values: dict[str, Any] = {
        "due_on": state.due_on,
        "streak": state.streak,
        "retired": state.retired,
        "updated_at": now,
    }
    if not review:
        values["first_right"] = right
    conn.execute(
        R.update()
        .where(R.c.enrollment_id == enrollment_id, R.c.lesson_slug == slug)
        .values(**values)
    )
