"""What a pass would do, without doing it: the due enrollments read (never claimed) and run
through the pure planner. Nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.load import Catalog
from drip.curriculum.model import Course
from drip.errors import DripError
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import EnrollmentStatus
from drip.sending import store
from drip.sending.plan import Autopause, Complete, Finish, Hold, Quarantine, Send, plan


@dataclass(frozen=True)
class Planned:
    """One enrollment's part in the pass that would run at `now`."""

    email: str
    course: str
    outcome: str  # "send lesson" (or welcome, review, note...), "complete" or "held"
    lesson: str = ""
    position: int | None = None
    detail: str = ""


def preview(engine: Engine, catalog: Catalog, now: datetime, limit: int = 100_000) -> list[Planned]:
    """What `send-due` would send (and complete or hold) at `now`, in due order."""
    due = (
        sa.select(E.c.id)
        .select_from(E.join(C, C.c.id == E.c.cohort_id))
        .where(
            E.c.status == EnrollmentStatus.active.value,
            E.c.next_due_at <= now,
            C.c.paused == sa.false(),
        )
        .order_by(E.c.next_due_at, E.c.id)
        .limit(limit)
    )
    courses: dict[str, Course | DripError] = {}
    found: list[Planned] = []
    with engine.connect() as conn:
        conn.execution_options(drip_read_only=True)
        ids = list(conn.execute(due).scalars())
        for start in range(0, len(ids), 500):
            rows, existing = store.load_batch(conn, ids[start : start + 500])
            for row in rows:
                if row.course not in courses:
                    try:
                        courses[row.course] = catalog.get(row.course)
                    except DripError as exc:
                        courses[row.course] = exc
                action = plan(row, courses[row.course], existing.get(row.enrollment_id, {}), now)
                if isinstance(action, Autopause):
                    action = action.send
                match action:
                    case Send(kind=kind, slug=slug, lesson=lesson, course=course, extras=extras):
                        title = lesson.title if lesson else kind.value
                        place = (
                            (extras.position or course.position(lesson.slug)) if lesson else None
                        )
                        found.append(
                            Planned(row.email, row.course, f"send {kind.value}", slug, place, title)
                        )
                    case Complete() | Finish():
                        found.append(Planned(row.email, row.course, "complete"))
                    case Hold(reason=reason) | Quarantine(reason=reason):
                        found.append(Planned(row.email, row.course, "held", detail=reason))
    return found
