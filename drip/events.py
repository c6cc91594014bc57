"""The completion log's rows: one typed constructor per event kind, and the queries that read them.

Writers build rows here and readers filter with the helpers here, so what reports count (an
answer's option and correctness, a link's index, a verdict) are columns both sides agree on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from drip import outgoing
from drip.models import EVENT as EV
from drip.models import EventKind, Verdict

Row = dict[str, Any]

# Kinds a reader causes, as opposed to what the dispatcher records.
LINK_KINDS = (EventKind.click, EventKind.confirm, EventKind.answer)
READER_KINDS = (
    EventKind.open,
    *LINK_KINDS,
    EventKind.pause,
    EventKind.resume,
    EventKind.unsubscribe,
)

# Status changes drip makes on its own schedule; the activity chart leaves them out.
BOOKKEEPING = (
    EventKind.enrol,
    EventKind.complete,
    EventKind.wake,
    EventKind.hold,
    EventKind.move,
    EventKind.change,
)


def row(
    kind: EventKind,
    enrollment_id: int,
    at: datetime,
    *,
    delivery_id: int | None = None,
    method: str = "",
    seconds_since_send: float | None = None,
    verdict: Verdict = Verdict.unknown,
    reason: str = "",
    detail: str = "",
    option: int | None = None,
    correct: bool | None = None,
    link: int | None = None,
) -> Row:
    """One event row with every column set, ready for `EVENT.insert()`."""
    return {
        "enrollment_id": enrollment_id,
        "delivery_id": delivery_id,
        "kind": kind.value,
        "at": at,
        "method": method[:10],
        "seconds_since_send": seconds_since_send,
        "verdict": verdict.value,
        "reason": reason[:1000],
        "detail": detail[:1000],
        "option": option,
        "correct": correct,
        "link": link,
    }


def sent(
    enrollment_id: int,
    delivery_id: int,
    at: datetime,
    reply: str,
    kind: EventKind = EventKind.sent,
) -> Row:
    """A message the relay accepted (or the outbox wrote): a lesson (`sent`), a welcome, a
    review e-mail, the completion (`certificate`) or a note."""
    return row(
        kind,
        enrollment_id,
        at,
        delivery_id=delivery_id,
        method="smtp",
        seconds_since_send=0.0,
        detail=reply,
    )


def retry(enrollment_id: int, delivery_id: int, at: datetime, reply: str) -> Row:
    """A temporary failure that will be tried again."""
    return row(
        EventKind.retry, enrollment_id, at, delivery_id=delivery_id, method="smtp", detail=reply
    )


def hit(
    kind: EventKind,
    enrollment_id: int,
    delivery_id: int,
    at: datetime,
    *,
    method: str,
    seconds_since_send: float | None,
    verdict: Verdict,
    reason: str,
    option: int | None = None,
    correct: bool | None = None,
    link: int | None = None,
) -> Row:
    """An open, click, confirmation or answer that came through the web endpoint."""
    return row(
        kind,
        enrollment_id,
        at,
        delivery_id=delivery_id,
        method=method,
        seconds_since_send=seconds_since_send,
        verdict=verdict,
        reason=reason,
        option=option,
        correct=correct,
        link=link,
    )


def insert(conn: sa.Connection, rows: list[Row]) -> None:
    """Write event rows in one statement, and queue those that leave drip (xAPI, webhooks) in
    the outbox when the connection carries an outbox configuration."""
    if not rows:
        return
    config = outgoing.config_of(conn)
    wanted = config.wanted(rows) if config is not None else []
    if config is None or not wanted:
        conn.execute(EV.insert(), rows)
        return
    ids = (
        conn.execute(EV.insert().returning(EV.c.id, sort_by_parameter_order=True), rows)
        .scalars()
        .all()
    )
    outgoing.add(conn, config, [(ids[i], rows[i]) for i in wanted])


# -- reading -----------------------------------------------------------------------------------


def counted(human_only: bool) -> sa.ColumnElement[bool]:
    """The reader events a report counts: those judged human, or every one (--all)."""
    return EV.c.verdict == Verdict.human.value if human_only else sa.true()


def is_kind(*kinds: EventKind) -> sa.ColumnElement[bool]:
    """Events of any of these kinds."""
    return EV.c.kind.in_([k.value for k in kinds])


def answered_right() -> sa.ColumnElement[bool]:
    """Answers that chose the right option."""
    return sa.and_(EV.c.kind == EventKind.answer.value, EV.c.correct.is_(True))


def same_link_hit(kind: EventKind, option: int | None, link: int | None) -> sa.ColumnElement[bool]:
    """Hits on the same link as this one: the same kind, option and link index."""
    return sa.and_(
        EV.c.kind == kind.value,
        EV.c.option.is_(None) if option is None else EV.c.option == option,
        EV.c.link.is_(None) if link is None else EV.c.link == link,
    )
