"""Enrolment from a people file into a cohort, all or nothing, with what to warn about first."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import lifecycle
from drip.db import session as open_session
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import Cohort, EnrollmentStatus
from drip.people.cohorts import cohort_cadence, get_cohort
from drip.people.csv import PeopleFile, Row, read_people
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
    suppressed: int = 0
    emails: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # suppressed addresses, one message each
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _some(emails: list[str], shown: int = 5) -> str:
    more = f" and {len(emails) - shown} more" if len(emails) > shown else ""
    return ", ".join(emails[:shown]) + more


def enroll_csv(
    engine: Engine,
    cohort_name: str,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    mapping: Mapping[str, str] | None = None,
    special_use: Collection[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Enrol every person in the file into the cohort, all or nothing."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    people = read_people(path, mapping=mapping, special_use=special_use, progress=progress)
    result = enroll_rows(engine, cohort, people.rows, now=now, dry_run=dry_run, source=str(path))
    _file_notes(people, cohort, result)
    return result


def _file_notes(people: PeopleFile, cohort: Cohort, result: ImportResult) -> None:
    if people.kept:
        result.notes.append(
            f"kept as attributes of each person (in every export): {', '.join(people.kept)}"
        )
    if people.ignored:
        result.warnings.append(f"columns ignored: {', '.join(people.ignored)}")
    result.warnings.extend(people.warnings)
    zoneless = [r.email for r in people.rows if not r.timezone]
    if zoneless:
        result.warnings.append(
            f"{len(zoneless)} people have no timezone and get the cohort's {cohort.send_time} in "
            f"{cohort.timezone} ({_some(zoneless)}); add a Time Zone column, or later "
            "drip people set EMAIL --timezone ZONE"
        )


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
        # An address that bounced or unsubscribed anywhere is left out: enrolling it again
        # would mail someone who said no, or an address that does not exist.
        suppressed: dict[int, str] = {}
        for start in range(0, len(known_ids), CHUNK):
            for person_id, status in conn.execute(
                sa.select(E.c.person_id, E.c.status).where(
                    E.c.person_id.in_(known_ids[start : start + CHUNK]),
                    E.c.status.in_(
                        [EnrollmentStatus.bounced.value, EnrollmentStatus.unsubscribed.value]
                    ),
                )
            ):
                if person_id not in enrolled:
                    suppressed[person_id] = status
        result.suppressed = len(suppressed)
        result.enrolled = len(rows) - result.already - result.suppressed
        by_id = {v: k for k, v in ids.items()}
        if enrolled:
            result.warnings.append(
                f"{len(enrolled)} already enrolled in '{cohort.name}' and skipped: "
                + _some(sorted(by_id[i] for i in enrolled))
            )
        if suppressed:
            result.warnings.append(
                f"{len(suppressed)} left out because they unsubscribed or bounced before: "
                + _some(sorted(f"{by_id[i]} ({s})" for i, s in suppressed.items()))
                + "; to enrol one anyway, drip people resume EMAIL or resubscribe them first"
            )
        if dry_run:
            return result
        if new:
            conn.execute(
                P.insert(),
                [
                    {
                        "email": r.email,
                        "name": r.name,
                        "timezone": r.timezone,
                        "attributes": r.attributes,
                        "created_at": now,
                    }
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
        _merge_attributes(conn, ids, [r for r in rows if r.email not in {n.email for n in new}])
        values = []
        for row in rows:
            person_id = ids[row.email]
            if person_id in enrolled or person_id in suppressed:
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


def _merge_attributes(conn: sa.Connection, ids: dict[str, int], rows: list[Row]) -> None:
    """People already known take the file's attributes over theirs (the HR file is newer)."""
    rows = [r for r in rows if r.attributes]
    if not rows:
        return
    current: dict[int, dict[str, str]] = {}
    wanted = [ids[r.email] for r in rows]
    for start in range(0, len(wanted), CHUNK):
        current.update(
            (pid, dict(attrs or {}))
            for pid, attrs in conn.execute(
                sa.select(P.c.id, P.c.attributes).where(P.c.id.in_(wanted[start : start + CHUNK]))
            )
        )
    conn.execute(
        P.update().where(P.c.id == sa.bindparam("b_id")).values(attributes=sa.bindparam("b_attrs")),
        [
            {"b_id": ids[r.email], "b_attrs": {**current.get(ids[r.email], {}), **r.attributes}}
            for r in rows
        ],
    )
