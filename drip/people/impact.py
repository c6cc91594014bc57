"""What a course change means for the cohorts running it: lessons inserted before where people
are, lessons removed, reordered or rewritten after people received them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.curriculum.model import Course
from drip.models import COHORT as C
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import DeliveryStatus, EnrollmentStatus

WAITING = (
    EnrollmentStatus.active.value,
    EnrollmentStatus.paused.value,
    EnrollmentStatus.held.value,
)


def course_impact(engine: Engine, course: Course) -> dict[str, list[str]]:
    """For each running cohort of the course, what the course as it is now changes for its
    people (empty lists are left out)."""
    position = {x.slug: course.position(x.slug) for x in course.lessons}
    content = {x.slug: x.content_hash for x in course.lessons}
    total = len(course.lessons)
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        cohorts = conn.execute(
            sa.select(C.c.id, C.c.name).where(C.c.course == course.slug, C.c.archived == sa.false())
        ).all()
        for cohort_id, name in cohorts:
            sent = conn.execute(
                sa.select(E.c.id, E.c.status, D.c.lesson_slug, D.c.position, D.c.content_hash)
                .join(D, D.c.enrollment_id == E.c.id)
                .where(E.c.cohort_id == cohort_id, D.c.status == DeliveryStatus.sent.value)
            ).all()
            statuses: dict[int, str] = {}
            # A late joiner's skipped lessons are behind them, like the ones received.
            received: dict[int, set[str]] = {}
            for eid, status, skipped in conn.execute(
                sa.select(E.c.id, E.c.status, E.c.skipped).where(E.c.cohort_id == cohort_id)
            ):
                statuses[eid] = status
                received[eid] = set(skipped or ())
            for eid, _, slug, _, _ in sent:
                received[eid].add(slug)
            notes: list[str] = []
            waiting = [eid for eid, status in statuses.items() if status in WAITING]
            for slug, place in position.items():
                behind = [
                    e
                    for e in waiting
                    if slug not in received[e] and _past(received[e], place, position)
                ]
                if behind:
                    notes.append(
                        f"lesson {place} '{slug}' is new before where {len(behind)} people are: "
                        "it is their next lesson, then they go on in order"
                    )
            gone = sorted({slug for _, _, slug, _, _ in sent if slug not in position})
            for slug in gone:
                got = sum(1 for *_, s, _, _ in sent if s == slug)
                notes.append(
                    f"lesson '{slug}' is no longer in the course: {got} people received it; nobody else will"
                )
            moved = sorted(
                {(slug, p) for _, _, slug, p, _ in sent if slug in position and position[slug] != p}
            )
            for slug, old in moved:
                notes.append(
                    f"lesson '{slug}' moved from place {old} to {position[slug]}; people not yet there get the new order"
                )
            changed = sorted(
                {slug for _, _, slug, _, h in sent if slug in content and content[slug] != h}
            )
            for slug in changed:
                got = sum(1 for *_, s, _, h in sent if s == slug and h != content[slug])
                notes.append(
                    f"lesson '{slug}' changed after {got} people received it; the rest get the new text"
                )
            if notes:
                notes.append(f"'Lesson N of {total}' counts each person's own sequence")
                found[name] = notes
    return found


def _past(received: set[str], place: int, position: dict[str, int]) -> bool:
    """Whether someone has received a lesson that comes after `place`."""
    return any(position.get(slug, 0) > place for slug in received)
