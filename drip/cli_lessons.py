"""drip lessons list|check|preview and drip send-test."""

from __future__ import annotations

import secrets
from email.utils import parseaddr
from pathlib import Path

import click
from rich.text import Text

from drip.cli_base import (
    DripGroup,
    emit,
    err_console,
    now_utc,
    output_options,
    say,
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
    from drip.curriculum import course_slugs, load_course

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
    from drip.curriculum import course_slugs, inspect_course
    from drip.render import Renderer

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
    from drip.curriculum import load_course
    from drip.render import Renderer, recipient_keys

    s = settings()
    c = load_course(s.lessons_path, course)
    rendered = Renderer(s.templates_path).render(c, c.lesson(slug))
    values = {key: f"{s.base_url}/preview#{key.lower()}" for key in recipient_keys(rendered)}
    values["NAME"] = name
    html, plain = rendered.personalize(values)
    content = plain if text else html
    write_output(content, output)


@click.command("send-test")
@click.argument("course")
@click.argument("slug")
@click.option("--to", "to", required=True, help="Recipient address.")
@click.option("--name", default="", help="Recipient display name.")
def send_test(course: str, slug: str, to: str, name: str) -> None:
    """Send one lesson to one address through the configured transport."""
    from drip.curriculum import load_course
    from drip.message import MessageTemplate, new_message_id, sender_domain
    from drip.people_csv import valid_address
    from drip.render import Renderer
    from drip.tokens import link_values
    from drip.transports import Outcome, open_transport

    s = settings()
    address = valid_address(to)
    c = load_course(s.lessons_path, course)
    lesson = c.lesson(slug)
    rendered = Renderer(s.templates_path).render(c, lesson)
    template = MessageTemplate.of(rendered, s.sender)
    key = s.secret_key or secrets.token_urlsafe(32)
    options = len(lesson.check.options) if lesson.check else 0
    values = link_values(s.base_url, key, 0, options, len(rendered.links))
    values["NAME"] = name or "there"
    data = template.build(
        to_name=name,
        to_address=address,
        date=now_utc(),
        message_id=new_message_id(sender_domain(s.sender)),
        values=values,
    )
    transport = open_transport(s.mail_url, s.smtp_timeout)
    try:
        result = transport.send(parseaddr(s.sender)[1], address, data)
    finally:
        transport.close()
    if result.outcome is not Outcome.accepted:
        raise DripError(f"not sent to {address} via {transport.describe()}: {result}")
    say(f"sent '{lesson.title}' to {address} via {transport.describe()}: {result.reply}")
