"""Completion queries over the event log: cohort summary, lesson funnel, people, timelines, log."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.load import Course, load_course
from drip.db import session as open_session
from drip.errors import DripError
from drip.events import BOOKKEEPING, counted
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
from drip.reports.retention import LessonReview, RetentionRow, retention
from drip.states import DeliveryKind

# Tracking writes an implied human open for every human click, "got it" and answer.
RESPONSE_KINDS = ("click", "confirm", "answer")
READER_KINDS = ("open", *RESPONSE_KINDS, "pause", "resume", "unsubscribe")
BEHIND_AFTER = 3
STATUSES = tuple(s.value for s in EnrollmentStatus)


@dataclass(frozen=True)
class Summary:
    """The headline figures of one cohort."""

    cohort: str
    course: str
    course_title: str
    course_lessons: int
    enrolled: int
    active: int
    paused: int
    completed: int
    unsubscribed: int
    bounced: int
    held: int
    lessons_sent: int
    opened_human: int
    opened_all: int
    open_rate_human: float
    open_rate_all: float
    confirmed: int
    answered: int
    answered_right: int
    average_progress: float
    on_track: int
    behind: int
    unreachable: int = 0  # bounced: the address does not take mail, so "behind" would mislead
    questions: int = 0  # replies forwarded to the coach


@dataclass(frozen=True)
class LessonRow:
    """One lesson of the funnel: how many got it, opened it, confirmed it and answered right."""

    position: int
    slug: str
    title: str
    sent: int
    opened_human: int
    opened_all: int
    confirmed: int
    answered: int
    answered_right: int
    unsubscribed_after: int


@dataclass(frozen=True)
class PersonRow:
    """One person's progress in a cohort."""

    email: str
    name: str
    status: str
    reason: str
    lessons_sent: int
    lessons_total: int
    progress: str
    last_activity: datetime | None
    opened: int
    confirmed: int
    behind: bool
    unreachable: bool = False  # bounced: shown as unreachable, never as behind


@dataclass(frozen=True)
class DayRow:
    """Events of one UTC day, by what happened."""

    day: str
    sent: int
    opened: int
    responded: int
    other: int


@dataclass
class CohortReport:
    """Everything the report shows about one cohort, computed at `generated_at`."""

    summary: Summary
    lessons: list[LessonRow]
    people: list[PersonRow]
    activity: list[DayRow]
    progress: list[tuple[int, int]]
    human_only: bool
    generated_at: datetime
    notes: list[str] = field(default_factory=list)
    retention: list[RetentionRow] = field(default_factory=list)  # first try vs in review
    reviews: list[LessonReview] = field(default_factory=list)

    @property
    def behind(self) -> list[PersonRow]:
        return [p for p in self.people if p.behind]


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.max(sa.case((condition, 1), else_=0))


def _delivery_stats(cohort_id: int, human_only: bool) -> sa.Select[Any]:
    """One row per sent delivery of the cohort with 0/1 flags: opened, confirmed, answered."""
    is_open = EV.c.kind == EventKind.open.value
    # The answer of record is the first one not judged a machine, as the answer page shows it.
    is_answer = sa.and_(EV.c.kind == "answer", EV.c.verdict != Verdict.machine.value)
    flags = (
        sa.select(
            EV.c.delivery_id,
            _flag(sa.and_(is_open, EV.c.verdict == Verdict.human.value)).label("opened_human"),
            _flag(is_open).label("opened_all"),
            _flag(sa.and_(EV.c.kind == "confirm", counted(human_only))).label("confirmed"),
            sa.func.min(sa.case((is_answer, EV.c.id))).label("first_answer"),
        )
        .join(E, E.c.id == EV.c.enrollment_id)
        .where(E.c.cohort_id == cohort_id, EV.c.kind.in_(["open", "confirm", "answer"]))
        .group_by(EV.c.delivery_id)
        .subquery("flags")
    )
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


def cohort_report(
    engine: Engine, cohort_name: str, lessons_root: Path, now: datetime, *, human_only: bool = True
) -> CohortReport:
    """The whole report of one cohort: summary, lesson funnel, people, activity and progress."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    assert cohort.id is not None
    notes: list[str] = []
    course = _course(lessons_root, cohort, notes)
    with engine.connect() as conn:
        # Report queries only read; the option lets db.py start them without a write lock.
        conn.execution_options(drip_read_only=True)
        stats = _materialize(conn, "drip_report_stats", _delivery_stats(cohort.id, human_only))
        behind = _materialize(conn, "drip_report_behind", _behind(stats), "enrollment_id")
        lessons = _lessons(conn, cohort.id, stats, course)
        total = len(course.lessons) if course else max((x.position for x in lessons), default=0)
        people = _people(conn, cohort.id, stats, behind, total, human_only)
        summary = _summary(conn, cohort, course, stats, behind, total)
        activity = _activity(conn, cohort.id, human_only)
        progress = _progress(conn, cohort.id, total)
        kept, reviewed = retention(conn, cohort.id)
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
    conn: sa.Connection, cohort_id: int, stats: sa.FromClause, course: Course | None
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
    unsubscribed = _unsubscribes_by_lesson(conn, cohort_id)
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


def _unsubscribes_by_lesson(conn: sa.Connection, cohort_id: int) -> dict[str, int]:
    """Unsubscribes per lesson: the lesson whose link was used, else the last one sent before."""
    direct = D.alias("direct")
    before = D.alias("before")
    last_sent = (
        sa.select(before.c.lesson_slug)
        .where(
            before.c.enrollment_id == EV.c.enrollment_id,
            before.c.status == DeliveryStatus.sent.value,
            before.c.sent_at <= EV.c.at,
        )
        .order_by(before.c.sent_at.desc(), before.c.position.desc())
        .limit(1)
        .scalar_subquery()
    )
    slug = sa.select(direct.c.lesson_slug).where(direct.c.id == EV.c.delivery_id).scalar_subquery()
    each = (
        sa.select(EV.c.enrollment_id, sa.func.coalesce(slug, last_sent).label("slug"))
        .join(E, E.c.id == EV.c.enrollment_id)
        .where(E.c.cohort_id == cohort_id, EV.c.kind == EventKind.unsubscribe.value)
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
    behind: sa.FromClause,
    total: int,
    human_only: bool,
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
        sa.select(EV.c.enrollment_id, sa.func.max(EV.c.at).label("at"))
        .join(E, E.c.id == EV.c.enrollment_id)
        .where(
            E.c.cohort_id == cohort_id,
            EV.c.kind.in_(READER_KINDS),
            sa.or_(EV.c.kind.not_in(["open", *RESPONSE_KINDS]), counted(human_only)),
        )
        .group_by(EV.c.enrollment_id)
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
    at_type = Event.__table__.c.at.type  # type: ignore[attr-defined]
    rows = []
    for email, name, status, reason, sent, at, opened, confirmed, late in conn.execute(query):
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
            )
        )
    return rows


def _activity(conn: sa.Connection, cohort_id: int, human_only: bool) -> list[DayRow]:
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
            sa.or_(EV.c.kind.not_in(["open", *RESPONSE_KINDS]), counted(human_only)),
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


def _progress(conn: sa.Connection, cohort_id: int, total: int) -> list[tuple[int, int]]:
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


def cohort_summaries(
    engine: Engine, lessons_root: Path, now: datetime, *, human_only: bool = True
) -> list[Summary]:
    """The summary of every cohort, by name."""
    with engine.connect() as conn:
        names = list(conn.execute(sa.select(C.c.name).order_by(C.c.name)).scalars())
    return [
        cohort_report(engine, n, lessons_root, now, human_only=human_only).summary for n in names
    ]


def as_dict(row: Any) -> dict[str, Any]:
    """A report row as a plain dict with times in ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(row).items()}


# -- rows for exporters -----------------------------------------------------------------------

SECTIONS = ("summary", "lessons", "people", "activity", "progress")


def section_rows(report: CohortReport, section: str) -> list[dict[str, Any]]:
    """One section of a report as plain rows (for tables and CSV)."""
    if section == "summary":
        return [as_dict(report.summary)]
    if section == "lessons":
        return [as_dict(row) for row in report.lessons]
    if section == "people":
        return [as_dict(row) for row in report.people]
    if section == "activity":
        return [as_dict(row) for row in report.activity]
    if section == "progress":
        return [{"lessons_sent": n, "people": k} for n, k in report.progress]
    raise ValueError(f"unknown section {section!r}")


def report_json(report: CohortReport) -> str:
    """The whole report as a JSON document."""
    document: dict[str, Any] = {
        "cohort": report.summary.cohort,
        "generated_at": report.generated_at.isoformat(),
        "mode": "human" if report.human_only else "all",
        "notes": report.notes,
    }
    document.update({section: section_rows(report, section) for section in SECTIONS})
    document["summary"] = document["summary"][0]
    return json.dumps(document, indent=2, ensure_ascii=False)


def rows_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Rows as CSV text with a header line."""
    buffer = io.StringIO()
    fields = columns or (list(rows[0]) if rows else [])
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return buffer.getvalue()
