"""drip lessons list|check|preview and drip send-test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from drip.cli.base import (
    DripGroup,
    emit,
    err_console,
    output_options,
    say,
    settings,
    write_output,
)
from drip.errors import DripError


@click.group("lessons", cls=DripGroup)
def lessons() -> None:
    """List, check and preview courses and lessons.

    \b
    Example:
      drip lessons check social-media-for-executives
    """


@lessons.command("list")
@click.argument("course", required=False)
@output_options
def lessons_list(course: str | None, fmt: str) -> None:
    """List the courses, or the lessons of COURSE in order.

    \b
    Example:
      drip lessons list social-media-for-executives
    """
    from drip.curriculum.load import course_slugs, load_course

    root = settings().lessons_path
    if course is None:
        rows = []
        for slug in course_slugs(root):
            c = load_course(root, slug)
            rows.append({"course": slug, "title": c.title, "lessons": len(c.lessons)})
        emit(rows, fmt, title=f"courses in {root}")
        return
    c = load_course(root, course)
    emit(
        [
            {"n": i, "slug": x.slug, "title": x.title, "minutes": x.minutes}
            for i, x in enumerate(c.lessons, 1)
        ],
        fmt,
        title=c.title,
    )


@lessons.command("check")
@click.argument("course", required=False)
@output_options
def lessons_check(course: str | None, fmt: str) -> None:
    """Validate every lesson; list each problem with file and line, or print a table of lessons.

    \b
    Example:
      drip lessons check
    """
    from drip.curriculum.load import course_slugs, inspect_course
    from drip.mail.render import Renderer

    s = settings()
    root = s.lessons_path
    slugs = [course] if course else course_slugs(root)
    failed = False
    renderer = Renderer(s.templates_path)
    for slug in slugs:
        loaded, problems = inspect_course(root, slug)
        for problem in problems:
            style = "red" if problem.severity == "error" else "yellow"
            err_console.print(
                Text.assemble(
                    (f"{problem.severity}:", style),
                    f" {problem.path}:{problem.line}: {problem.message}",
                )
            )
        if loaded is None:
            failed = True
            continue
        for lesson in loaded.lessons:
            try:
                renderer.render(loaded, lesson)
            except DripError as exc:
                err_console.print(Text.assemble(("error:", "red"), f" {exc}"))
                failed = True
        rows = [
            {
                "n": n,
                "slug": lesson.slug,
                "title": lesson.title,
                "words": lesson.words,
                "minutes": lesson.minutes,
                "check": "yes" if lesson.check else "no",
            }
            for n, lesson in enumerate(loaded.lessons, 1)
        ]
        if not failed:
            emit(
                rows,
                fmt,
                title=f"{loaded.title} ({slug}): {len(rows)} lessons, "
                f"{sum(lesson.words for lesson in loaded.lessons)} words",
            )
            if fmt == "table":
                _running_cohorts(s, loaded)
    if failed:
        raise click.exceptions.Exit(1)


def _running_cohorts(s: Any, course: Any) -> None:
    """Say which running cohorts the course as it is now changes things for, and how."""
    from drip.app import App
    from drip.people.impact import course_impact

    url = str(s.database_url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return  # no database yet: nothing runs, and a check must not create one
    try:
        app = App.open(s)
        impact = course_impact(app.engine, course)
    except DripError:
        return
    for cohort, notes in impact.items():
        say(f"running cohort '{cohort}':")
        for note in notes:
            say(f"  {note}")


@lessons.command("preview")
@click.argument("course")
@click.argument("slug")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML to this file.",
)
@click.option("--text", is_flag=True, help="Print the plain-text part instead of HTML.")
@click.option("--name", default="Alex Example", show_default=True, help="Recipient name to show.")
def lessons_preview(course: str, slug: str, output: Path | None, text: bool, name: str) -> None:
    """Render one lesson as the recipient would see it (links point nowhere).

    \b
    Example:
      drip lessons preview social-media-for-executives why-it-matters-now -o lesson.html
    """
    from drip.curriculum.load import load_course
    from drip.mail.build import LessonMail
    from drip.mail.render import Renderer

    s = settings()
    c = load_course(s.lessons_path, course)
    mail = LessonMail(Renderer(s.templates_path), s.sender, s.base_url, "preview", s.reply_to)
    html, plain = mail.preview(c, c.lesson(slug), name)
    write_output(plain if text else html, output)
