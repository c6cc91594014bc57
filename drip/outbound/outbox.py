"""The outbox's sender: the loop that delivers queued events to one target (an LRS, a webhook)
once each, with retries, and stops on a refusal; and the status and replay of the queue.
The rows themselves are written with their event by `drip.outgoing`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import OUTBOX as O
from drip.models import PERSON as P
from drip.outgoing import KINDS, READER, OutboxConfig, event_key
from drip.states import EventKind, OutboxStatus, Verdict

if TYPE_CHECKING:  # httpx is loaded by the sender only
    import httpx

LEASE = timedelta(minutes=5)  # a claimed row that its worker never settles becomes due again
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
# The target says the endpoint or the credentials are wrong: no statement can go through, so the
# pass stops and the row waits, rather than every row being marked rejected.
REFUSED = frozenset({401, 403, 404, 405, 407})
RETRIED = frozenset({408, 425, 429})


# -- delivering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One queued event with what a statement or a webhook says about it."""

    outbox_id: int
    key: str
    attempts: int
    event_id: int
    kind: str
    at: datetime
    verdict: str
    option: int | None
    correct: bool | None
    enrollment_id: int
    person_id: int
    email: str
    name: str
    attributes: dict[str, str]
    cohort: str
    course: str
    lesson_slug: str | None
    lesson_title: str | None
    position: int | None


class Target(Protocol):
    """Where queued events go: it builds the request for one item and sends it."""

    name: str
    already: frozenset[int]  # codes that mean "I have it already": delivered

    def send(self, client: httpx.Client, item: Item, now: datetime) -> httpx.Response: ...


@dataclass
class PushResult:
    """What one pass did, and why it stopped early if it did."""

    sent: int = 0
    rejected: int = 0
    skipped: int = 0
    retrying: int = 0
    stopped: str = ""
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.sent} sent, {self.rejected} rejected, {self.skipped} skipped"
        if self.retrying:
            text += f", {self.retrying} to retry"
        if self.stopped:
            text += f"; stopped: {self.stopped}"
        return text


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt: 30 seconds, doubling, capped at one hour."""
    delay: timedelta = FIRST_RETRY * (2 ** max(0, attempts - 1))
    return min(delay, MAX_RETRY)


def reason(response: httpx.Response) -> str:
    """The target's own words for a refusal: its JSON `detail`/`message`, or its text."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = data.get("detail", data.get("message", data.get("error")))
        if isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
            # A validation error list (FastAPI, Ralph): the first message and where it points;
            # the rest are mostly the other shapes a union field could have taken.
            first = detail[0]
            where = ".".join(str(p) for p in first.get("loc", ())[-2:])
            text = f"{where}: {first.get('msg', '')}"
            if len(detail) > 1:
                text += f" (and {len(detail) - 1} more)"
        elif detail is not None:
            text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    label = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{label}: {text}"[:1000] if text else label


def _has_attributes() -> bool:
    return "attributes" in P.c


def _attributes(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v not in (None, "")}


def _claim(conn: sa.Connection, target: str, now: datetime, limit: int) -> list[int]:
    query = (
        sa.select(O.c.id)
        .where(
            O.c.target == target,
            O.c.status == OutboxStatus.pending.value,
            O.c.next_attempt_at <= now,
        )
        .order_by(O.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if ids:
        conn.execute(O.update().where(O.c.id.in_(ids)).values(next_attempt_at=now + LEASE))
    return ids


RV = LV.alias("review_version")


def _items(conn: sa.Connection, ids: list[int]) -> list[Item]:
    columns = [
        O.c.id.label("outbox_id"), O.c.key, O.c.attempts, EV.c.id.label("event_id"), EV.c.kind,
        EV.c.at, EV.c.verdict, EV.c.option, EV.c.correct, EV.c.enrollment_id,
        P.c.id.label("person_id"), P.c.email, P.c.name, C.c.name.label("cohort"), C.c.course,
        D.c.lesson_slug, LV.c.title.label("lesson_title"), D.c.position,
        D.c.review_slug, RV.c.title.label("review_title"),
    ]  # fmt: skip
    if _has_attributes():
        columns.append(P.c.attributes)
    rows = conn.execute(
        sa.select(*columns)
        .select_from(
            O.join(EV, EV.c.id == O.c.event_id)
            .join(E, E.c.id == EV.c.enrollment_id)
            .join(P, P.c.id == E.c.person_id)
            .join(C, C.c.id == E.c.cohort_id)
            .outerjoin(D, D.c.id == EV.c.delivery_id)
            .outerjoin(LV, LV.c.content_hash == D.c.content_hash)
            .outerjoin(RV, RV.c.content_hash == D.c.review_hash)
        )
        .where(O.c.id.in_(ids))
        .order_by(O.c.id)
    ).all()
    return [
        Item(
            outbox_id=r.outbox_id,
            key=r.key,
            attempts=r.attempts,
            event_id=r.event_id,
            kind=r.kind,
            at=r.at,
            verdict=r.verdict,
            option=r.option,
            correct=r.correct,
            enrollment_id=r.enrollment_id,
            person_id=r.person_id,
            email=r.email,
            name=r.name,
            attributes=_attributes(r.attributes) if _has_attributes() else {},
            cohort=r.cohort,
            course=r.course,
            # A review answer is about the lesson the review came from.
            lesson_slug=r.review_slug if r.kind == EventKind.review_answer.value else r.lesson_slug,
            lesson_title=r.review_title
            if r.kind == EventKind.review_answer.value
            else r.lesson_title,
            position=r.position,
        )  # fmt: skip
        for r in rows
    ]


def _machine(item: Item) -> bool:
    """Judged a machine after it was queued (a link scanner's burst), or never a person's read."""
    if item.verdict == Verdict.machine.value:
        return True
    return item.kind in READER and item.verdict != Verdict.human.value


def push(
    engine: Engine,
    target: Target,
    client: httpx.Client,
    now: datetime,
    *,
    batch: int = 200,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PushResult:
    """Deliver the due outbox rows of one target, oldest first, until none is due, one is
    refused or the target is unreachable (then the pass ends and the row waits its backoff)."""
    result = PushResult()
    done = 0
    while not result.stopped and not should_stop():
        size = batch if limit is None else min(batch, limit - done)
        if size <= 0:
            break
        with engine.begin() as conn:
            ids = _claim(conn, target.name, now, size)
            items = _items(conn, ids) if ids else []
        if not items:
            break
        updates: list[dict[str, Any]] = []
        for item in items:
            if result.stopped or should_stop():
                # Not tried: due again right away, not after the lease.
                updates.append(_row(item, OutboxStatus.pending, now, item.attempts, None, ""))
                continue
            updates.append(_deliver(target, client, item, now, result))
        with engine.begin() as conn:
            conn.execute(
                O.update()
                .where(O.c.id == sa.bindparam("b_id"))
                .values(
                    status=sa.bindparam("b_status"),
                    attempts=sa.bindparam("b_attempts"),
                    next_attempt_at=sa.bindparam("b_next"),
                    sent_at=sa.bindparam("b_sent"),
                    code=sa.bindparam("b_code"),
                    last_error=sa.bindparam("b_error"),
                ),
                updates,
            )
        done += len(items)
        if len(items) < size:
            break
    return result


def _row(
    item: Item,
    status: OutboxStatus,
    next_at: datetime,
    attempts: int,
    code: int | None,
    error: str,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "b_id": item.outbox_id,
        "b_status": status.value,
        "b_attempts": attempts,
        "b_next": next_at,
        "b_sent": sent_at,
        "b_code": code,
        "b_error": error[:1000],
    }


def _deliver(
    target: Target, client: httpx.Client, item: Item, now: datetime, result: PushResult
) -> dict[str, Any]:
    """Send one item and decide what its row becomes."""
    import httpx

    if _machine(item):
        result.skipped += 1
        return _row(item, OutboxStatus.skipped, now, item.attempts, None, "judged a machine")
    attempts = item.attempts + 1
    try:
        response = target.send(client, item, now)
    except httpx.TransportError as exc:
        result.retrying += 1
        result.stopped = f"{target.name} unreachable: {exc or type(exc).__name__}"
        return _row(item, OutboxStatus.pending, now + backoff(attempts), attempts, None,
                    result.stopped)  # fmt: skip
    code = response.status_code
    if 200 <= code < 300:
        result.sent += 1
        return _row(item, OutboxStatus.sent, now, attempts, code, "", sent_at=now)
    if code in target.already:
        result.sent += 1
        return _row(item, OutboxStatus.sent, now, attempts, code,
                    f"already there: {reason(response)}", sent_at=now)  # fmt: skip
    why = reason(response)
    if code in REFUSED or code in RETRIED or code >= 500:
        result.retrying += 1
        result.stopped = f"{target.name} answered {why}"
        return _row(item, OutboxStatus.pending, now + backoff(attempts), attempts, code, why)
    result.rejected += 1
    result.errors.append(why)
    return _row(item, OutboxStatus.rejected, now, attempts, code, why)


# -- reading and replaying --------------------------------------------------------------------


@dataclass(frozen=True)
class TargetStatus:
    """The state of one target's queue."""

    target: str
    counts: dict[str, int]
    oldest_pending: datetime | None
    next_attempt: datetime | None
    last_error: str


@dataclass(frozen=True)
class Rejection:
    """An event the target refused, with its reason."""

    target: str
    key: str
    at: datetime
    kind: str
    email: str
    lesson: str
    code: int | None
    reason: str


def status(engine: Engine, targets: Sequence[str]) -> list[TargetStatus]:
    """Counts by status, the oldest waiting event and the last error, per target."""
    found = []
    with engine.connect() as conn:
        for target in targets:
            counts = {s.value: 0 for s in OutboxStatus}
            counts.update(
                conn.execute(
                    sa.select(O.c.status, sa.func.count())
                    .where(O.c.target == target)
                    .group_by(O.c.status)
                ).all()
            )
            pending = sa.and_(O.c.target == target, O.c.status == OutboxStatus.pending.value)
            oldest, next_at = conn.execute(
                sa.select(sa.func.min(EV.c.at), sa.func.min(O.c.next_attempt_at))
                .select_from(O.join(EV, EV.c.id == O.c.event_id))
                .where(pending)
            ).one()
            last = conn.execute(
                sa.select(O.c.last_error)
                .where(pending, O.c.last_error != "")
                .order_by(O.c.next_attempt_at.desc())
                .limit(1)
            ).scalar()
            found.append(TargetStatus(target, counts, oldest, next_at, last or ""))
    return found


def rejections(engine: Engine, targets: Sequence[str], limit: int = 50) -> list[Rejection]:
    """The most recent rejected events with the target's reason."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                O.c.target,
                O.c.key,
                EV.c.at,
                EV.c.kind,
                P.c.email,
                sa.func.coalesce(D.c.lesson_slug, ""),
                O.c.code,
                O.c.last_error,
            )  # fmt: skip
            .select_from(
                O.join(EV, EV.c.id == O.c.event_id)
                .join(E, E.c.id == EV.c.enrollment_id)
                .join(P, P.c.id == E.c.person_id)
                .outerjoin(D, D.c.id == EV.c.delivery_id)
            )
            .where(O.c.target.in_(targets), O.c.status == OutboxStatus.rejected.value)
            .order_by(O.c.id.desc())
            .limit(limit)
        ).all()
    return [Rejection(*row) for row in rows]


def replay(engine: Engine, config: OutboxConfig, since: datetime, now: datetime) -> dict[str, int]:
    """Queue again every event since `since` (sent, rejected or never queued), with the same
    ids, for a new LRS or receiver; returns how many rows each target will send."""
    from drip.db import insert_ignoring_conflicts

    queued: dict[str, int] = {}
    with engine.begin() as conn:
        events = conn.execute(
            sa.select(EV.c.id, EV.c.kind, EV.c.verdict).where(
                EV.c.at >= since, EV.c.kind.in_(sorted(KINDS))
            )
        ).all()
        rows = [{"kind": kind, "verdict": verdict} for _, kind, verdict in events]
        ids = [events[i].id for i in config.wanted(rows)]
        for target in config.targets:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(
                    insert_ignoring_conflicts(conn, O),
                    [
                        {
                            "target": target,
                            "event_id": event_id,
                            "key": event_key(config.namespace, event_id),
                            "status": OutboxStatus.pending.value,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "last_error": "",
                        }  # fmt: skip
                        for event_id in chunk
                    ],
                )
                conn.execute(
                    O.update()
                    .where(
                        O.c.target == target,
                        O.c.event_id.in_(chunk),
                        O.c.status.in_([OutboxStatus.sent.value, OutboxStatus.rejected.value]),
                    )
                    .values(
                        status=OutboxStatus.pending.value,
                        attempts=0,
                        next_attempt_at=now,
                        code=None,
                        last_error="",
                    )  # fmt: skip
                )
            queued[target] = len(ids)
    return queued


def push_all(
    engine: Engine,
    targets: Sequence[Target],
    now: datetime,
    *,
    timeout: float = 10.0,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, PushResult]:
    """One pass over every target with one HTTP client (kept-alive connections)."""
    import httpx

    with httpx.Client(timeout=timeout) as client:
        return {
            t.name: push(engine, t, client, now, limit=limit, should_stop=should_stop)
            for t in targets
        }
