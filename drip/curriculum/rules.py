"""The editorial rules of a course: limits, checks that can be gamed, sources, hype words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drip.curriculum.model import (
    Check,
    Lesson,
    Problem,
)

DEFAULT_RULES: dict[str, Any] = {
    "max_title": 60,
    "max_summary": 110,
    "min_words": 0,
    "max_words": 400,
    "require_check": False,
    "min_options": 2,
    "max_options": 5,
    "require_sources": False,
    "require_review": False,
    "check_style": "warning",
}


BOOL_RULES = {"require_check", "require_sources", "require_review"}


STYLE_LEVELS = ("warning", "error")


LONGEST_SHARE = 1 / 3  # the right answer may be the longest option in at most this share


LONG_OPTION = 1.5  # an option this many times the next longest stands out


# Words that signal hype or unexplained jargon to a busy, sceptical reader.
WATCH_WORDS = (
    "game-changer",
    "game changer",
    "revolutionary",
    "revolutionise",
    "revolutionize",
    "viral",
    "synergy",
    "synergies",
    "disrupt",
    "disruptive",
    "leverage",
    "ninja",
    "guru",
    "rockstar",
    "unprecedented",
    "skyrocket",
    "paradigm",
    "growth hack",
    "thought leader",
    "best-in-class",
    "cutting-edge",
    "world-class",
    "next-gen",
    "omnichannel",
    "engagement rate",
    "CTR",
    "CPM",
    "KPI",
    "SEO",
    "UGC",
)


def url_problem(url: str) -> str:
    """Why a source URL is not a well-formed https link, or "" when it is (no network)."""
    if not url:
        return "no url; add url: https://..."
    if any(c.isspace() or ord(c) < 32 for c in url) or any(c in url for c in '<>"'):
        return f"url {url!r} holds a space, control character, quote or angle bracket"
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"url {url!r} must start with https://"
    host = parts.hostname or ""
    if "." not in host or host.startswith(".") or host.endswith("."):
        return f"url {url!r} has no valid host name"
    return ""


def check_style(
    lessons: list[Lesson], course_file: Path, rules: dict[str, Any], problems: list[Problem]
) -> None:
    """Flag checks that can be gamed: the right answer is usually the longest, one option much
    longer than the others, the answer given away by the summary or takeaway."""
    level = rules["check_style"]
    checks = [(lesson, c) for lesson in lessons for c in _checks(lesson)]
    longest = 0
    for lesson, check in checks:
        lengths = [len(o) for o in check.options]
        ranked = sorted(lengths, reverse=True)
        if lengths[check.answer] == ranked[0] and ranked.count(ranked[0]) == 1:
            longest += 1
        if len(ranked) > 1 and ranked[0] > LONG_OPTION * ranked[1]:
            which = "ABCDE"[lengths.index(ranked[0])]
            problems.append(
                Problem(
                    lesson.path,
                    check.line,
                    f"option {which} is {ranked[0]} characters, over {LONG_OPTION:g} times the "
                    f"next longest ({ranked[1]}); give the options similar lengths",
                    level,
                )
            )
        answer = check.options[check.answer].lower().strip(" .")
        for field_name in ("summary", "takeaway"):
            if answer and answer in getattr(lesson, field_name).lower():
                problems.append(
                    Problem(
                        lesson.path,
                        check.line,
                        f"the right answer {check.options[check.answer]!r} appears in the "
                        f"lesson's {field_name}; reword one so the check tests judgement",
                        level,
                    )
                )
    if checks and longest > len(checks) * LONGEST_SHARE:
        problems.append(
            Problem(
                course_file,
                1,
                f"the right answer is the longest option in {longest} of {len(checks)} checks "
                f"(at most a third); lengthen some distractors",
                level,
            )
        )


def _checks(lesson: Lesson) -> list[Check]:
    if lesson.check is None:
        return []
    return [lesson.check] + ([lesson.check.review] if lesson.check.review else [])


def _watch_words(lesson: Lesson, problems: list[Problem]) -> None:
    text = " ".join([lesson.title, lesson.summary, lesson.takeaway, lesson.body]).lower()
    for word in WATCH_WORDS:
        if re.search(r"(?<![\w-])" + re.escape(word.lower()) + r"(?![\w-])", text):
            problems.append(
                Problem(
                    lesson.path, 1, f"'{word}' reads as hype or jargon; say it plainly", "warning"
                )
            )
