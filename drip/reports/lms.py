"""The completion file learning management systems import: one row per person who completed a
cohort's course, with the course id, the completion date and a score."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.db import session as open_session
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.people.cohorts import get_cohort
from drip.states import DeliveryKind, EventKind, Verdict

# The columns and what each means, in the order of the file (README: LMS completion export).
COLUMNS = ("person_id", "email", "course_id", "completion_date", "score")


@dataclass(frozen=True)
class Completion:
    """One row of the LMS file."""

    person_id: str  # the HR id attribute if the person has one, else drip's own person id
    email: str
    course_id: str  # the course slug, the same id xAPI activity ids are built from
    completion_date: date  # the day drip completed the course, in the cohort's timezone
    score: int | None  # percent of the course's checks answered right at first try; none: blank


def _attribute(value: Any, name: str) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except ValueError:
            return ""
    return str(value.get(name) or "") if isinstance(value, dict) else ""


def completions(engine: Engine, cohort_name: str, id_attribute: str = "") -> list[Completion]:
    """The people of a cohort who completed its course, with their score, by e-mail."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    zone = ZoneInfo(cohort.timezone)
    columns: list[Any] = [E.c.id, P.c.id.label("person_id"), P.c.email]
    if "attributes" in P.c:
        columns.append(P.c.attributes)
    completed = (
        sa.select(EV.c.enrollment_id, sa.func.max(EV.c.at).label("at"))
        .where(EV.c.kind == EventKind.complete.value)
        .group_by(EV.c.enrollment_id)
        .subquery()
    )
    first_answer = (
        sa.select(sa.func.min(EV.c.id))
        .where(
            EV.c.kind == EventKind.answer.value,
            EV.c.verdict != Verdict.machine.value,
            EV.c.delivery_id.is_not(None),
        )
        .group_by(EV.c.delivery_id)
    )
    with engine.connect().execution_options(drip_read_only=True) as conn:
        people = conn.execute(
            sa.select(*columns, completed.c.at)
            .select_from(
                E.join(P, P.c.id == E.c.person_id).join(
                    completed, completed.c.enrollment_id == E.c.id
                )
            )
            .where(E.c.cohort_id == cohort.id, E.c.status == "completed")
            .order_by(P.c.email)
        ).all()
        checks: dict[int, int] = dict(
            conn.execute(
                sa.select(D.c.enrollment_id, sa.func.count())
                .select_from(D.join(LV, LV.c.content_hash == D.c.content_hash))
                .join(E, E.c.id == D.c.enrollment_id)
                .where(
                    E.c.cohort_id == cohort.id,
                    D.c.kind == DeliveryKind.lesson.value,
                    LV.c.check.not_in(["", "null"]),
                )
                .group_by(D.c.enrollment_id)
            ).all()
        )
        right: dict[int, int] = dict(
            conn.execute(
                sa.select(EV.c.enrollment_id, sa.func.count())
                .join(E, E.c.id == EV.c.enrollment_id)
                .where(
                    E.c.cohort_id == cohort.id,
                    EV.c.id.in_(first_answer),
                    EV.c.correct.is_(True),
                )
                .group_by(EV.c.enrollment_id)
            ).all()
        )
    rows = []
    for row in people:
        hr_id = _attribute(row.attributes, id_attribute) if "attributes" in P.c else ""
        total = checks.get(row.id, 0)
        rows.append(
            Completion(
                person_id=hr_id or str(row.person_id),
                email=row.email,
                course_id=cohort.course,
                completion_date=row.at.astimezone(zone).date(),
                score=round(100 * right.get(row.id, 0) / total) if total else None,
            )
        )
    return rows


def completions_csv(rows: list[Completion]) -> str:
    """The LMS file: a header of COLUMNS, ISO dates, scores 0-100; text cells that a spreadsheet
    would run as a formula start with an apostrophe (see drip.reports.export)."""
    import csv
    import io

    from drip.reports.export import neutralise

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(
            [
                neutralise(str(r.person_id)),
                neutralise(r.email),
                neutralise(r.course_id),
                r.completion_date.isoformat(),
                "" if r.score is None else r.score,
            ]  # fmt: skip
        )
    return buffer.getvalue()
