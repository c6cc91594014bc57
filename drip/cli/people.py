"""`drip people`: list, show, pause, resume, unsubscribe, remove, move and correct people."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from drip.cli.base import (
    DripGroup,
    complete_cohort,
    complete_email,
    console,
    emit,
    now_utc,
    open_app,
    output_options,
    parse_now,
    quiet,
    say,
    warn,
)
from drip.cli.cohort import _person_row
from drip.errors import DripError


@click.group("people", cls=DripGroup)
def people() -> None:
    """List and show people; pause, resume, unsubscribe, remove, move or correct one.

    \b
    Example:
      drip people set ann@example.com --email ann.lee@example.com --timezone "Europe/Paris"
      drip people move bob@example.com --to leaders-q2
    """


@people.command("list")
@click.option("--cohort", "cohort_name", shell_complete=complete_cohort, help="Only this cohort.")
@output_options
def people_list(cohort_name: str | None, fmt: str) -> None:
    """List people with their status and progress.

    \b
    Example:
      drip people list --cohort leaders-q1 --format csv --excel > people.csv
    """
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
        columns=[
            "email",
            "name",
            "cohort",
            "status",
            "lessons_sent",
            "next_due_utc",
            "reason",
            "attributes",
        ],
    )


@people.command("show")
@click.argument("email", shell_complete=complete_email)
@output_options
def people_show(email: str, fmt: str) -> None:
    """Show one person: each enrolment, its status and why.

    \b
    Example:
      drip people show ann@example.com
    """
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
            "start_lesson": len(e.skipped or ()) + 1,
        }
        for e, c in view.enrollments
    ]
    if fmt == "table" and not quiet():
        person = view.person
        console.print(
            f"{person.name} <{person.email}>, timezone {person.timezone or '(cohort)'}",
            markup=False,
        )
        for key, value in sorted((person.attributes or {}).items()):
            console.print(f"  {key}: {value}", markup=False)
    columns = ["cohort", "course", "status", "lessons_sent", "last_lesson_on", "next_due_utc"]
    # The terminal gives each reason a line of its own, in full, once; CSV and JSON a column.
    extra = [] if fmt == "table" else ["reason", "start_lesson"]
    emit(rows, fmt, title="enrolments", columns=columns + extra)
    if fmt == "table":
        for e, c in view.enrollments:
            if e.skipped:
                gone = len(e.skipped)
                say(
                    f"{c.name}: started at lesson {gone + 1} "
                    f"(catch-up, {gone} skipped: {', '.join(e.skipped)})"
                )
            if e.status_reason and e.status != "active":
                say(f"{c.name}: {e.status}: {e.status_reason}")


def _people_action(action: str, past: str) -> Callable[..., None]:
    @click.argument("email", shell_complete=complete_email)
    @click.option(
        "--cohort",
        "cohort_name",
        shell_complete=complete_cohort,
        help="Only this cohort (default: all of theirs).",
    )
    def command(email: str, cohort_name: str | None) -> None:
        from drip.people.directory import change_person

        results = change_person(
            open_app().engine, email, action, now=now_utc(), cohort_name=cohort_name
        )
        for name, what in results:  # "paused", or why it does not apply in that cohort
            say(f"{email} in '{name}': {what}")

    command.__doc__ = {
        "pause": "Pause a person's lessons until resumed.",
        "resume": "Resume a paused, bounced, held or removed person with their next lesson.",
        "unsubscribe": "Unsubscribe a person; they get no more lessons.",
        "resubscribe": "Undo an unsubscribe: the person continues with their next lesson.",
    }[action] + f"\n\n\b\nExample:\n  drip people {action} ann@example.com --cohort leaders-q1"
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
    """Resume a paused or bounced person with their next lesson, or everyone bounced since a time.

    \b
    Example:
      drip people resume ann@example.com
      drip people resume --bounced-since 2027-01-05T08:00:00Z
    """
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
    """Set a person's timezone (an IANA name); enrolments held for a bad one are released.

    \b
    Example:
      drip people set-timezone ann@example.com Europe/Paris
    """
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
    """Make a person's certificate of completion again, as a PDF (drip people certificate ada@example.com -o ada.pdf).

    \b
    Example:
      drip people certificate ada@example.com -o ada.pdf
    """
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


@people.command("remove")
@click.argument("email", shell_complete=complete_email)
@click.option(
    "--cohort",
    "cohort_name",
    shell_complete=complete_cohort,
    help="Only this cohort (default: all of theirs).",
)
def people_remove(email: str, cohort_name: str | None) -> None:
    """Take a person out of their cohorts: no more lessons; what they did stays in the reports.

    \b
    Example:
      drip people remove carl@example.com --cohort leaders-q1
    """
    from drip.people.directory import remove_person

    for name in remove_person(open_app().engine, email, now=now_utc(), cohort_name=cohort_name):
        say(f"{email} removed from '{name}' (history kept; drip people resume brings them back)")


@people.command("move")
@click.argument("email", shell_complete=complete_email)
@click.option(
    "--to", "to_cohort", required=True, shell_complete=complete_cohort, help="The new cohort."
)
@click.option(
    "--from",
    "from_cohort",
    shell_complete=complete_cohort,
    help="The cohort they leave, when they are in several.",
)
def people_move(email: str, to_cohort: str, from_cohort: str | None) -> None:
    """Move a person to another cohort of the same course, keeping what they have received and
    done; their next lesson follows the new cohort's calendar.

    \b
    Example:
      drip people move bob@example.com --to leaders-q2
    """
    from drip.people.directory import move_person

    source, target = move_person(
        open_app().engine, email, to_cohort, now=now_utc(), from_cohort=from_cohort
    )
    say(f"{email} moved from '{source}' to '{target}'")


@people.command("set")
@click.argument("email", shell_complete=complete_email)
@click.option("--email", "new_email", help="A corrected e-mail address.")
@click.option("--name", help="A corrected name.")
@click.option(
    "--timezone",
    help='Their timezone: IANA (Europe/Paris) or Windows ("Romance Standard Time"); "" for the cohort\'s.',
)
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an attribute like Department=Sales (KEY= removes it). Repeatable.",
)
def people_set(
    email: str,
    new_email: str | None,
    name: str | None,
    timezone: str | None,
    attrs: tuple[str, ...],
) -> None:
    """Correct a person's e-mail, name, timezone or attributes; their deliveries, answers and
    next lesson stay theirs, and a new timezone moves their next lesson to their new morning.

    \b
    Example:
      drip people set ann@example.com --email ann.lee@example.com
      drip people set bob@example.com --timezone America/Denver --attr Department=Sales
    """
    from drip.errors import InputError
    from drip.people.directory import PersonChange, set_person

    attributes: dict[str, str] = {}
    for pair in attrs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError([f"--attr '{pair}' is not KEY=VALUE, like Department=Sales"])
        attributes[key.strip()] = value.strip()
    app = open_app()
    said = set_person(
        app.engine,
        email,
        PersonChange(new_email, name, timezone, attributes),
        now=now_utc(),
        special_use=app.settings.special_use,
    )
    for line in said:
        if line.startswith("warning: "):
            warn(line.removeprefix("warning: "))
        else:
            say(f"{email}: {line}")
