"""A lesson inserted into a course while a cohort runs: one line in course.yml's `order:`, the
check says which cohort it affects and how, and readers count their own sequence."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

from support import LESSONS, cli_env, make_settings, run_drip, utc

COURSE = "leading-change"
MONDAY = utc(2026, 12, 7)


def lesson_file(folder: Path, name: str, title: str) -> None:
    sample = (LESSONS / "sample" / "01-what-a-drip-course-is.md").read_text(encoding="utf-8")
    text = sample.replace('title: "What a drip course is"', f'title: "{title}"', 1)
    (folder / name).write_text(text, encoding="utf-8")


def test_inserting_a_lesson_touches_one_file_and_counts_each_readers_own_sequence(
    tmp_path: Path, db_url: str
) -> None:
    root = tmp_path / "lessons"
    folder = root / COURSE
    folder.mkdir(parents=True)
    (folder / "course.yml").write_text('title: "Leading change"\n', encoding="utf-8")
    for n in range(1, 5):
        lesson_file(folder, f"{n:02d}-step-{n}.md", f"Step {n}")
    env = cli_env(make_settings(tmp_path, db_url, lessons_dir=str(root)))

    def drip(*args: str) -> str:
        result = run_drip(list(args), env)
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    drip(
        "cohort",
        "create",
        "pilot",
        "--course",
        COURSE,
        "--start",
        "2026-12-07",
        "--now",
        "2026-12-01",
    )
    people = tmp_path / "people.csv"
    people.write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n", encoding="utf-8")
    drip("enroll", "pilot", str(people), "--now", "2026-12-01")
    for day in ("2026-12-07T08:00Z", "2026-12-08T08:00Z"):
        drip("send-due", "--now", day)
    assert "running cohort" not in drip("lessons", "check", COURSE)

    # Insert a lesson after step 1: its file, and one line in course.yml. No file is renumbered.
    lesson_file(folder, "05-a-new-idea.md", "A new idea")
    (folder / "course.yml").write_text(
        'title: "Leading change"\norder: [step-1, a-new-idea, step-2, step-3, step-4]\n',
        encoding="utf-8",
    )
    checked = drip("lessons", "check", COURSE)
    assert "running cohort 'pilot':" in checked
    assert (
        "lesson 2 'a-new-idea' is new before where 2 people are: it is their next lesson" in checked
    )
    assert "lesson 'step-2' moved from place 2 to 3" in checked
    calendar = json.loads(
        drip(
            "cohort",
            "calendar",
            "pilot",
            "--days",
            "1",
            "--format",
            "json",
            "--now",
            "2026-12-09T00:00Z",
        )
    )
    assert [(r["email"], r["lesson"], r["number"]) for r in calendar] == [
        ("ann@example.com", "a-new-idea", "3 of 5"),
        ("bob@example.com", "a-new-idea", "3 of 5"),
    ]
    sent = json.loads(drip("send-due", "--now", "2026-12-09T08:00Z", "--format", "json"))
    assert {(r["email"], r["lesson"]) for r in sent} == {
        ("ann@example.com", "a-new-idea"),
        ("bob@example.com", "a-new-idea"),
    }
    newest = max((tmp_path / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime)
    message = email.message_from_bytes(newest.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Lesson 3 of 5" in text.splitlines()[0]  # their third e-mail, not the course's "2"


def test_an_order_that_misses_a_lesson_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "lessons"
    folder = root / COURSE
    folder.mkdir(parents=True)
    for n in range(1, 3):
        lesson_file(folder, f"{n:02d}-step-{n}.md", f"Step {n}")
    (folder / "course.yml").write_text(
        'title: "Leading change"\norder: [step-2, step-3]\n', encoding="utf-8"
    )
    result = run_drip(
        ["lessons", "check", COURSE], cli_env(make_settings(tmp_path, lessons_dir=str(root)))
    )
    assert result.returncode == 1
    assert "'order' names 'step-3', which has no lesson file; fix the slug" in result.stderr
    assert "'order' leaves out the lesson 'step-1'; add it where it goes" in result.stderr
