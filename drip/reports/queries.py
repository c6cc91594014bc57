"""Completion queries over the event log: cohort summary, lesson funnel, people, timelines, log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.load import load_course
from drip.curriculum.model import Course
from drip.db import session as open_session
from drip.errors import DripError
from drip.events import counted
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import (
    Cohort,
    DeliveryStatus,
    EnrollmentStatus,
    Event,
    EventKind,
    Verdict,
)
from drip.people.cohorts import get_cohort
from drip.reports.activity import daily_activity, progress_counts
from drip.reports.model import (
    CohortReport,
    LessonRow,
    PersonRow,
    Summary,
)
from drip.reports.retention import retention
from drip.states import DeliveryKind

# Tracking writes an implied human open for every human click, "got it" and answer.
RESPONSE_KINDS = ("click", "confirm", "answer")
READER_KINDS = ("open", *RESPONSE_KINDS, "pause", "resume", "unsubscribe")
BEHIND_AFTER = 3
STATUSES = tuple(s.value for s in EnrollmentStatus)


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.max(sa.case((condition, 1), else_=0))


def _event_flags(cohort_id: int, human_only: bool) -> sa.Select[Any]:
    """The one pass over the cohort's events: per enrollment and delivery, 0/1 flags (opened,
    confirmed), the first answer of record, and the last reader activity (the people table's
    "last activity"; events without a delivery, like a pause from the CLI, count there too)."""
    is_open = EV.c.kind == EventKind.open.value
    # The answer of record is the first one not judged a machine, as the answer page shows it.
    is_answer = sa.and_(EV.c.kind == "answer", EV.c.verdict != Verdict.machine.value)
    reader = sa.and_(
        EV.c.kind.in_(READER_KINDS),
        sa.or_(EV.c.kind.not_in(["open", *RESPONSE_KINDS]), counted(human_only)),
    )
    return (
        sa.select(
            EV.c.enrollment_id,
            EV.c.delivery_id,
            _flag(sa.and_(is_open, EV.c.verdict == Verdict.human.value)).label("opened_human"),
            _flag(is_open).label("opened_all"),
            _flag(sa.and_(EV.c.kind == "confirm", counted(human_only))).label("confirmed"),
            sa.func.min(sa.case((is_answer, EV.c.id))).label("first_answer"),
            sa.func.max(sa.case((reader, EV.c.at))).label("last_at"),
            sa.func.max(sa.case((EV.c.kind == "unsubscribe", EV.c.at))).label("unsubscribed_at"),
        )
        .join(E, E.c.id == EV.c.enrollment_id)
        .where(E.c.cohort_id == cohort_id, EV.c.kind.in_(READER_KINDS))
        .group_by(EV.c.enrollment_id, EV.c.delivery_id)
    )


def _delivery_stats(cohort_id: int, flags: sa.FromClause, human_only: bool) -> sa.Select[Any]:
    """One row per sent delivery of the cohort with 0/1 flags: opened, confirmed, answered."""
    answer = EV.alias("answer")
    right = answer.c.correct.is_(True)
    opened = flags.c.opened_human if human_only else flags.c.opened_all
    return (
        sa.select(
            D.c.id,
            D.c.enrollment_id,
            D.c.lesson_slug,
            D.c.position,
            D.c.sent_at,
            sa.func.coalesce(flags.c.opened_human, 0).label("opened_human"),
            sa.func.coalesce(flags.c.opened_all, 0).label("opened_all"),
            sa.func.coalesce(opened, 0).label("opened"),
            sa.func.coalesce(flags.c.confirmed, 0).label("confirmed"),
            sa.case((answer.c.id.is_not(None), 1), else_=0).label("answered"),
            sa.case((right, 1), else_=0).label("right"),
        )
        .select_from(
            D.join(E, E.c.id == D.c.enrollment_id)
            .outerjoin(flags, flags.c.delivery_id == D.c.id)
            .outerjoin(answer, answer.c.id == flags.c.first_answer)
        )
        .where(
            E.c.cohort_id == cohort_id,
            D.c.status == DeliveryStatus.sent.value,
            D.c.kind == DeliveryKind.lesson.value,
        )
    )


def _behind(stats: sa.FromClause) -> sa.Select[Any]:
    """Enrolments whose three most recent sent lessons were all left unopened."""
    ranked = sa.select(
        stats.c.enrollment_id,
        stats.c.opened,
        sa.func.row_number()
        .over(
            partition_by=stats.c.enrollment_id,
            order_by=(stats.c.sent_at.desc(), stats.c.position.desc()),
        )
        .label("recent"),
    ).subquery("ranked")
    return (
        sa.select(ranked.c.enrollment_id, sa.literal(1).label("behind"))
        .where(ranked.c.recent <= BEHIND_AFTER)
        .group_by(ranked.c.enrollment_id)
        .having(sa.func.count() == BEHIND_AFTER, sa.func.max(ranked.c.opened) == 0)
    )


def _materialize(
    conn: sa.Connection, name: str, query: sa.Select[Any], key: str | None = None
) -> sa.Table:
    """Copy a query's rows into a temporary table, so the queries after it read them once made.

    The table lives in the connection's transaction, which is rolled back when it closes.
    """
    columns = [sa.Column(c.name, c.type, primary_key=c.name == key) for c in query.selected_columns]
    table = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
    table.create(conn)
    conn.execute(table.insert().from_select([c.name for c in columns], query))
    return table


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
) -> CohortReport:
    """The report of one cohort: the summary, and of lesson funnel, people, activity and
    progress the `parts` asked for (the terminal table needs no activity chart)."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    assert cohort.id is not None
    notes: list[str] = []
    course = _course(lessons_root, cohort, notes)
    with engine.connect() as conn:
        # Report queries only read; the option lets db.py start them without a write lock.
        conn.execution_options(drip_read_only=True)
        flags = _materialize(conn, "drip_report_flags", _event_flags(cohort.id, human_only))
        sa.Index("drip_report_flags_delivery", flags.c.delivery_id).create(conn)
        stats = _materialize(
            conn, "drip_report_stats", _delivery_stats(cohort.id, flags, human_only)
        )
        behind = _materialize(conn, "drip_report_behind", _behind(stats), "enrollment_id")
        lessons = (
            _lessons(conn, stats, flags, course) if "lessons" in parts or course is None else []
        )
        total = len(course.lessons) if course else max((x.position for x in lessons), default=0)
        only_behind = "people" not in parts
        people = (
            _people(conn, cohort.id, stats, flags, behind, total, only_behind)
            if parts & {"people", "behind"}
            else []
        )
        summary = _summary(conn, cohort, course, stats, behind, total)
        activity = daily_activity(conn, cohort.id, human_only) if "activity" in parts else []
        progress = progress_counts(conn, cohort.id, total) if "progress" in parts else []
        kept, reviewed = retention(conn, cohort.id) if "activity" in parts else ([], [])
    return CohortReport(
        summary, lessons, people, activity, progress, human_only, now, notes, kept, reviewed
    )


def _summary(
    conn: sa.Connection,
    cohort: Cohort,
    course: Course | None,
    stats: sa.FromClause,
    behind: sa.FromClause,
    total: int,
) -> Summary:
    statuses: dict[str, int] = {
        status: int(n)
        for status, n in conn.execute(
            sa.select(E.c.status, sa.func.count())
            .where(E.c.cohort_id == cohort.id)
            .group_by(E.c.status)
        )
    }
    sums = conn.execute(
        sa.select(
            sa.func.count(),
            *(
                sa.func.coalesce(sa.func.sum(stats.c[name]), 0)
                for name in ("opened_human", "opened_all", "confirmed", "answered", "right")
            ),
        )
    ).one()
    capped = sa.case((E.c.lessons_sent > total, total), else_=E.c.lessons_sent)
    reading = E.c.status.in_(["active", "paused", "completed"])
    progress, late, reading_count = conn.execute(
        sa.select(
            sa.func.avg(sa.cast(capped, sa.Float)),
            sa.func.count(behind.c.behind).filter(reading),
            sa.func.count().filter(reading),
        )
        .select_from(E.outerjoin(behind, behind.c.enrollment_id == E.c.id))
        .where(E.c.cohort_id == cohort.id)
    ).one()
    sent, human, anyone, confirmed, answered, right = (int(x) for x in sums)
    questions = conn.execute(
        sa.select(sa.func.count())
        .select_from(EV.join(E, E.c.id == EV.c.enrollment_id))
        .where(E.c.cohort_id == cohort.id, EV.c.kind == EventKind.question.value)
    ).scalar_one()
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
        questions=int(questions),
    )


def _lessons(
    conn: sa.Connection, stats: sa.FromClause, flags: sa.FromClause, course: Course | None
) -> list[LessonRow]:
    rows = conn.execute(
        sa.select(
            stats.c.lesson_slug,
            sa.func.min(stats.c.position),
            sa.func.count(),
            *(
                sa.func.sum(stats.c[name])
                for name in ("opened_human", "opened_all", "confirmed", "answered", "right")
            ),
        ).group_by(stats.c.lesson_slug)
    ).all()
    found = {r[0]: r for r in rows}
    unsubscribed = _unsubscribes_by_lesson(conn, flags)
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
                      unsubscribed.get(slug, 0))
        )  # fmt: skip
    return result


def _unsubscribes_by_lesson(conn: sa.Connection, flags: sa.FromClause) -> dict[str, int]:
    """Unsubscribes per lesson: the lesson whose link was used, else the last one sent before."""
    direct = D.alias("direct")
    before = D.alias("before")
    last_sent = (
        sa.select(before.c.lesson_slug)
        .where(
            before.c.enrollment_id == flags.c.enrollment_id,
            before.c.status == DeliveryStatus.sent.value,
            before.c.sent_at <= flags.c.unsubscribed_at,
        )
        .order_by(before.c.sent_at.desc(), before.c.position.desc())
        .limit(1)
        .scalar_subquery()
    )
    slug = (
        sa.select(direct.c.lesson_slug).where(direct.c.id == flags.c.delivery_id).scalar_subquery()
    )
    each = (
        sa.select(flags.c.enrollment_id, sa.func.coalesce(slug, last_sent).label("slug"))
        .where(flags.c.unsubscribed_at.is_not(None))
        .subquery()
    )
    query = (
        sa.select(each.c.slug, sa.func.count(sa.distinct(each.c.enrollment_id)))
        .where(each.c.slug.is_not(None))
        .group_by(each.c.slug)
    )
    return {slug: int(n) for slug, n in conn.execute(query).all()}


def _people(
    conn: sa.Connection,
    cohort_id: int,
    stats: sa.FromClause,
    flags: sa.FromClause,
    behind: sa.FromClause,
    total: int,
    only_behind: bool = False,
) -> list[PersonRow]:
    per = (
        sa.select(
            stats.c.enrollment_id,
            sa.func.sum(stats.c.opened).label("opened"),
            sa.func.sum(stats.c.confirmed).label("confirmed"),
        )
        .group_by(stats.c.enrollment_id)
        .subquery("per")
    )
    last = (
        sa.select(flags.c.enrollment_id, sa.func.max(flags.c.last_at).label("at"))
        .group_by(flags.c.enrollment_id)
        .subquery("last")
    )
    query = (
        sa.select(
            P.c.email,
            P.c.name,
            E.c.status,
            E.c.status_reason,
            E.c.lessons_sent,
            last.c.at,
            sa.func.coalesce(per.c.opened, 0),
            sa.func.coalesce(per.c.confirmed, 0),
            sa.func.coalesce(behind.c.behind, 0),
            P.c.attributes,
        )
        .select_from(
            E.join(P, P.c.id == E.c.person_id)
            .outerjoin(per, per.c.enrollment_id == E.c.id)
            .outerjoin(last, last.c.enrollment_id == E.c.id)
            .outerjoin(behind, behind.c.enrollment_id == E.c.id)
        )
        .where(E.c.cohort_id == cohort_id)
        .order_by(P.c.email)
    )
    if only_behind:
        query = query.where(behind.c.behind.is_not(None))
    at_type = Event.__table__.c.at.type  # type: ignore[attr-defined]
    rows = []
    for email, name, status, reason, sent, at, opened, confirmed, late, attrs in conn.execute(
        query
    ):
        if isinstance(at, str):  # max() over a SQLite column loses the column type
            at = at_type.process_result_value(at, None)
        reading = status in ("active", "paused", "completed")
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
                bool(late) and reading,
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
        cohort_report(engine, n, lessons_root, now, human_only=human_only).summary for n in names
    ]


# -- rows for exporters -----------------------------------------------------------------------
