"""Load and validate courses: lessons/<course>/course.yml and NN-slug.md lesson files."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from drip.curriculum.model import (
    LATE_JOINERS,
    Check,
    Course,
    Lesson,
    Problem,
    Source,
)
from drip.curriculum.rules import (
    BOOL_RULES,
    DEFAULT_RULES,
    STYLE_LEVELS,
    _watch_words,
    check_style,
    url_problem,
)
from drip.errors import CurriculumError, NotFound
from drip.spacing import Spacing

LESSON_FILE = re.compile(r"^(\d{2,3})-([a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
COURSE_FILE = "course.yml"
LESSON_KEYS = ("title", "summary", "takeaway", "check", "sources")


def course_slugs(root: Path) -> list[str]:
    """List the course folders under the lessons root."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / COURSE_FILE).is_file())


def load_course(root: Path, slug: str) -> Course:
    """Load and validate one course; raise CurriculumError listing every problem."""
    course, problems = inspect_course(root, slug)
    errors = [p for p in problems if p.severity == "error"]
    if errors or course is None:
        raise CurriculumError(errors)
    return course


def inspect_course(root: Path, slug: str) -> tuple[Course | None, list[Problem]]:
    """Load a course and return it (None on errors) with every problem and warning found."""
    folder = root / slug
    if not (folder / COURSE_FILE).is_file():
        known = ", ".join(course_slugs(root)) if root.is_dir() else "none"
        raise NotFound(f"no course '{slug}' in {root} (no {slug}/{COURSE_FILE}); courses: {known}")
    problems: list[Problem] = []
    meta = _load_course_meta(folder / COURSE_FILE, problems)
    rules = dict(DEFAULT_RULES)
    rules.update(meta.get("rules") or {})
    lessons: list[Lesson] = []
    numbers: dict[int, Path] = {}
    order = _order(meta, folder / COURSE_FILE, problems)
    for path in sorted(folder.iterdir()):
        if path.name == COURSE_FILE or path.name.startswith(".") or path.is_dir():
            continue
        match = LESSON_FILE.match(path.name)
        if not match:
            if path.suffix == ".md":
                problems.append(
                    Problem(path, 1, "lesson files are named NN-slug.md, like 03-strategy-first.md")
                )
            continue
        number = int(match.group(1))
        if number in numbers and order is None:
            problems.append(
                Problem(
                    path,
                    1,
                    f"lesson number {number:02d} is also used by {numbers[number].name}; renumber one",
                )
            )
        numbers[number] = path
        lesson = _load_lesson(slug, number, match.group(2), path, rules, problems)
        if lesson is not None:
            lessons.append(lesson)
    if not numbers:
        problems.append(
            Problem(folder / COURSE_FILE, 1, "the course has no lessons (NN-slug.md files)")
        )
    lessons.sort(key=lambda x: x.number)
    if order is not None:
        lessons = _in_order(lessons, order, folder / COURSE_FILE, problems)
    check_style(lessons, folder / COURSE_FILE, rules, problems)
    errors = [p for p in problems if p.severity == "error"]
    warnings = tuple(p for p in problems if p.severity == "warning")
    if errors:
        return None, problems
    course = Course(
        slug=slug,
        title=str(meta.get("title", slug)),
        description=str(meta.get("description", "")).strip(),
        audience=str(meta.get("audience", "")).strip(),
        lessons=tuple(lessons),
        path=folder,
        rules=rules,
        warnings=warnings,
        facts_as_of=str(meta.get("facts_as_of") or "").strip(),
        spacing=Spacing.of(meta.get("review")),
        catch_up_after=int((meta.get("engagement") or {}).get("catch_up_after", 3)),
        pause_after=int((meta.get("engagement") or {}).get("pause_after", 5)),
        late_joiners=str(meta.get("late_joiners") or "start"),
    )
    return course, problems


def _order(meta: dict[str, Any], path: Path, problems: list[Problem]) -> list[str] | None:
    """The `order:` list of course.yml (lesson slugs, first to last), or None to go by number."""
    order = meta.get("order")
    if order is None:
        return None
    if not isinstance(order, list) or not all(isinstance(x, str) for x in order):
        problems.append(Problem(path, 1, "'order' must be a list of lesson slugs, first to last"))
        return None
    twice = sorted({x for x in order if order.count(x) > 1})
    if twice:
        problems.append(Problem(path, 1, f"'order' names '{twice[0]}' twice; keep one"))
    return [str(x) for x in order]


def _in_order(
    lessons: list[Lesson], order: list[str], path: Path, problems: list[Problem]
) -> list[Lesson]:
    """The lessons in the `order:` of course.yml, which must name each lesson file exactly once
    (so inserting a lesson means adding its file and one line here, not renumbering files)."""
    by_slug = {x.slug: x for x in lessons}
    unknown = [slug for slug in order if slug not in by_slug]
    missing = [x.slug for x in lessons if x.slug not in order]
    if unknown:
        problems.append(
            Problem(
                path, 1, f"'order' names '{unknown[0]}', which has no lesson file; fix the slug"
            )
        )
    if missing:
        problems.append(
            Problem(path, 1, f"'order' leaves out the lesson '{missing[0]}'; add it where it goes")
        )
    return [by_slug[slug] for slug in order if slug in by_slug]


def _load_course_meta(path: Path, problems: list[Problem]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.append(Problem(path, _yaml_line(exc), f"broken YAML: {_yaml_reason(exc)}"))
        return {}
    except UnicodeDecodeError:
        problems.append(Problem(path, 1, "not UTF-8 text; save the file as UTF-8"))
        return {}
    if not isinstance(data, dict):
        problems.append(
            Problem(path, 1, "course.yml must be a mapping with title, description, audience")
        )
        return {}
    if not str(data.get("title") or "").strip():
        problems.append(Problem(path, 1, "missing 'title'; add title: Course name"))
    rules = data.get("rules")
    if rules is not None and (not isinstance(rules, dict) or set(rules) - set(DEFAULT_RULES)):
        problems.append(
            Problem(
                path, 1, f"'rules' must be a mapping with keys among {', '.join(DEFAULT_RULES)}"
            )
        )
        data["rules"] = {}
    elif rules is not None:
        for key, value in rules.items():
            if key == "check_style":
                if value not in STYLE_LEVELS:
                    problems.append(
                        Problem(path, 1, f"rule 'check_style' is {value!r}; use warning or error")
                    )
                    rules[key] = DEFAULT_RULES[key]
                continue
            wanted = bool if key in BOOL_RULES else int
            if (
                isinstance(value, bool) != (wanted is bool)
                or not isinstance(value, wanted)
                or (wanted is int and value < 0)
            ):
                kind = "true or false" if wanted is bool else "a whole number of 0 or more"
                problems.append(Problem(path, 1, f"rule '{key}' is {value!r}; use {kind}"))
                rules[key] = DEFAULT_RULES[key]
    _whole_numbers(
        data, "review", ("wrong_days", "right_days", "retire_after", "max_rounds"), path, problems
    )
    _whole_numbers(data, "engagement", ("catch_up_after", "pause_after"), path, problems)
    late = data.get("late_joiners")
    if late is not None and late not in LATE_JOINERS:
        line = _key_lines(path.read_text(encoding="utf-8")).get("late_joiners", 1)
        problems.append(
            Problem(
                path,
                line,
                f"'late_joiners' is {late!r}; use start (lesson 1) or catch_up (the lesson "
                "the cohort is on)",
            )
        )
        data["late_joiners"] = None
    return data


def _whole_numbers(
    data: dict[str, Any], key: str, allowed: tuple[str, ...], path: Path, problems: list[Problem]
) -> None:
    """Check an optional mapping of settings that are whole numbers of 1 or more."""
    raw = data.get(key)
    if raw is None:
        return
    if not isinstance(raw, dict) or set(raw) - set(allowed):
        problems.append(
            Problem(path, 1, f"'{key}' must be a mapping with keys among {', '.join(allowed)}")
        )
        data[key] = None
        return
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(
                Problem(path, 1, f"'{key}.{name}' is {value!r}; use a whole number of 1 or more")
            )
            data[key] = None
            return


def _yaml_line(exc: yaml.YAMLError, offset: int = 0) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (mark.line + 1 + offset) if mark is not None else 1 + offset


def _yaml_reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def _key_lines(text: str) -> dict[str, int]:
    """Map each front-matter key (and check.* keys) to its 1-based line within the YAML text."""
    lines: dict[str, int] = {}
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        lines[str(key.value)] = key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            for sub_key, _sub in value.value:
                lines[f"{key.value}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return lines


def _load_lesson(
    course: str, number: int, slug: str, path: Path, rules: dict[str, Any], problems: list[Problem]
) -> Lesson | None:
    start = len(problems)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(path, 1, "not UTF-8 text; save the file as UTF-8"))
        return None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.startswith("---\n"):
        problems.append(Problem(path, 1, "missing front matter: start the file with a line '---'"))
        return None
    end = text.find("\n---", 4)
    if end == -1:
        problems.append(Problem(path, 1, "front matter is not closed: add a line '---' after it"))
        return None
    front = text[4 : end + 1]
    body = text[end + 4 :].lstrip("\n")
    body_line = text[: len(text) - len(body)].count("\n") + 1
    try:
        data = yaml.safe_load(front)
        key_lines = _key_lines(front)
    except yaml.YAMLError as exc:
        problems.append(
            Problem(path, _yaml_line(exc, offset=1), f"broken YAML: {_yaml_reason(exc)}")
        )
        return None
    if not isinstance(data, dict):
        problems.append(
            Problem(path, 2, "front matter must be a mapping of title, summary, takeaway, check")
        )
        return None

    def line(key: str) -> int:
        return key_lines.get(key, 0) + 1 if key in key_lines else 1

    def text_field(key: str, limit: int | None = None, required: bool = True) -> str:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problems.append(
                    Problem(path, line(key), f"missing '{key}'; add {key}: ... to the front matter")
                )
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problems.append(
                Problem(
                    path,
                    line(key),
                    f"'{key}' must be text, not {type(value).__name__}; put it in quotes",
                )
            )
            return ""
        value = str(value).strip()
        if "\n" in value:
            problems.append(Problem(path, line(key), f"'{key}' must be one line"))
        if limit is not None and len(value) > limit:
            problems.append(
                Problem(
                    path,
                    line(key),
                    f"'{key}' is {len(value)} characters, over the limit of {limit}; shorten it",
                )
            )
        return value

    title = text_field("title", rules["max_title"])
    summary = text_field("summary", rules["max_summary"])
    takeaway = text_field("takeaway")
    unknown = sorted(set(data) - set(LESSON_KEYS))
    for key in unknown:
        problems.append(
            Problem(path, line(key), f"unknown key '{key}'; allowed: {', '.join(LESSON_KEYS)}")
        )
    check = _load_check(data.get("check"), path, line, rules, problems)
    if check is not None:
        review = _load_check(
            data["check"].get("review"), path, line, rules, problems, prefix="check.review"
        )
        if review is not None:
            check = replace(check, review=review)
        elif rules["require_review"] and "review" not in data["check"]:
            problems.append(
                Problem(
                    path,
                    line("check"),
                    "the check has no 'review' (another wording of the same question, for "
                    "spaced review); add check.review with question, options, answer, explanation",
                )
            )
    sources = _load_sources(data.get("sources"), path, line, problems)
    if not sources:
        problems.append(
            Problem(
                path,
                line("sources") if "sources" in data else 1,
                "the lesson names no sources; add sources: with title, publisher, year, url",
                "error" if rules["require_sources"] else "warning",
            )
        )
    if not body.strip():
        problems.append(Problem(path, body_line, "the lesson has no body below the front matter"))
    _check_jinja(body, path, body_line, problems)
    for offset, text_line in enumerate(text.splitlines()):
        if "%%DRIP-" in text_line:  # drip's own placeholder syntax would be filled in per recipient
            problems.append(Problem(path, offset + 1, "'%%DRIP-' is reserved by drip; reword it"))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    lesson = Lesson(
        course, number, slug, title, summary, takeaway, body, body_line, check, path, digest,
        tuple(sources),
    )  # fmt: skip
    words = lesson.words
    if body.strip() and not rules["min_words"] <= words <= rules["max_words"]:
        problems.append(
            Problem(
                path,
                body_line,
                f"the body has {words} words; this course wants {rules['min_words']}-{rules['max_words']}",
            )
        )
    _watch_words(lesson, problems)
    if any(p.severity == "error" for p in problems[start:]):
        return None
    return lesson


def _load_check(
    raw: Any,
    path: Path,
    line: Any,
    rules: dict[str, Any],
    problems: list[Problem],
    prefix: str = "check",
) -> Check | None:
    if raw is None:
        if rules["require_check"] and prefix == "check":
            problems.append(
                Problem(path, 1, "this course wants a 'check' (one question) on every lesson")
            )
        return None
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                path, line(prefix), f"'{prefix}' must hold question, options, answer, explanation"
            )
        )
        return None
    missing = [k for k in ("question", "options", "answer", "explanation") if not raw.get(k)]
    if missing:
        problems.append(Problem(path, line(prefix), f"{prefix} is missing '{missing[0]}'"))
        return None
    for key in ("question", "answer", "explanation"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], str | int | float):
            problems.append(
                Problem(path, line(f"{prefix}.{key}"), f"{prefix}.{key} must be text; quote it")
            )
            return None
    options = raw["options"]
    if not isinstance(options, list) or not all(isinstance(o, str | int | float) for o in options):
        problems.append(
            Problem(path, line(f"{prefix}.options"), "check options must be a list of text")
        )
        return None
    options = [str(o).strip() for o in options]
    low, high = rules["min_options"], rules["max_options"]
    if not low <= len(options) <= high:
        problems.append(
            Problem(
                path,
                line(f"{prefix}.options"),
                f"the check has {len(options)} options; give {low}-{high}",
            )
        )
    if len(set(options)) != len(options):
        problems.append(Problem(path, line(f"{prefix}.options"), "two check options are the same"))
    answer = str(raw["answer"]).strip()
    if answer not in options:
        problems.append(
            Problem(
                path,
                line(f"{prefix}.answer"),
                f"the answer '{answer}' is not among the options; copy one option exactly",
            )
        )
        return None
    return Check(
        str(raw["question"]).strip(),
        tuple(options),
        options.index(answer),
        str(raw["explanation"]).strip(),
        line=line(prefix),
    )


def _load_sources(raw: Any, path: Path, line: Any, problems: list[Problem]) -> list[Source]:
    """The lesson's sources; each needs a title and an https URL (checked offline)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(
            Problem(
                path, line("sources"), "'sources' must be a list of title, publisher, year, url"
            )
        )
        return []
    sources = []
    for number, item in enumerate(raw, 1):
        where = f"source {number}"
        if not isinstance(item, dict) or set(item) - {"title", "publisher", "year", "url"}:
            problems.append(
                Problem(
                    path,
                    line("sources"),
                    f"{where} must be a mapping of title, publisher, year, url",
                )
            )
            continue
        title = str(item.get("title") or "").strip()
        url = str(item.get("url") or "").strip()
        year = item.get("year")
        if not title:
            problems.append(Problem(path, line("sources"), f"{where} has no title"))
        problem = url_problem(url)
        if problem:
            problems.append(Problem(path, line("sources"), f"{where} ({title}): {problem}"))
        if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
            problems.append(
                Problem(path, line("sources"), f"{where} year {year!r} must be a number like 2025")
            )
            year = None
        sources.append(Source(title, str(item.get("publisher") or "").strip(), year, url))
    return sources


def _check_jinja(body: str, path: Path, body_line: int, problems: list[Problem]) -> None:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().parse(body)
    except TemplateSyntaxError as exc:
        lineno = body_line + (exc.lineno or 1) - 1
        problems.append(Problem(path, lineno, f"template error: {exc.message}"))


class Catalog:
    """Courses loaded from the lessons folder, reloaded when a file changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[float, Course]] = {}

    def get(self, slug: str) -> Course:
        folder = self.root / slug
        try:
            stamp = max((p.stat().st_mtime_ns for p in folder.iterdir()), default=0)
        except OSError:
            stamp = -1
        cached = self._cache.get(slug)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        course = load_course(self.root, slug)
        self._cache[slug] = (stamp, course)
        return course
