"""Retention: how well people answer a check the first time, and when it comes back in review,
by the days since they got the lesson; and, per lesson, first-try against review results."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.states import DeliveryKind, EventKind, Verdict

# Days since the lesson, for answers given in review.
BUCKETS = (
    (0, 13, "review, up to 13 days"),
    (14, 27, "review, 14-27 days"),
    (28, 10**6, "review, 28 days or more"),
)


@dataclass(frozen=True)
class RetentionRow:
    """Answers in one group (the first try, or reviews so many days after the lesson)."""

    label: str
    answered: int
    right: int

    @property
    def rate(self) -> float:
        return self.right / self.answered if self.answered else 0.0


@dataclass(frozen=True)
class LessonReview:
    """One lesson's check: right at the first try, and right when it came back in review."""

    slug: str
    first_answered: int
    first_right: int
    review_answered: int
    review_right: int


def _first_reviews(cohort_id: int) -> sa.Select[tuple[int]]:
    """The answer of record of each review: the first one not judged a machine. Read through
    the deliveries that carry a review, so only their events are visited."""
    return (
        sa.select(sa.func.min(EV.c.id))
        .select_from(D.join(E, E.c.id == D.c.enrollment_id).join(EV, EV.c.delivery_id == D.c.id))
        .where(
            E.c.cohort_id == cohort_id,
            D.c.review_slug.is_not(None),  # a review e-mail, or a lesson carrying one
            EV.c.kind == EventKind.review_answer.value,
            EV.c.verdict != Verdict.machine.value,
            EV.c.option.is_not(None),
        )
        .group_by(EV.c.delivery_id)
    )


def retention(
    conn: sa.Connection, cohort_id: int, first: dict[str, tuple[int, int]]
) -> tuple[list[RetentionRow], list[LessonReview]]:
    """Accuracy at the first try (`first`: answered and right per lesson, from the tallies) and
    in review by days since the lesson, and per lesson."""
    lesson = D.alias("lesson")
    carried = D.alias("carried")
    reviews = conn.execute(
        sa.select(carried.c.review_slug, EV.c.correct, EV.c.at, lesson.c.sent_at)
        .select_from(
            EV.join(carried, carried.c.id == EV.c.delivery_id).outerjoin(
                lesson,
                sa.and_(
                    lesson.c.enrollment_id == carried.c.enrollment_id,
                    lesson.c.lesson_slug == carried.c.review_slug,
                    lesson.c.kind == DeliveryKind.lesson.value,
                ),
            )
        )
        .where(EV.c.id.in_(_first_reviews(cohort_id)))
    ).all()
    per_lesson: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = [
        RetentionRow(
            "first try", sum(n for n, _ in first.values()), sum(r for _, r in first.values())
        )
    ]
    for slug, (answered, right) in first.items():
        if answered:
            per_lesson[slug][0] += answered
            per_lesson[slug][1] += right
    buckets = {label: [0, 0] for _, _, label in BUCKETS}
    for slug, ok, at, sent_at in reviews:
        per_lesson[slug][2] += 1
        per_lesson[slug][3] += int(bool(ok))
        days = (at - sent_at).days if sent_at is not None else 0
        label = next(label for low, high, label in BUCKETS if low <= days <= high)
        buckets[label][0] += 1
        buckets[label][1] += int(bool(ok))
    rows += [RetentionRow(label, n, right) for label, (n, right) in buckets.items()]
    lessons = [LessonReview(slug, *counts) for slug, counts in sorted(per_lesson.items())]
    return rows, lessons
