"""drip lessons list|check|preview and drip send-test."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from drip.cli.base import (
    DripGroup,
    emit,
    err_console,
    output_options,
    settings,
    write_output,
)
from drip.errors import DripError


@click.group("lessons", cls=DripGroup)
def lessons() -> None:
    """List, check and preview courses and lessons."""


@lessons.command("list")
@click.argument("course", required=False)
@output_options
def lessons_list(course: str | None, fmt: str) -> None:
    """List the courses, or the lessons of COURSE in order."""
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
    """Validate every lesson; list each problem with file and line, or print a table of lessons."""
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
                "n": lesson.number,
                "slug": lesson.slug,
                "title": lesson.title,
                "words": lesson.words,
                "minutes": lesson.minutes,
                "check": "yes" if lesson.check else "no",
            }
            for lesson in loaded.lessons
        ]
        if not failed:
            emit(
                rows,
                fmt,
                title=f"{loaded.title} ({slug}): {len(rows)} lessons, "
                f"{sum(lesson.words for lesson in loaded.lessons)} words",
            )
    if failed:
        raise click.exceptions.Exit(1)


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
    """Render one lesson as the recipient would see it (links point nowhere)."""
    from drip.curriculum.load import load_course
    from drip.mail.build import LessonMail
    from drip.mail.render import Renderer

    s = settings()
    c = load_course(s.lessons_path, course)
    mail = LessonMail(Renderer(s.templates_path), s.sender, s.base_url, "preview", s.reply_to)
    html, plain = mail.preview(c, c.lesson(slug), name)
    write_output(plain if text else html, output)
