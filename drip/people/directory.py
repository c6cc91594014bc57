"""People: find them, list them, and pause, resume or unsubscribe them from the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from drip import lifecycle
from drip.db import session as open_session
from drip.errors import NotFound
from drip.lifecycle import Change, Transition, TransitionError
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P
from drip.models import Cohort, Enrollment, EnrollmentStatus, EventKind, Person
from drip.people.cohorts import get_cohort
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
