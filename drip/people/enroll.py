"""CSV enrolment into a cohort, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import lifecycle
from drip.db import session as open_session
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import Cohort
from drip.people.cohorts import cohort_cadence, get_cohort
from drip.people.csv import Row, read_people_csv
from drip.people.suppression import suppressed_among
from drip.schedule import local_date, next_slot

CHUNK = 500


@dataclass
class ImportResult:
    """What an enrolment did (or would do, on a dry run)."""

    rows: int = 0
    enrolled: int = 0
    already: int = 0
    new_people: int = 0
    dry_run: bool = False
    emails: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # suppressed addresses, one message each


def enroll_csv(
    engine: Engine,
    cohort_name: str,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Enrol every person in the CSV into the cohort, all or nothing."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    rows = read_people_csv(path, progress)
    return enroll_rows(engine, cohort, rows, now=now, dry_run=dry_run, source=str(path))


def _chunks(items: list[str], size: int = CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def enroll_rows(
    engine: Engine,
    cohort: Cohort,
    rows: list[Row],
    *,
    now: datetime,
    dry_run: bool = False,
    source: str = "input",
) -> ImportResult:
    """Write people and enrolments in one transaction; people already enrolled are counted and
    suppressed addresses are reported instead of enrolled."""
    result = ImportResult(rows=len(rows), dry_run=dry_run)
    with engine.begin() as conn:
        blocked = suppressed_among(conn, (r.email for r in rows))
        for row in rows:
            if row.email in blocked:
                entry = blocked[row.email]
                result.refused.append(
                    f"{source}:{row.line}: '{row.email}' is suppressed ({entry.reason}, "
                    f"since {entry.since:%Y-%m-%d}): not enrolled; "
                    f"drip suppress remove {row.email} allows it again"
                )
        rows = [r for r in rows if r.email not in blocked]
    emails = [r.email for r in rows]
    with engine.begin() as conn:
        ids: dict[str, int] = {}
        for chunk in _chunks(emails):
            ids.update(conn.execute(sa.select(P.c.email, P.c.id).where(P.c.email.in_(chunk))).all())
        new = [r for r in rows if r.email not in ids]
        result.new_people = len(new)
        enrolled: set[int] = set()
        known_ids = list(ids.values())
        for start in range(0, len(known_ids), CHUNK):
            enrolled.update(
                conn.execute(
                    sa.select(E.c.person_id).where(
                        E.c.cohort_id == cohort.id,
                        E.c.person_id.in_(known_ids[start : start + CHUNK]),
                    )
                ).scalars()
            )
        result.already = len(enrolled)
        result.enrolled = len(rows) - result.already
        if dry_run:
            return result
        if new:
            conn.execute(
                P.insert(),
                [
                    {"email": r.email, "name": r.name, "timezone": r.timezone, "created_at": now}
                    for r in new
                ],
            )
            for chunk in _chunks([r.email for r in new]):
                ids.update(
                    conn.execute(sa.select(P.c.email, P.c.id).where(P.c.email.in_(chunk))).all()
                )
        zones: dict[int, str | None] = {}
        all_ids = list(ids.values())
        for start in range(0, len(all_ids), CHUNK):
            zones.update(
                conn.execute(
                    sa.select(P.c.id, P.c.timezone).where(
                        P.c.id.in_(all_ids[start : start + CHUNK])
                    )
                ).all()
            )
        values = []
        for row in rows:
            person_id = ids[row.email]
            if person_id in enrolled:
                continue
            cadence = cohort_cadence(cohort, zones.get(person_id) or row.timezone)
            first = next_slot(cadence, now)
            if cohort.welcome:
                # The welcome goes at the next moment in the person's window, a day before
                # lesson 1 at the latest; on the first lesson's day it rides inside lesson 1.
                welcome = next_slot(replace(cadence, start=None), now)
                if local_date(welcome, cadence.timezone) < local_date(first, cadence.timezone):
                    first = welcome
            values.append(
                {
                    "person_id": person_id,
                    "cohort_id": cohort.id,
                    "lessons_sent": 0,
                    "next_due_at": first,
                    "created_at": now,
                }
            )
            result.emails.append(row.email)
        lifecycle.enrol(conn, values, now=now, method="csv")
    return result
