"""The completion log: events one by one, oldest first, filtered, followed, per person."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.db import session as open_session
from drip.errors import NotFound
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.people.cohorts import get_cohort


@dataclass(frozen=True)
class EventRow:
    """One event of the completion log with who, which cohort and which lesson."""

    id: int
    at: datetime
    cohort: str
    email: str
    kind: str
    position: int | None
    lesson: str
    method: str
    verdict: str
    reason: str
    detail: str


@dataclass(frozen=True)
class LogFilter:
    """Which events of the log to show."""

    cohort: str | None = None
    email: str | None = None
    kinds: tuple[str, ...] = ()
    since: datetime | None = None


def _log_query(f: LogFilter) -> sa.Select[Any]:
    return (
        sa.select(
            EV.c.id,
            EV.c.at,
            C.c.name,
            P.c.email,
            EV.c.kind,
            D.c.position,
            sa.func.coalesce(LV.c.title, D.c.lesson_slug, ""),
            EV.c.method,
            EV.c.verdict,
            EV.c.reason,
            EV.c.detail,
        )
        .select_from(
            EV.join(E, E.c.id == EV.c.enrollment_id)
            .join(P, P.c.id == E.c.person_id)
            .join(C, C.c.id == E.c.cohort_id)
            .outerjoin(D, D.c.id == EV.c.delivery_id)
            .outerjoin(LV, LV.c.content_hash == D.c.content_hash)
        )
        .where(
            C.c.name == f.cohort if f.cohort else sa.true(),
            P.c.email == f.email.strip().lower() if f.email else sa.true(),
            EV.c.kind.in_(f.kinds) if f.kinds else sa.true(),
            EV.c.at >= f.since if f.since else sa.true(),
        )
        .order_by(EV.c.id)
    )


def last_events(engine: Engine, f: LogFilter, count: int) -> list[EventRow]:
    """The `count` most recent matching events, oldest first (read newest-first by id, so the
    database stops after `count` rows instead of reading the whole log)."""
    query = _log_query(f).order_by(None).order_by(EV.c.id.desc()).limit(count)
    with engine.connect() as conn:
        conn.execution_options(drip_read_only=True)
        rows = [EventRow(*row) for row in conn.execute(query)]
    return rows[::-1]


def check_filter(engine: Engine, f: LogFilter) -> None:
    """Raise NotFound when the filter names a cohort or person that does not exist."""
    with open_session(engine) as db:
        if f.cohort:
            get_cohort(db, f.cohort)
        if f.email:
            address = f.email.strip().lower()
            if db.execute(sa.select(P.c.id).where(P.c.email == address)).first() is None:
                raise NotFound(f"no person with e-mail '{address}'; see drip people list")


def log_events(
    engine: Engine, f: LogFilter, after_id: int = 0, limit: int | None = None
) -> list[EventRow]:
    """Events matching the filter, oldest first, with an id above `after_id`."""
    query = _log_query(f).where(EV.c.id > after_id).limit(limit)
    with engine.connect() as conn:
        conn.execution_options(drip_read_only=True)
        return [EventRow(*row) for row in conn.execute(query)]


def follow_events(
    engine: Engine,
    f: LogFilter,
    *,
    after_id: int = 0,
    interval: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[EventRow]:
    """Yield matching events as they are recorded, polling every `interval` seconds."""
    while not should_stop():
        batch = log_events(engine, f, after_id, limit=1000)
        yield from batch
        if batch:
            after_id = batch[-1].id
        if len(batch) < 1000:
            sleep(interval)


def person_timeline(engine: Engine, email: str, cohort_name: str | None = None) -> list[EventRow]:
    """One person's events, oldest first, with lesson titles."""
    f = LogFilter(cohort=cohort_name, email=email)
    check_filter(engine, f)
    return log_events(engine, f)
