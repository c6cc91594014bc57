"""Who sends what: enrollments are claimed under a lease, released by their holder only, and
timed pauses woken; PostgreSQL's SKIP LOCKED or SQLite's write lock keeps claims exclusive."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from drip import lifecycle
from drip.db import transaction
from drip.lifecycle import Change, Transition
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import EnrollmentStatus, Verdict
from drip.schedule import local_date
from drip.states import RECEIVING


def worker_name() -> str:
    """This process's name in claims: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def wake_paused(engine: Engine, now: datetime) -> int:
    """Resume enrolments whose timed pause is over on their own calendar (a `wake` event each);
    the claim then finds their slot."""
    with engine.begin() as conn:
        candidates = conn.execute(
            sa.select(E.c.id, E.c.paused_until, P.c.timezone, C.c.timezone)
            .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
            .where(
                E.c.status == EnrollmentStatus.paused.value,
                E.c.paused_until.is_not(None),
                E.c.paused_until <= now.date() + timedelta(days=1),  # the earliest zones
            )
        ).all()
        ready = []
        for eid, until, zone, cohort_zone in candidates:
            try:
                if local_date(now, zone or cohort_zone) >= until:
                    ready.append(eid)
            except Exception:  # an unreadable zone: wake it, and the claim holds it with the reason
                ready.append(eid)
        changes = [Change(eid, due=now, reason="timed pause ended") for eid in ready]
        applied = lifecycle.apply(
            conn, Transition.wake, changes, now=now, method="schedule", verdict=Verdict.unknown
        )
        return len(applied)


def claim(
    bind: Engine | Connection,
    now: datetime,
    limit: int,
    lease: timedelta,
    worker: str,
    claimed_at: datetime | None = None,
) -> list[int]:
    """Claim up to `limit` enrollments due at `now` under a lease that runs from `claimed_at`
    (the real moment of the claim, later than `now` in a long pass); claimers never share one."""
    claimed_at = claimed_at or now
    due = (
        sa.select(E.c.id)
        .select_from(E.join(C, C.c.id == E.c.cohort_id))
        .where(
            # The statuses are written into the SQL, as ix_enrollment_receiving_due's condition
            # is: the index then gives the due rows in order (with parameters, every due row is
            # read and sorted for each batch).
            E.c.status.in_(
                sa.bindparam("receiving", list(RECEIVING), expanding=True, literal_execute=True)
            ),
            E.c.next_due_at <= now,
            C.c.paused == sa.false(),
            sa.or_(E.c.claimed_until.is_(None), E.c.claimed_until < claimed_at),
        )
        .order_by(E.c.next_due_at)
        .limit(limit)
    )
    if bind.dialect.name == "postgresql":
        due = due.with_for_update(of=E, skip_locked=True)
    statement = (
        E.update()
        .where(E.c.id.in_(due.scalar_subquery()))
        .values(claimed_until=claimed_at + lease, claimed_by=worker)
        .returning(E.c.id)
    )
    with transaction(bind) as conn:
        return list(conn.execute(statement).scalars())


def release(
    bind: Engine | Connection,
    worker: str,
    releases: Sequence[tuple[int, datetime | None]],
    keep_due: bool = False,
) -> None:
    """Give claims back, with a new due time unless keep_due; only claims this worker holds."""
    mine = E.c.claimed_by == worker
    with transaction(bind) as conn:
        if keep_due:
            conn.execute(
                E.update()
                .where(E.c.id.in_([r[0] for r in releases]), mine)
                .values(claimed_until=None, claimed_by=None)
            )
            return
        conn.execute(
            E.update()
            .where(E.c.id == sa.bindparam("eid"), mine)
            .values(next_due_at=sa.bindparam("due"), claimed_until=None, claimed_by=None),
            [{"eid": eid, "due": due} for eid, due in releases],
        )
