"""A cohort's report from the tallies: summary, lesson funnel, people, activity, retention."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.load import load_course
from drip.curriculum.model import Course
from drip.db import session as open_session
from drip.errors import DripError
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import ENROLLMENT_TALLY as ET
from drip.models import LESSON_TALLY as LT
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import Cohort, EnrollmentStatus
from drip.people.cohorts import get_cohort
from drip.reports.activity import daily_activity, progress_counts
from drip.reports.model import CohortReport, LessonRow, PersonRow, Summary
from drip.reports.recount import BEHIND_AFTER
from drip.reports.retention import retention
from drip.reports.tally import fold

__all__ = ["BEHIND_AFTER", "cohort_report", "cohort_summaries"]

STATUSES = tuple(s.value for s in EnrollmentStatus)
READING = ("active", "paused", "completed")


def _course(lessons_root: Path, cohort: Cohort, notes: list[str]) -> Course | None:
    try:
        return load_course(lessons_root, cohort.course)
    except DripError as exc:
        notes.append(
            f"course '{cohort.course}' cannot be loaded ({str(exc).splitlines()[0]});"
            " lesson titles and course length come from what was sent"
        )
        return None


ALL_PARTS = frozenset({"lessons", "people", "activity", "progress"})
# "behind" instead of "people": only the people behind (the terminal's default list).


def cohort_report(
    engine: Engine,
    cohort_name: str,
    lessons_root: Path,
    now: datetime,
    *,
    human_only: bool = True,
    parts: frozenset[str] = ALL_PARTS,
    people_limit: int | None = None,
) -> CohortReport:
    """The report of one cohort: the summary, and of lesson funnel, people, activity and
    progress the `parts` asked for (the terminal table needs no activity chart); with
    `people_limit`, only the first people by e-mail (and everyone behind, apart).

    The figures come from the tallies (reports.tally), brought up to date with the event log
    first, so they are exact and cost one row per person and per lesson."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    assert cohort.id is not None
    notes: list[str] = []
    course = _course(lessons_root, cohort, notes)
    fold(engine)
    mode = "h" if human_only else "a"
    with engine.connect() as conn:
        # Report queries only read; the option lets db.py start them without a write lock.
        conn.execution_options(drip_read_only=True)
        lessons = (
            _lessons(conn, cohort.id, course, mode) if "lessons" in parts or course is None else []
        )
        total = len(course.lessons) if course else max((x.position for x in lessons), default=0)
        only_behind = "people" not in parts
        people = (
            _people(conn, cohort.id, total, mode, only_behind, people_limit)
            if parts & {"people", "behind"}
            else []
        )
        # The first page of people is not everyone behind: those are read on their own.
        behind = (
            _people(conn, cohort.id, total, mode, only_behind=True)
            if people_limit is not None and {"people", "behind"} <= parts
            else None
        )
        summary = _summary(conn, cohort, course, total, mode)
        activity = daily_activity(conn, cohort.id, human_only) if "activity" in parts else []
        progress = progress_counts(conn, cohort.id, total) if "progress" in parts else []
        kept, reviewed = (
            retention(conn, cohort.id, _first_tries(conn, cohort.id))
            if "activity" in parts
            else ([], [])
        )
    return CohortReport(
        summary, lessons, people, activity, progress, human_only, now, notes, kept, reviewed, behind
    )


def _summary(
    conn: sa.Connection, cohort: Cohort, course: Course | None, total: int, mode: str
) -> Summary:
    statuses: dict[str, int] = {
        status: int(n)
        for status, n in conn.execute(
            sa.select(E.c.status, sa.func.count())
            .where(E.c.cohort_id == cohort.id)
            .group_by(E.c.status)
        )
    }
    capped = sa.case((E.c.lessons_sent > total, total), else_=E.c.lessons_sent)
    reading = E.c.status.in_(READING)
    row = conn.execute(
        sa.select(
            *(
                sa.func.coalesce(sa.func.sum(ET.c[name]), 0)
                for name in (
                    "sent",
                    "opened_h",
                    "opened_a",
                    f"confirmed_{mode}",
                    "answered",
                    "right",
                    "questions",
                )
            ),  # fmt: skip
            sa.func.avg(sa.cast(capped, sa.Float)),
            sa.func.count().filter(reading, ET.c[f"behind_{mode}"].is_(True)),
            sa.func.count().filter(reading),
        )
        .select_from(E.outerjoin(ET, ET.c.enrollment_id == E.c.id))
        .where(E.c.cohort_id == cohort.id)
    ).one()
    sent, human, anyone, confirmed, answered, right, questions = (int(x) for x in row[:7])
    progress, late, reading_count = row[7:]
    return Summary(
        cohort=cohort.name,
        course=cohort.course,
        course_title=course.title if course else cohort.course,
        course_lessons=total,
        enrolled=sum(statuses.values()),
        **{status: int(statuses.get(status, 0)) for status in STATUSES},
        lessons_sent=sent,
        opened_human=human,
        opened_all=anyone,
        open_rate_human=human / sent if sent else 0.0,
        open_rate_all=anyone / sent if sent else 0.0,
        confirmed=confirmed,
        answered=answered,
        answered_right=right,
        average_progress=float(progress or 0) / total if total else 0.0,
        on_track=int(reading_count) - int(late),
        behind=int(late),
        unreachable=int(statuses.get(EnrollmentStatus.bounced.value, 0)),
        questions=questions,
    )


def _lessons(
    conn: sa.Connection, cohort_id: int, course: Course | None, mode: str
) -> list[LessonRow]:
    columns = ("opened_h", "opened_a", f"confirmed_{mode}", "answered", "right")
    rows = conn.execute(
        sa.select(
            LT.c.slug, LT.c.position, LT.c.sent, *(LT.c[c] for c in columns), LT.c.unsubscribed
        ).where(LT.c.cohort_id == cohort_id)
    ).all()
    unsubscribed = {r[0]: int(r[-1]) for r in rows}
    found = {r[0]: r[:-1] for r in rows if r[2]}
    titles: dict[str, str] = {
        str(slug): str(title)
        for slug, title in conn.execute(
            sa.select(LV.c.slug, sa.func.max(LV.c.title))
            .where(LV.c.slug.in_(list(found)))
            .group_by(LV.c.slug)
        )
    }
    order = [(x.slug, i, x.title) for i, x in enumerate(course.lessons, 1)] if course else []
    known = {slug for slug, _, _ in order}
    order += sorted(
        ((s, r[1], titles.get(s, s)) for s, r in found.items() if s not in known),
        key=lambda x: x[1],
    )
    result = []
    for slug, position, title in order:
        r = found.get(slug)
        sent, human, anyone, confirmed, answered, right = (
            (int(x or 0) for x in r[2:]) if r else (0, 0, 0, 0, 0, 0)
        )
        result.append(
            LessonRow(position, slug, title, sent, human, anyone, confirmed, answered, right,
                      int(unsubscribed.get(slug, 0)))
        )  # fmt: skip
    return result


def _first_tries(conn: sa.Connection, cohort_id: int) -> dict[str, tuple[int, int]]:
    """Per lesson, the checks answered and answered right at the first try."""
    return {
        slug: (int(answered), int(right))
        for slug, answered, right in conn.execute(
            sa.select(LT.c.slug, LT.c.answered, LT.c.right).where(LT.c.cohort_id == cohort_id)
        )
    }


def _people(
    conn: sa.Connection,
    cohort_id: int,
    total: int,
    mode: str,
    only_behind: bool = False,
    limit: int | None = None,
) -> list[PersonRow]:
    behind = ET.c[f"behind_{mode}"]
    query = (
        sa.select(
            P.c.email,
            P.c.name,
            E.c.status,
            E.c.status_reason,
            E.c.lessons_sent,
            ET.c[f"last_at_{mode}"],
            sa.func.coalesce(ET.c[f"opened_{mode}"], 0),
            sa.func.coalesce(ET.c[f"confirmed_{mode}"], 0),
            sa.func.coalesce(behind, False),
            P.c.attributes,
        )
        .select_from(E.join(P, P.c.id == E.c.person_id).outerjoin(ET, ET.c.enrollment_id == E.c.id))
        .where(E.c.cohort_id == cohort_id)
        .order_by(P.c.email)
    )
    if only_behind:
        query = query.where(behind.is_(True), E.c.status.in_(READING))
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for email, name, status, reason, sent, at, opened, confirmed, late, attrs in conn.execute(
        query
    ):
        rows.append(
            PersonRow(
                email,
                name,
                status,
                reason,
                sent,
                total,
                f"{sent} of {total}",
                at,
                int(opened),
                int(confirmed),
                bool(late) and status in READING,
                status == EnrollmentStatus.bounced.value,
                dict(attrs or {}),
            )
        )
    return rows


def cohort_summaries(
    engine: Engine, lessons_root: Path, now: datetime, *, human_only: bool = True
) -> list[Summary]:
    """The summary of every cohort, by name."""
    with engine.connect() as conn:
        names = list(conn.execute(sa.select(C.c.name).order_by(C.c.name)).scalars())
    return [
        cohort_report(
            engine, n, lessons_root, now, human_only=human_only, parts=frozenset()
        ).summary
        for n in names
    ]
