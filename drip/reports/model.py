"""What a cohort report holds: the summary, the lesson funnel, people, activity and retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drip.reports.retention import LessonReview, RetentionRow


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
    removed: int = 0  # taken out of the cohort by a manager


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
    attributes: dict[str, str] = field(default_factory=dict)


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
    behind_rows: list[PersonRow] | None = None  # read apart when `people` is only the first page

    @property
    def behind(self) -> list[PersonRow]:
        if self.behind_rows is not None:
            return self.behind_rows
        return [p for p in self.people if p.behind]
