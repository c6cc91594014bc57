"""A person's certificate of completion, made again on demand (`drip people certificate`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.load import load_course
from drip.errors import DripError, NotFound
from drip.mail.certificate import Certificate, certificate_pdf
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P
from drip.sending.store import summary
from drip.states import EventKind


def person_certificate(
    engine: Engine, email: str, lessons: Path, now: datetime, cohort: str | None = None
) -> tuple[bytes, str]:
    """The certificate PDF of a person who completed a course, and the cohort's name."""
    address = email.strip().lower()
    with engine.connect() as conn:
        query = (
            sa.select(E.c.id, E.c.status, P.c.name, C.c.name, C.c.course,
                      sa.func.coalesce(P.c.timezone, C.c.timezone))
            .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
            .where(P.c.email == address)
        )  # fmt: skip
        if cohort:
            query = query.where(C.c.name == cohort)
        rows = conn.execute(query).all()
        if not rows:
            where = f" in cohort '{cohort}'" if cohort else ""
            raise NotFound(f"no person with e-mail '{address}'{where}; see drip people list")
        done = [r for r in rows if r[1] == "completed"]
        if not done:
            raise DripError(
                f"{address} has not completed a course yet ({', '.join(r[3] for r in rows)}: "
                f"{', '.join(r[1] for r in rows)}); the certificate comes with the completion"
            )
        eid, _status, name, cohort_name, course_slug, zone = done[0]
        finished = conn.execute(
            sa.select(sa.func.max(EV.c.at)).where(
                EV.c.enrollment_id == eid, EV.c.kind == EventKind.complete.value
            )
        ).scalar()
        course = load_course(lessons, course_slug)
        facts = summary(conn, eid, course, cohort_name, zone, finished or now)
    cert = Certificate(
        name=name,
        email=address,
        course=course.title,
        cohort=cohort_name,
        started=facts.started,
        finished=facts.finished,
        lessons=len(facts.lessons),
        confirmed=facts.confirmed,
        checks_right=facts.right,
        checks=facts.checks,
    )
    return certificate_pdf(cert), cohort_name
