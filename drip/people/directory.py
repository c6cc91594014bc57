"""People: find and list them; pause, resume, unsubscribe, remove, move or correct them."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from drip import events, lifecycle
from drip.addresses import valid_address
from drip.db import session as open_session
from drip.errors import InputError, NotFound
from drip.lifecycle import Change, Transition, TransitionError
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P
from drip.models import Cohort, Enrollment, EnrollmentStatus, EventKind, Person, Verdict
from drip.people.cohorts import get_cohort
from drip.people.csv import MAX_ATTRIBUTE, MAX_NAME
from drip.people.zones import read_zone
from drip.schedule import parse_timezone


@dataclass(frozen=True)
class PersonView:
    """A person with each of their enrolments and cohorts."""

    person: Person
    enrollments: list[tuple[Enrollment, Cohort]]


def get_person(engine: Engine, email: str) -> PersonView:
    """A person and their enrolments, by e-mail address."""
    address = email.strip().lower()
    with open_session(engine) as db:
        person = db.exec(select(Person).where(Person.email == address)).first()
        if person is None:
            raise NotFound(f"no person with e-mail '{address}'; see drip people list")
        pairs = db.exec(
            select(Enrollment, Cohort)
            .join(Cohort, col(Cohort.id) == col(Enrollment.cohort_id))
            .where(Enrollment.person_id == person.id)
            .order_by(Cohort.name)
        ).all()
    return PersonView(person, [(e, c) for e, c in pairs])


def list_people(
    engine: Engine, cohort_name: str | None = None, limit: int | None = None
) -> list[tuple[Person, Enrollment, Cohort]]:
    """People with their enrolments, optionally of one cohort."""
    with open_session(engine) as db:
        query = (
            select(Person, Enrollment, Cohort)
            .join(Enrollment, col(Enrollment.person_id) == col(Person.id))
            .join(Cohort, col(Cohort.id) == col(Enrollment.cohort_id))
            .order_by(Cohort.name, Person.email)
        )
        if cohort_name:
            cohort = get_cohort(db, cohort_name)
            query = query.where(Enrollment.cohort_id == cohort.id)
        if limit:
            query = query.limit(limit)
        return [(p, e, c) for p, e, c in db.exec(query).all()]


PAST = {
    "pause": "paused",
    "resume": "resumed",
    "unsubscribe": "unsubscribed",
    "resubscribe": "resubscribed",
}
ACTIONS = {
    "pause": Transition.pause,
    "resume": Transition.resume,
    "unsubscribe": Transition.unsubscribe,
    "resubscribe": Transition.resubscribe,
}

TO_ACTIVE = (Transition.resume, Transition.resubscribe)


def change_person(
    engine: Engine,
    email: str,
    action: str,
    *,
    now: datetime,
    cohort_name: str | None = None,
    until: date | None = None,
) -> list[tuple[str, str]]:
    """Apply pause/resume/unsubscribe/resubscribe to a person's enrolments, as a manager did;
    return (cohort, what happened) pairs, and fail when it applies to none of them."""
    transition = ACTIONS[action]
    view = get_person(engine, email)
    chosen = [(e, c) for e, c in view.enrollments if not cohort_name or c.name == cohort_name]
    if cohort_name and not chosen:
        raise NotFound(f"{view.person.email} is not enrolled in cohort '{cohort_name}'")
    results: list[tuple[str, str]] = []
    with engine.begin() as conn:
        ids = [e.id or 0 for e, _ in chosen]
        due, problems = lifecycle.schedules(conn, ids, now)
        if problems and transition in TO_ACTIVE:
            # Resuming a row whose schedule cannot be read would only hold it again.
            raise TransitionError(
                "; ".join(
                    f"{c.name}: cannot {action}: {problems[e.id or 0]}"
                    for e, c in chosen
                    if (e.id or 0) in problems
                ).replace(" EMAIL ", f" {view.person.email} ")
            )
        changes = [
            Change(e.id or 0, due=due.get(e.id or 0, now), until=until, reason=f"{action} via cli")
            for e, _ in chosen
        ]
        applied = {
            c.enrollment_id
            for c in lifecycle.apply(conn, transition, changes, now=now, method="cli")
        }
        for enrollment, cohort in chosen:
            if enrollment.id in applied:
                results.append((cohort.name, PAST[action]))
            else:
                results.append((cohort.name, lifecycle.explain(transition, enrollment.status)))
    if not applied:
        raise TransitionError(
            "; ".join(f"{name}: {why}" for name, why in results) or "no enrolment"
        )
    return results


def set_timezone(engine: Engine, email: str, zone: str, *, now: datetime) -> list[str]:
    """Set a person's own timezone and release their enrolments held for an unreadable one;
    return the cohorts released."""
    zone = parse_timezone(zone)
    view = get_person(engine, email)
    with engine.begin() as conn:
        conn.execute(P.update().where(P.c.id == view.person.id).values(timezone=zone))
        held = [e.id or 0 for e, _ in view.enrollments if e.status == EnrollmentStatus.held]
        due, _problems = lifecycle.schedules(conn, held, now)
        applied = lifecycle.apply(
            conn,
            Transition.release,
            [
                Change(eid, due=at, reason=f"timezone set to {zone} via cli")
                for eid, at in due.items()
            ],
            now=now,
            method="cli",
        )
    released = {c.enrollment_id for c in applied}
    return [c.name for e, c in view.enrollments if e.id in released]


def resume_bounced_since(
    engine: Engine, since: datetime, *, now: datetime
) -> list[tuple[str, str]]:
    """Resume every enrolment bounced at or after `since` (a wave of refusals that were not
    about the people): (email, cohort) of each one resumed, with their next lesson."""
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(E.c.id, P.c.email, C.c.name)
            .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
            .where(
                E.c.status == EnrollmentStatus.bounced.value,
                E.c.id.in_(
                    sa.select(EV.c.enrollment_id).where(
                        EV.c.kind == EventKind.bounce.value, EV.c.at >= since
                    )
                ),
            )
            .order_by(P.c.email, C.c.name)
        ).all()
        due = lifecycle.next_due(conn, [eid for eid, _, _ in found], now)
        applied = {
            c.enrollment_id
            for c in lifecycle.apply(
                conn,
                Transition.resume,
                [
                    Change(
                        eid,
                        due=due.get(eid, now),
                        reason=f"bounced since {since:%Y-%m-%d %H:%M} UTC, resumed via cli",
                    )
                    for eid, _, _ in found
                ],
                now=now,
                method="cli",
            )
        }
    return [(email, name) for eid, email, name in found if eid in applied]


def _person_id(conn: sa.Connection, email: str) -> int:
    address = email.strip().lower()
    found = conn.execute(sa.select(P.c.id).where(P.c.email == address)).scalar()
    if found is None:
        raise NotFound(f"no person with e-mail '{address}'; see drip people list")
    return int(found)


def _enrollments(
    conn: sa.Connection, person_id: int, cohort_name: str | None
) -> list[tuple[int, str, str, str]]:
    """(enrollment id, cohort name, course, status) of a person, optionally in one cohort."""
    rows = [
        (int(eid), str(name), str(course), str(status))
        for eid, name, course, status in conn.execute(
            sa.select(E.c.id, C.c.name, C.c.course, E.c.status)
            .join(C, C.c.id == E.c.cohort_id)
            .where(E.c.person_id == person_id)
            .order_by(C.c.name)
        )
    ]
    if cohort_name is not None:
        rows = [r for r in rows if r[1] == cohort_name]
        if not rows:
            raise NotFound(f"that person is not enrolled in cohort '{cohort_name}'")
    return rows


def remove_person(
    engine: Engine, email: str, *, now: datetime, cohort_name: str | None = None
) -> list[str]:
    """Take a person out of their cohorts (or one): no more lessons, their history kept.
    Returns the cohorts they were removed from."""
    with engine.begin() as conn:
        rows = _enrollments(conn, _person_id(conn, email), cohort_name)
        changes = [Change(eid, reason="removed by a manager") for eid, *_ in rows]
        applied = {
            c.enrollment_id
            for c in lifecycle.apply(conn, Transition.remove, changes, now=now, method="cli")
        }
    if not applied:
        raise TransitionError(
            f"{email.strip().lower()} was already removed from every cohort named"
        )
    return [name for eid, name, _, _ in rows if eid in applied]


def move_person(
    engine: Engine, email: str, to_cohort: str, *, now: datetime, from_cohort: str | None = None
) -> tuple[str, str]:
    """Move a person's enrolment to another cohort of the same course, keeping what they have
    received and done; their next lesson follows the new cohort's calendar."""
    with engine.begin() as conn:
        person_id = _person_id(conn, email)
        rows = _enrollments(conn, person_id, from_cohort)
        if len(rows) > 1:
            names = ", ".join(r[1] for r in rows)
            raise InputError([f"{email} is in several cohorts ({names}); say which with --from"])
        eid, source, course, status = rows[0]
        target = conn.execute(
            sa.select(C.c.id, C.c.course, C.c.archived).where(C.c.name == to_cohort)
        ).first()
        if target is None:
            raise NotFound(f"no cohort '{to_cohort}'; see drip cohort list")
        if target.archived:
            raise InputError([f"cohort '{to_cohort}' is archived; pick a running cohort"])
        if source == to_cohort:
            raise InputError([f"{email} is already in '{to_cohort}'"])
        if target.course != course:
            raise InputError(
                [
                    f"'{to_cohort}' follows course '{target.course}', not '{course}'; a move keeps "
                    "the lessons received, so it works between cohorts of one course"
                ]
            )
        clash = conn.execute(
            sa.select(E.c.id).where(E.c.person_id == person_id, E.c.cohort_id == target.id)
        ).first()
        if clash is not None:
            raise InputError([f"{email} already has an enrolment in '{to_cohort}'"])
        conn.execute(E.update().where(E.c.id == eid).values(cohort_id=target.id))
        if status == EnrollmentStatus.active.value:
            due = lifecycle.next_due(conn, [eid], now).get(eid, now)
            conn.execute(E.update().where(E.c.id == eid).values(next_due_at=due))
        events.insert(
            conn,
            [
                events.row(
                    EventKind.move,
                    eid,
                    now,
                    method="cli",
                    verdict=Verdict.human,
                    reason=f"moved from '{source}' to '{to_cohort}'",
                )
            ],
        )
    return source, to_cohort


@dataclass(frozen=True)
class PersonChange:
    """What `drip people set` changes; None leaves a field as it is."""

    email: str | None = None
    name: str | None = None
    timezone: str | None = None  # "" goes back to the cohort's timezone
    attributes: dict[str, str] = field(default_factory=dict)  # "" removes one


def set_person(
    engine: Engine,
    email: str,
    change: PersonChange,
    *,
    now: datetime,
    special_use: Collection[str] = (),
) -> list[str]:
    """Correct a person's address, name, timezone or attributes; their enrolments, deliveries
    and events stay theirs, and a new timezone moves their next lesson. Returns what changed
    (and any warning about the value, like a legacy zone)."""
    said: list[str] = []
    with engine.begin() as conn:
        person_id = _person_id(conn, email)
        current = conn.execute(
            sa.select(P.c.email, P.c.name, P.c.timezone, P.c.attributes).where(P.c.id == person_id)
        ).one()
        values: dict[str, object] = {}
        if change.email is not None:
            address = valid_address(change.email, special_use)
            if address != current.email:
                taken = conn.execute(sa.select(P.c.id).where(P.c.email == address)).first()
                if taken is not None:
                    raise InputError(
                        [
                            f"'{address}' belongs to another person already; see drip people show {address}"
                        ]
                    )
                values["email"] = address
                said.append(f"e-mail changed from {current.email} to {address}")
        if change.name is not None:
            name = change.name.strip()
            if "=?" in name or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
                raise InputError(
                    [f"the name {name!r} holds a control character or '=?'; remove it"]
                )
            if len(name) > MAX_NAME:
                raise InputError([f"the name is {len(name)} characters; shorten it to {MAX_NAME}"])
            values["name"] = name
            said.append(f"name set to '{name}'")
        if change.timezone is not None:
            zone: str | None = None
            if change.timezone.strip():
                zone, note = read_zone(change.timezone)
                if note:
                    said.append(f"warning: {note}")
            values["timezone"] = zone
            said.append(f"timezone set to {zone or 'the cohort' + chr(39) + 's'}")
        if change.attributes:
            attributes = dict(current.attributes or {})
            for key, value in change.attributes.items():
                if value:
                    attributes[key] = value[:MAX_ATTRIBUTE]
                else:
                    attributes.pop(key, None)
            values["attributes"] = attributes
            said.append(
                "attributes: " + ", ".join(f"{k}={v}" for k, v in change.attributes.items())
            )
        if not values:
            raise InputError(["nothing to change; give --email, --name, --timezone or --attr"])
        conn.execute(P.update().where(P.c.id == person_id).values(**values))
        enrolments = _enrollments(conn, person_id, None)
        if "timezone" in values:
            active = [eid for eid, _, _, status in enrolments if status == "active"]
            due = lifecycle.next_due(conn, active, now)
            if due:
                conn.execute(
                    E.update()
                    .where(E.c.id == sa.bindparam("b_id"))
                    .values(next_due_at=sa.bindparam("b_due")),
                    [{"b_id": eid, "b_due": at} for eid, at in due.items()],
                )
        events.insert(
            conn,
            [
                events.row(
                    EventKind.change,
                    eid,
                    now,
                    method="cli",
                    verdict=Verdict.human,
                    reason="; ".join(s for s in said if not s.startswith("warning:")),
                )
                for eid, *_ in enrolments
            ],
        )
    return said
