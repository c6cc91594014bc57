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
    assert problem.startswith(f"{root}/c/01-a.md:15: error: template error")


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
