"""The report's time series: events by day and how far people have got."""

from __future__ import annotations

import sqlalchemy as sa

from drip.models import DAY_TALLY as DT
from drip.models import ENROLLMENT as E
from drip.reports.model import (
    DayRow,
)


def daily_activity(conn: sa.Connection, cohort_id: int, human_only: bool) -> list[DayRow]:
    """Events of each UTC day: sent, opened, responded, other (from the day tallies; opens and
    link hits count only when judged a person's, unless `human_only` is off)."""
    count = DT.c.count_h if human_only else DT.c.count_a
    days: dict[str, dict[str, int]] = {}
    for day, what, n in conn.execute(
        sa.select(DT.c.day, DT.c.what, count).where(DT.c.cohort_id == cohort_id).order_by(DT.c.day)
    ):
        days.setdefault(day, {})[what] = int(n)
    return [
        DayRow(d, v.get("sent", 0), v.get("opened", 0), v.get("responded", 0), v.get("other", 0))
        for d, v in days.items()
        if any(v.values())
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
