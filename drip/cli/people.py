"""`drip people`: list, show, pause, resume and unsubscribe people."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from drip.cli.base import (
    DripGroup,
    console,
    emit,
    now_utc,
    open_app,
    output_options,
    parse_now,
    quiet,
    say,
)
from drip.cli.cohort import _person_row
from drip.errors import DripError


@click.group("people", cls=DripGroup)
def people() -> None:
    """List and show people; pause, resume or unsubscribe one."""


@people.command("list")
@click.option("--cohort", "cohort_name", help="Only this cohort.")
@output_options
def people_list(cohort_name: str | None, fmt: str) -> None:
    """List people with their status and progress."""
    from drip.people.directory import list_people

    rows = []
    for p, e, c in list_people(open_app().engine, cohort_name):
        row = _person_row(p, e)
        row["cohort"] = c.name
        rows.append(row)
    emit(
        rows,
        fmt,
        title="people",
        columns=["email", "name", "cohort", "status", "lessons_sent", "next_due_utc", "reason"],
    )


@people.command("show")
@click.argument("email")
@output_options
def people_show(email: str, fmt: str) -> None:
    """Show one person: each enrolment, its status and why."""
    from drip.people.directory import get_person

    view = get_person(open_app().engine, email)
    rows = [
        {
            "cohort": c.name,
            "course": c.course,
            "status": e.status,
            "lessons_sent": e.lessons_sent,
            "last_lesson_on": e.last_sent_on or "",
            "next_due_utc": e.next_due_at.strftime("%Y-%m-%d %H:%M") if e.next_due_at else "",
            "reason": e.status_reason,
        }
        for e, c in view.enrollments
    ]
    if fmt == "table" and not quiet():
        console.print(
            f"{view.person.name} <{view.person.email}>, timezone {view.person.timezone or '(cohort)'}",
            markup=False,
        )
    emit(
        rows,
        fmt,
        title="enrolments",
        columns=[
            "cohort",
            "course",
            "status",
            "lessons_sent",
            "last_lesson_on",
            "next_due_utc",
            "reason",
        ],
    )
    if fmt == "table":
        for e, c in view.enrollments:
            if e.status_reason and e.status != "active":
                say(f"{c.name}: {e.status}: {e.status_reason}")


def _people_action(action: str, past: str) -> Callable[..., None]:
    @click.argument("email")
    @click.option("--cohort", "cohort_name", help="Only this cohort (default: all of theirs).")
    def command(email: str, cohort_name: str | None) -> None:
        from drip.people.directory import change_person

        results = change_person(
            open_app().engine, email, action, now=now_utc(), cohort_name=cohort_name
        )
        for name, what in results:  # "paused", or why it does not apply in that cohort
            say(f"{email} in '{name}': {what}")

    command.__doc__ = {
        "pause": "Pause a person's lessons until resumed.",
        "resume": "Resume a paused or bounced person with their next lesson.",
        "unsubscribe": "Unsubscribe a person; they get no more lessons.",
        "resubscribe": "Undo an unsubscribe: the person continues with their next lesson.",
    }[action]
    return command


for _action, _past in (
    ("pause", "paused"),
    ("unsubscribe", "unsubscribed"),
    ("resubscribe", "resubscribed"),
):
    people.command(_action)(_people_action(_action, _past))


@people.command("resume")
@click.argument("email", required=False)
@click.option("--cohort", "cohort_name", help="Only this cohort (default: all of theirs).")
@click.option(
    "--bounced-since",
    "since_text",
    help="Instead of one person: everyone bounced at or after this ISO time (undo a wave).",
)
def people_resume(email: str | None, cohort_name: str | None, since_text: str | None) -> None:
    """Resume a paused or bounced person with their next lesson, or everyone bounced since a time."""
    if since_text is None:
        if not email:
            raise click.UsageError("name a person (EMAIL) or give --bounced-since TIME")
        _people_action("resume", "resumed")(email, cohort_name)
        return
    if email or cohort_name:
        raise click.UsageError("--bounced-since resumes everyone bounced since then; drop EMAIL")
    from drip.people.directory import resume_bounced_since

    resumed = resume_bounced_since(open_app().engine, parse_now(since_text), now=now_utc())
    for address, name in resumed:
        say(f"{address} in '{name}': resumed")
    say(f"resumed {len(resumed)} enrolment(s) bounced since {since_text}")


@people.command("set-timezone")
@click.argument("email")
@click.argument("zone")
def people_set_timezone(email: str, zone: str) -> None:
    """Set a person's timezone (an IANA name); enrolments held for a bad one are released."""
    from drip.people.directory import set_timezone

    released = set_timezone(open_app().engine, email, zone, now=now_utc())
    say(f"{email}: timezone {zone}")
    for name in released:
        say(f"{email} in '{name}': released")


@people.command("certificate")
@click.argument("email")
@click.option("--cohort", "cohort_name", help="The cohort, when the person completed several.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the PDF to this file.",
)
def people_certificate(email: str, cohort_name: str | None, output: Path) -> None:
    """Make a person's certificate of completion again, as a PDF (drip people certificate ada@example.com -o ada.pdf)."""
    from drip.reports.certificate import person_certificate

    app = open_app()
    pdf, cohort = person_certificate(
        app.engine, email, app.settings.lessons_path, now_utc(), cohort_name
    )
    try:
        output.write_bytes(pdf)
    except OSError as exc:
        raise DripError(f"cannot write {output}: {exc.strerror}; choose another file") from None
    say(f"certificate of {email.strip().lower()} ({cohort}) written to {output}")
