"""The report's time series: events by day and how far people have got."""

from __future__ import annotations

import sqlalchemy as sa

from drip.events import BOOKKEEPING, LINK_KINDS, counted
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.reports.model import (
    DayRow,
)


def daily_activity(conn: sa.Connection, cohort_id: int, human_only: bool) -> list[DayRow]:
    """Events of each UTC day: sent, opened, responded, other."""
    day = sa.func.date(EV.c.at)
    group = sa.case(
        (EV.c.kind == "sent", "sent"),
        (EV.c.kind == "open", "opened"),
        (EV.c.kind.in_(["click", "confirm", "answer"]), "responded"),
        else_="other",
    )
    query = (
        sa.select(day.label("day"), group.label("what"), sa.func.count())
        .join(E, E.c.id == EV.c.enrollment_id)
        .where(
            E.c.cohort_id == cohort_id,
            EV.c.kind.not_in([k.value for k in BOOKKEEPING]),
            sa.or_(EV.c.kind.not_in(["open", *(k.value for k in LINK_KINDS)]), counted(human_only)),
        )
        .group_by(day, group)
        .order_by(day)
    )
    days: dict[str, dict[str, int]] = {}
    for when, what, count in conn.execute(query):
        days.setdefault(str(when)[:10], {})[what] = int(count)
    return [
        DayRow(d, v.get("sent", 0), v.get("opened", 0), v.get("responded", 0), v.get("other", 0))
        for d, v in days.items()
    ]


def progress_counts(conn: sa.Connection, cohort_id: int, total: int) -> list[tuple[int, int]]:
    """How many people have received 0, 1, ... N lessons."""
    found: dict[int, int] = {
        int(n): int(k)
        for n, k in conn.execute(
            sa.select(E.c.lessons_sent, sa.func.count())
            .where(E.c.cohort_id == cohort_id)
            .group_by(E.c.lessons_sent)
        )
    }
    top = max([total, *found])
    return [(n, int(found.get(n, 0))) for n in range(top + 1)]
