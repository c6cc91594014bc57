import shutil
from pathlib import Path

import pytest
from support import LESSONS, cli_env, make_settings, run_drip

from drip.curriculum.load import inspect_course, load_course
from drip.errors import CurriculumError

GOOD = """---
title: A good lesson
summary: One line.
takeaway: Remember this.
check:
  question: Which?
  options:
    - One
    - Two
  answer: Two
  explanation: Because two.
sources:
  - title: A report
    publisher: A publisher
    year: 2025
    url: https://example.org/report
---
Body text with enough words to read.
"""


def course_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "lessons"
    folder = root / "c"
    folder.mkdir(parents=True)
    (folder / "course.yml").write_text("title: Test course\ndescription: d\naudience: a\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return root


def problems_of(root: Path) -> list[str]:
    _, problems = inspect_course(root, "c")
    return [str(p) for p in problems if p.severity == "error"]


@pytest.mark.parametrize("course", ["social-media-for-executives", "sample"])
def test_shipped_courses_load_clean(course: str) -> None:
    loaded = load_course(LESSONS, course)
    assert loaded.lessons and all(lesson.title for lesson in loaded.lessons)
    assert [x.number for x in loaded.lessons] == sorted(x.number for x in loaded.lessons)


def test_executive_course_follows_its_rules() -> None:
    course = load_course(LESSONS, "social-media-for-executives")
    assert len(course.lessons) == 20
    for lesson in course.lessons:
        assert len(lesson.title) <= 60 and len(lesson.summary) <= 110
        assert 150 <= lesson.words <= 300, lesson.slug
        assert lesson.check is not None and 3 <= len(lesson.check.options) <= 4
    assert not course.warnings


def test_missing_title_names_file_and_line(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD.replace("title: A good lesson\n", "")})
    assert problems_of(root) == [
        f"{root}/c/01-a.md:1: error: missing 'title'; add title: ... to the front matter"
    ]


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    root = course_with(
        tmp_path, {"01-a.md": GOOD.replace("summary: One line.", "summary: [unclosed")}
    )
    (problem,) = problems_of(root)
    assert problem.startswith(f"{root}/c/01-a.md:") and "broken YAML" in problem
    assert int(problem.split(":")[1]) in (3, 4)


def test_answer_not_among_options_names_its_line(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD.replace("answer: Two", "answer: Three")})
    assert problems_of(root) == [
        f"{root}/c/01-a.md:10: error: the answer 'Three' is not among the options; copy one option exactly"
    ]


def test_duplicated_number(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD, "01-b.md": GOOD})
    assert problems_of(root) == [
        f"{root}/c/01-b.md:1: error: lesson number 01 is also used by 01-a.md; renumber one"
    ]


def test_jinja_error_names_body_line(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD + "\nHello {{ name \n"})
    (problem,) = problems_of(root)
    assert problem.startswith(f"{root}/c/01-a.md:20: error: template error")


def test_load_course_raises_with_every_problem(tmp_path: Path) -> None:
    root = course_with(
        tmp_path,
        {"01-a.md": GOOD.replace("answer: Two", "answer: X"), "02-b.md": "no front matter"},
    )
    with pytest.raises(CurriculumError) as info:
        load_course(root, "c")
    assert len(info.value.problems) == 2


def test_lesson_identity_is_the_slug(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-first.md": GOOD, "02-second.md": GOOD})
    shutil.move(root / "c" / "02-second.md", root / "c" / "00-second.md")
    course = load_course(root, "c")
    assert [x.slug for x in course.lessons] == ["second", "first"]
    assert course.position("first") == 2


def test_lessons_check_exits_1_and_lists_problems(tmp_path: Path) -> None:
    root = course_with(
        tmp_path,
        {
            "01-a.md": GOOD.replace("answer: Two", "answer: X"),
            "02-b.md": GOOD.replace("title: A good lesson\n", ""),
        },
    )
    env = cli_env(make_settings(tmp_path, lessons_dir=str(root)))
    result = run_drip(["lessons", "check", "c"], env)
    assert result.returncode == 1
    assert "01-a.md:10: the answer 'X' is not among the options" in result.stderr
    assert "02-b.md:1: missing 'title'" in result.stderr
    assert "Traceback" not in result.stderr


def test_lessons_check_prints_table(tmp_path: Path) -> None:
    env = cli_env(make_settings(tmp_path))
    result = run_drip(["lessons", "check", "social-media-for-executives", "--format", "csv"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "n,slug,title,words,minutes,check"
    assert len(lines) == 21


def test_course_rules_are_enforced(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD})
    (root / "c" / "course.yml").write_text(
        "title: T\nrules:\n  min_words: 150\n  max_words: 300\n  require_check: true\n  min_options: 3\n"
    )
    found = problems_of(root)
    assert f"{root}/c/01-a.md:7: error: the check has 2 options; give 3-5" in found
    assert any("the body has 7 words; this course wants 150-300" in p for p in found)


def test_hype_words_are_warnings_not_errors(tmp_path: Path) -> None:
    root = course_with(tmp_path, {"01-a.md": GOOD.replace("Body text", "A game-changer body text")})
    course, problems = inspect_course(root, "c")
    assert course is not None
    assert [p.message for p in problems] == [
        "'game-changer' reads as hype or jargon; say it plainly"
    ]


def test_shipped_courses_have_no_warnings_and_name_their_facts_date() -> None:
    course, problems = inspect_course(LESSONS, "social-media-for-executives")
    assert course is not None and problems == []
    assert course.facts_as_of == "2026-11"
    assert course.rules["check_style"] == "error" and course.rules["require_review"]
    for lesson in course.lessons:
        assert lesson.sources and all(s.url.startswith("https://") for s in lesson.sources)
        assert lesson.check is not None and lesson.check.review is not None
    _, sample = inspect_course(LESSONS, "sample")
    assert sample == []


def test_the_executive_course_check_passes_with_its_rules_as_errors() -> None:
    result = run_drip(
        ["lessons", "check", "social-media-for-executives"], cli_env(make_settings(Path("/tmp")))
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and "error" not in result.stderr


def _check(options: list[str], answer: str) -> str:
    listed = "".join(f"    - {o}\n" for o in options)
    return (
        f"check:\n  question: Which?\n  options:\n{listed}  answer: {answer}\n  explanation: Why.\n"
    )


def test_gameable_checks_are_flagged_with_file_and_line(tmp_path: Path) -> None:
    lessons = {}
    for n in range(1, 4):
        lessons[f"0{n}-l{n}.md"] = GOOD.replace(
            "check:\n  question: Which?\n  options:\n    - One\n    - Two\n  answer: Two\n  explanation: Because two.\n",
            _check(
                ["Short", "Also short", "The one long and obviously right answer"],
                "The one long and obviously right answer",
            ),
        )
    root = course_with(tmp_path, lessons)
    _, problems = inspect_course(root, "c")
    messages = [(p.path.name, p.line, p.severity, p.message) for p in problems]
    assert (
        "course.yml",
        1,
        "warning",
        "the right answer is the longest option in 3 of 3 checks (at most a third); lengthen some distractors",
    ) in messages
    assert (
        "01-l1.md",
        5,
        "warning",
        "option C is 39 characters, over 1.5 times the next longest (10); give the options similar lengths",
    ) in messages


def test_an_answer_given_away_by_the_takeaway_and_missing_sources_and_review(
    tmp_path: Path,
) -> None:
    text = GOOD.replace("takeaway: Remember this.", "takeaway: Two is the answer.")
    text = text[: text.index("sources:")] + "---\nBody text.\n"
    root = course_with(tmp_path, {"01-a.md": text})
    (root / "c" / "course.yml").write_text(
        "title: T\nrules:\n  require_sources: true\n  require_review: true\n  check_style: error\n"
    )
    _, problems = inspect_course(root, "c")
    assert sorted((p.line, p.severity, p.message) for p in problems) == [
        (1, "error", "the lesson names no sources; add sources: with title, publisher, year, url"),
        (
            5,
            "error",
            "the check has no 'review' (another wording of the same question, for spaced review); add check.review with question, options, answer, explanation",
        ),
    ]
    (root / "c" / "course.yml").write_text("title: T\nrules:\n  check_style: error\n")
    _, problems = inspect_course(root, "c")
    given_away = [
        (p.line, p.severity) for p in problems if "appears in the lesson's takeaway" in p.message
    ]
    assert given_away == [(5, "error")]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.org/a", "must start with https://"),
        ("https://localhost/a", "has no valid host name"),
        ("https://exa mple.org/", "holds a space"),
        ("", "no url"),
    ],
)
def test_source_urls_must_be_well_formed_https(tmp_path: Path, url: str, problem: str) -> None:
    root = course_with(
        tmp_path,
        {"01-a.md": GOOD.replace("https://example.org/report", repr(url) if url else "''")},
    )
    assert any(problem in message for message in problems_of(root))
