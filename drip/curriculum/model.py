"""What a course is made of: lessons, checks, sources, and the problems found in them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from drip.errors import NotFound
from drip.spacing import Spacing

WORDS_PER_MINUTE = 200
# Where someone enrolled after a cohort started begins: at lesson 1, or at the lesson the
# cohort is on (the ones before are skipped, never sent).
LATE_JOINERS = ("start", "catch_up")


WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Problem:
    """One problem found in a course, with its file and line."""

    path: Path
    line: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class Check:
    """The one-question check of a lesson, with its `review` wording for spaced review."""

    question: str
    options: tuple[str, ...]
    answer: int
    explanation: str
    review: Check | None = None
    line: int = 1


@dataclass(frozen=True)
class Source:
    """Where a lesson's facts come from: a reader can open the URL and check."""

    title: str
    publisher: str
    year: int | None
    url: str

    def cite(self) -> str:
        """The source in one short line: publisher, title, year."""
        year = f", {self.year}" if self.year else ""
        return f"{self.publisher}: {self.title}{year}" if self.publisher else f"{self.title}{year}"


@dataclass(frozen=True)
class Lesson:
    """One lesson: its identity is the slug, its place in the course is the number."""

    course: str
    number: int
    slug: str
    title: str
    summary: str
    takeaway: str
    body: str
    body_line: int
    check: Check | None
    path: Path
    content_hash: str
    sources: tuple[Source, ...] = ()

    @property
    def words(self) -> int:
        return len(WORD.findall(self.body))

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.words / WORDS_PER_MINUTE))


@dataclass(frozen=True)
class Course:
    """A course: its metadata and its lessons in order."""

    slug: str
    title: str
    description: str
    audience: str
    lessons: tuple[Lesson, ...]
    path: Path
    rules: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    facts_as_of: str = ""
    spacing: Spacing = Spacing()
    catch_up_after: int = 3  # lessons unopened before the next one says so
    pause_after: int = 5  # lessons unopened before the enrolment pauses itself
    late_joiners: str = "start"  # one of LATE_JOINERS

    def lesson(self, slug: str) -> Lesson:
        """Return the lesson with this slug."""
        for lesson in self.lessons:
            if lesson.slug == slug:
                return lesson
        known = ", ".join(x.slug for x in self.lessons)
        raise NotFound(f"course '{self.slug}' has no lesson '{slug}'; its lessons are: {known}")

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {lesson.slug: place for place, lesson in enumerate(self.lessons, 1)}

    def position(self, slug: str) -> int:
        """Return the 1-based place of a lesson in the course."""
        return self._positions[slug]
