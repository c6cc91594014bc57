"""drip cohort ..., drip enroll and drip people ...."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from drip.cli_base import (
    DripGroup,
    console,
    emit,
    err_console,
    now_utc,
    open_app,
    output_options,
    quiet,
    say,
)


@click.group("cohort", cls=DripGroup)
def cohort() -> None:
    """Create, list, show, pause and resume cohorts."""


@cohort.command("create")
@click.argument("name")
@click.option("--course", required=True, help="Course slug (see drip lessons list).")
@click.option(
    "--start", type=click.DateTime(["%Y-%m-%d"]), help="First day of lessons (default today)."
)
@click.option(
    "--timezone",
    "tz",
    default="UTC",
    show_default=True,
    help="Timezone for people without their own.",
)
@click.option(
    "--send-time", default="07:30", show_default=True, help="Local time of the daily lesson."
)
@click.option(
    "--days", default="mon-fri", show_default=True, help="Send days, like mon-fri or mon,wed,fri."
)
@click.option(
    "--window-end",
    default="18:00",
    show_default=True,
    help="Latest local time to send a late lesson.",
)
@click.option("--skip", default="", help="Dates to skip, like 2026-12-24,2026-12-31.")
@click.option("--manager", default=None, help="Manager's e-mail address for the weekly digest.")
def cohort_create(
    name: str,
    course: str,
    start: datetime | None,
    tz: str,
    send_time: str,
    days: str,
    window_end: str,
    skip: str,
    manager: str | None,
) -> None:
    """Create a cohort that follows COURSE."""
    from drip.curriculum import load_course
    from drip.enrollment import create_cohort

    app = open_app()
    load_course(app.settings.lessons_path, course)
    now = now_utc()
    c = create_cohort(
        app.engine,
        name=name,
        course=course,
        start=start.date() if start else now.date(),
        timezone=tz,
        send_time=send_time,
        days=days,
        window_end=window_end,
        skip=skip,
        manager=manager,
        now=now,
    )
    say(
        f"created cohort '{c.name}': {course}, from {c.start_date}, {c.send_days} at {c.send_time} "
        f"({c.timezone} unless a person has their own timezone), window until {c.window_end}"
    )


@cohort.command("list")
@output_options
def cohort_list(fmt: str) -> None:
    """List cohorts with their enrolment counts."""
    from drip.enrollment import list_cohorts

    rows = [
        {
            "cohort": r.cohort.name,
            "course": r.cohort.course,
            "start": r.cohort.start_date,
            "enrolled": r.enrolled,
            "active": r.counts.get("active", 0),
            "paused": r.counts.get("paused", 0),
            "completed": r.counts.get("completed", 0),
            "unsubscribed": r.counts.get("unsubscribed", 0),
            "bounced": r.counts.get("bounced", 0),
            "state": "paused" if r.cohort.paused else "running",
        }
        for r in list_cohorts(open_app().engine)
    ]
    emit(
        rows,
        fmt,
        title="cohorts",
        columns=[
            "cohort",
            "course",
            "start",
            "enrolled",
            "active",
            "paused",
            "completed",
            "unsubscribed",
            "bounced",
            "state",
        ],
    )


@cohort.command("show")
@click.argument("name")
@output_options
def cohort_show(name: str, fmt: str) -> None:
    """Show a cohort's settings and its people."""
    from drip.db import session
    from drip.enrollment import get_cohort, list_people

    app = open_app()
    with session(app.engine) as db:
        c = get_cohort(db, name)
    if fmt == "table" and not quiet():
        console.print(
            f"cohort {c.name}: course {c.course}, start {c.start_date}, {c.send_days} at {c.send_time} "
            f"until {c.window_end}, timezone {c.timezone}"
            + (f", skipping {c.skip_dates}" if c.skip_dates else "")
            + (", PAUSED" if c.paused else "")
            + (f", manager {c.manager_email}" if c.manager_email else ""),
            markup=False,
        )
    emit(
        [_person_row(p, e) for p, e, _ in list_people(app.engine, name)],
        fmt,
        title="people",
        columns=["email", "name", "timezone", "status", "lessons_sent", "next_due_utc", "reason"],
    )


def _person_row(p: Any, e: Any) -> dict[str, Any]:
    return {
        "email": p.email,
        "name": p.name,
        "timezone": p.timezone or "",
        "status": e.status,
        "lessons_sent": e.lessons_sent,
        "next_due_utc": e.next_due_at.strftime("%Y-%m-%d %H:%M") if e.next_due_at else "",
        "reason": e.status_reason,
    }


@cohort.command("pause")
@click.argument("name")
def cohort_pause(name: str) -> None:
    """Stop sending to a whole cohort until it is resumed."""
    from drip.enrollment import set_cohort_paused

    set_cohort_paused(open_app().engine, name, True, now_utc())
    say(f"cohort '{name}' paused")


@cohort.command("resume")
@click.argument("name")
def cohort_resume(name: str) -> None:
    """Resume a paused cohort; everyone continues with their next lesson."""
    from drip.enrollment import set_cohort_paused

    set_cohort_paused(open_app().engine, name, False, now_utc())
    say(f"cohort '{name}' resumed")


@click.command("enroll")
@click.argument("cohort_name", metavar="COHORT")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and report, writing nothing.")
def enroll(cohort_name: str, file: Path, dry_run: bool) -> None:
    """Enrol the people in FILE.csv (email,name[,timezone]) into COHORT, all or nothing."""
    from drip.enrollment import enroll_csv

    app = open_app()
    show_bar = not quiet() and file.exists() and file.stat().st_size > 200_000
    with Progress(console=err_console, disable=not show_bar, transient=True) as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = enroll_csv(
            app.engine, cohort_name, file, now=now_utc(), dry_run=dry_run, progress=advance
        )
    verb = "would enrol" if dry_run else "enrolled"
    say(
        f"{verb} {result.enrolled} of {result.rows} people in '{cohort_name}' "
        f"({result.new_people} new, {result.already} already enrolled and skipped)"
    )


@click.group("people", cls=DripGroup)
def people() -> None:
    """List and show people; pause, resume or unsubscribe one."""


@people.command("list")
@click.option("--cohort", "cohort_name", help="Only this cohort.")
@output_options
def people_list(cohort_name: str | None, fmt: str) -> None:
    """List people with their status and progress."""
    from drip.enrollment import list_people

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
    from drip.enrollment import get_person

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
        from drip.enrollment import change_person

        results = change_person(
            open_app().engine, email, action, now=now_utc(), cohort_name=cohort_name
        )
        for name, changed in results:
            say(
                f"{email} in '{name}': {past}"
                if changed
                else f"{email} in '{name}': unchanged (not {action}able now)"
            )

    command.__doc__ = {
        "pause": "Pause a person's lessons until resumed.",
        "resume": "Resume a paused or bounced person with their next lesson.",
        "unsubscribe": "Unsubscribe a person; they get no more lessons.",
    }[action]
    return command


for _action, _past in (("pause", "paused"), ("resume", "resumed"), ("unsubscribe", "unsubscribed")):
    people.command(_action)(_people_action(_action, _past))
