"""Spaced review, pure: when a check comes back and when it retires (Kerfoot's schedule:
wrong or unanswered after about 12 days, right after about 24, retired after two right in a row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any


@dataclass(frozen=True)
class Spacing:
    """A course's review schedule."""

    wrong_days: int = 12
    right_days: int = 24
    retire_after: int = 2
    max_rounds: int = 4  # a question that came back this often retires, answered or not

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> Spacing:
        """From course.yml's `review:` mapping (already validated) or the defaults."""
        return cls(**(raw or {}))

    def as_dict(self) -> dict[str, int]:
        return {
            "wrong_days": self.wrong_days,
            "right_days": self.right_days,
            "retire_after": self.retire_after,
            "max_rounds": self.max_rounds,
        }


@dataclass(frozen=True)
class ReviewState:
    """Where one question stands for one person."""

    due_on: date
    streak: int
    retired: bool


def unanswered(spacing: Spacing, on: date, rounds: int = 0) -> ReviewState:
    """A check (or review) sent on `on`, not answered yet: it comes back as if answered wrong,
    unless it has come back `max_rounds` times already."""
    return ReviewState(on + timedelta(days=spacing.wrong_days), 0, rounds >= spacing.max_rounds)


def answered(spacing: Spacing, on: date, streak: int, right: bool) -> ReviewState:
    """The state after an answer given on `on`, from the streak before it."""
    if not right:
        return ReviewState(on + timedelta(days=spacing.wrong_days), 0, False)
    streak += 1
    return ReviewState(
        on + timedelta(days=spacing.right_days), streak, streak >= spacing.retire_after
    )
