"""Enrolment from a people file into a cohort, all or nothing, with what to warn about first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import lifecycle
from drip.curriculum.model import Course
from drip.db import session as open_session
from drip.errors import DripError
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.models import Cohort, EnrollmentStatus
from drip.people.calendar import lessons_had
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
    starts: Counter[int] = field(default_factory=Counter)  # people by the lesson they start at


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
    course: Callable[[str], Course] | None = None,
    catch_up: bool | None = None,
) -> ImportResult:
    """Enrol every person in the file into the cohort, all or nothing; late joiners catch up
    when `catch_up` says so, else when the course's `late_joiners` setting does."""
    with open_session(engine) as db:
        cohort = get_cohort(db, cohort_name)
    people = read_people(path, mapping=mapping, special_use=special_use, progress=progress)
    loaded, unreadable = None, ""
    if course is not None and catch_up is not False:
        try:
            loaded = course(cohort.course)
        except DripError as exc:
            if catch_up:  # asked for, and it needs the course's lessons
                raise
            unreadable = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    result = enroll_rows(
        engine,
        cohort,
        people.rows,
        now=now,
        dry_run=dry_run,
        source=str(path),
        course=loaded,
        catch_up=catch_up,
    )
    if unreadable:
        result.warnings.append(
            f"course '{cohort.course}' cannot be read ({unreadable}), so its late_joiners "
            "setting is unknown: people start at lesson 1; drip lessons check shows why"
        )
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
    course: Course | None = None,
    catch_up: bool | None = None,
) -> ImportResult:
    """Write people and enrolments in one transaction; people already enrolled are counted and
    suppressed addresses are reported instead of enrolled. With `catch_up` (by default the
    course's `late_joiners` setting) people joining a running cohort start at its lesson."""
    result = ImportResult(rows=len(rows), dry_run=dry_run)
    if catch_up is None:
        catch_up = course is not None and course.late_joiners == "catch_up"
    skips = _Skips(cohort, course, now) if catch_up and course is not None else None
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
        zones: dict[int, str | None] = {}
        for start in range(0, len(known_ids), CHUNK):
            zones.update(
                conn.execute(
                    sa.select(P.c.id, P.c.timezone).where(
                        P.c.id.in_(known_ids[start : start + CHUNK])
                    )
                ).all()
            )
        joining = [
            r
            for r in rows
            if ids.get(r.email) not in enrolled and ids.get(r.email) not in suppressed
        ]
        skipped: dict[str, list[str]] = {}
        for r in joining:
            zone = (zones.get(ids[r.email]) if r.email in ids else None) or r.timezone
            skipped[r.email] = skips.of(zone) if skips is not None else []
        if course is not None:
            result.starts.update(len(x) + 1 for x in skipped.values())
            _start_notes(result, cohort, course, skips)
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
        fresh = {n.email for n in new}  # once, not per row: a 100,000-row file stays linear
        _merge_attributes(conn, ids, [r for r in rows if r.email not in fresh])
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
                    "skipped": skipped[row.email],
                }
            )
            result.emails.append(row.email)
        lifecycle.enrol(conn, values, now=now, method="csv")
    return result


class _Skips:
    """The lessons a late joiner skips to start where the cohort is, worked out once per
    timezone (the cohort's calendar is the same for everyone in a zone)."""

    def __init__(self, cohort: Cohort, course: Course, now: datetime) -> None:
        self.cohort, self.course, self.now = cohort, course, now
        self.by_zone: dict[str | None, list[str]] = {}
        self.past_end: set[str] = set()  # zones where the cohort has had its last lesson

    def of(self, zone: str | None) -> list[str]:
        """The slugs skipped by someone in `zone` (None: the cohort's) joining now."""
        if zone not in self.by_zone:
            lessons = self.course.lessons
            had = lessons_had(self.cohort, len(lessons), zone, self.now)
            if had >= len(lessons) and lessons:
                # The cohort is past its last lesson: start at that one (and say so).
                self.past_end.add(zone or self.cohort.timezone)
                had = len(lessons) - 1
            self.by_zone[zone] = [x.slug for x in lessons[:had]]
        return self.by_zone[zone]


def _start_notes(
    result: ImportResult, cohort: Cohort, course: Course, skips: _Skips | None
) -> None:
    """Say at which lesson people start, and warn when the cohort had already finished."""
    total = len(course.lessons)
    for position, count in sorted(result.starts.items()):
        gone = "lesson 1" if position == 2 else f"lessons 1-{position - 1}"
        how = f" (catch-up: {gone} skipped)" if position > 1 else ""
        people = "1 person" if count == 1 else f"{count} people"
        verb = "would start" if result.dry_run else "starts" if count == 1 else "start"
        result.notes.append(f"{people} {verb} at lesson {position} of {total}{how}")
    if skips is not None and skips.past_end:
        last = course.lessons[-1]
        result.warnings.append(
            f"cohort '{cohort.name}' has had its last lesson ({', '.join(sorted(skips.past_end))}):"
            f" catching up, people start at the last lesson '{last.slug}' only; enrol them in a "
            "newer cohort, or with --from-start for the whole course"
        )


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
