"""`drip cohort`: create, list, show, edit, rename, pause, resume, archive and delete cohorts,
and the calendar of what goes out when."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from drip.cli.base import (
    DripGroup,
    complete_cohort,
    complete_course,
    complete_email,
    console,
    emit,
    now_utc,
    open_app,
    output_options,
    quiet,
    say,
)


@click.group("cohort", cls=DripGroup)
def cohort() -> None:
    """Create, list, show, edit, rename, pause, resume, archive and delete cohorts; see the
    calendar of what goes out when.

    \b
    Example:
      drip cohort create leaders-q1 --course social-media-for-executives --start 2026-12-07
      drip cohort calendar leaders-q1 --days 7
    """


@cohort.command("create")
@click.argument("name")
@click.option(
    "--course",
    required=True,
    shell_complete=complete_course,
    help="Course slug (see drip lessons list).",
)
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
@click.option(
    "--sponsor",
    default="",
    help='Who asks people to take the course, for the welcome: "Anna Berg, CEO, asked ...".',
)
@click.option(
    "--welcome/--no-welcome",
    default=True,
    show_default=True,
    help="Send a welcome e-mail before the first lesson.",
)
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
    sponsor: str,
    welcome: bool,
) -> None:
    """Create a cohort that follows COURSE.

    \b
    Example:
      drip cohort create leaders-q1 --course social-media-for-executives \\
        --start 2026-12-07 --timezone Europe/London --send-time 07:30 --days mon-fri
    """
    from drip.curriculum.load import load_course
    from drip.people.cohorts import create_cohort

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
        sponsor=sponsor,
        welcome=welcome,
        now=now,
    )
    say(
        f"created cohort '{c.name}': {course}, from {c.start_date}, {c.send_days} at {c.send_time} "
        f"({c.timezone} unless a person has their own timezone), window until {c.window_end}"
    )


@cohort.command("list")
@click.option("--archived", is_flag=True, help="Also list archived cohorts.")
@output_options
def cohort_list(archived: bool, fmt: str) -> None:
    """List cohorts with their enrolment counts.

    \b
    Example:
      drip cohort list --format csv --excel > cohorts.csv
    """
    from drip.people.cohorts import list_cohorts

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
            "state": "archived"
            if r.cohort.archived
            else "paused"
            if r.cohort.paused
            else "running",
        }
        for r in list_cohorts(open_app().engine, archived)
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
@click.argument("name", shell_complete=complete_cohort)
@output_options
def cohort_show(name: str, fmt: str) -> None:
    """Show a cohort's settings, its start and expected end, and its people.

    \b
    Example:
      drip cohort show leaders-q1
    """
    from drip.curriculum.load import load_course
    from drip.db import session
    from drip.errors import DripError
    from drip.people.calendar import planned_end
    from drip.people.cohorts import get_cohort
    from drip.people.directory import list_people

    app = open_app()
    with session(app.engine) as db:
        c = get_cohort(db, name)
    try:
        lessons = len(load_course(app.settings.lessons_path, c.course).lessons)
        end: date | None = planned_end(c, lessons)
        length = f"{lessons} lessons"
    except DripError:
        end, length = None, "course cannot be loaded"
    if fmt == "table" and not quiet():
        console.print(
            f"cohort {c.name}: course {c.course} ({length}), start {c.start_date}, "
            f"expected end {end or 'unknown'}, {c.send_days} at {c.send_time} "
            f"until {c.window_end}, timezone {c.timezone}"
            + (f", skipping {c.skip_dates}" if c.skip_dates else "")
            + (", ARCHIVED" if c.archived else ", PAUSED" if c.paused else "")
            + (f", manager {c.manager_email}" if c.manager_email else ""),
            markup=False,
        )
    emit(
        [_person_row(p, e) for p, e, _ in list_people(app.engine, name)],
        fmt,
        title="people",
        columns=[
            "email",
            "name",
            "timezone",
            "status",
            "lessons_sent",
            "next_due_utc",
            "reason",
            "attributes",
        ],
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
        "attributes": p.attributes or {},
    }


@cohort.command("pause")
@click.argument("name", shell_complete=complete_cohort)
def cohort_pause(name: str) -> None:
    """Stop sending to a whole cohort until it is resumed.

    \b
    Example:
      drip cohort pause leaders-q1
    """
    from drip.people.cohorts import set_cohort_paused

    set_cohort_paused(open_app().engine, name, True, now_utc())
    say(f"cohort '{name}' paused")


@cohort.command("resume")
@click.argument("name", shell_complete=complete_cohort)
def cohort_resume(name: str) -> None:
    """Resume a paused cohort; everyone continues with their next lesson.

    \b
    Example:
      drip cohort resume leaders-q1
    """
    from drip.people.cohorts import set_cohort_paused

    set_cohort_paused(open_app().engine, name, False, now_utc())
    say(f"cohort '{name}' resumed")


@cohort.command("edit")
@click.argument("name", shell_complete=complete_cohort)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="A new first day of lessons.")
@click.option("--timezone", "tz", help="Timezone for people without their own.")
@click.option("--send-time", help="Local time of the daily lesson, like 07:30.")
@click.option("--days", help="Send days, like mon-fri or mon,wed,fri.")
@click.option("--window-end", help="Latest local time to send a late lesson.")
@click.option("--skip", help='Dates to skip, like 2026-12-24,2026-12-31 ("" for none).')
@click.option("--manager", help='Manager\'s e-mail address for the weekly digest ("" for none).')
def cohort_edit(
    name: str,
    start: datetime | None,
    tz: str | None,
    send_time: str | None,
    days: str | None,
    window_end: str | None,
    skip: str | None,
    manager: str | None,
) -> None:
    """Change a cohort's calendar or manager; everyone's next lesson moves to the new calendar
    (never two lessons on one day).

    \b
    Example:
      drip cohort edit leaders-q1 --send-time 08:00 --skip 2026-12-24,2026-12-31
    """
    from drip.people.cohorts import CohortEdit, edit_cohort

    edit = CohortEdit(
        start.date() if start else None, tz, send_time, days, window_end, skip, manager
    )
    _, said = edit_cohort(open_app().engine, name, edit, now_utc())
    say(f"cohort '{name}': " + ", ".join(said))


@cohort.command("rename")
@click.argument("name", shell_complete=complete_cohort)
@click.argument("new_name")
def cohort_rename(name: str, new_name: str) -> None:
    """Rename a cohort; its people, lessons and reports stay with it.

    \b
    Example:
      drip cohort rename "Leaders Q1" leaders-q1
    """
    from drip.people.cohorts import rename_cohort

    rename_cohort(open_app().engine, name, new_name)
    say(f"cohort '{name}' is now '{new_name.strip()}'")


@cohort.command("archive")
@click.argument("name", shell_complete=complete_cohort)
def cohort_archive(name: str) -> None:
    """Stop a cohort for good and hide it from drip cohort list; its reports stay.

    \b
    Example:
      drip cohort archive leaders-2025
    """
    from drip.people.cohorts import archive_cohort

    archive_cohort(open_app().engine, name)
    say(f"cohort '{name}' archived: it sends nothing more (drip cohort list --archived shows it)")


@cohort.command("delete")
@click.argument("name", shell_complete=complete_cohort)
def cohort_delete(name: str) -> None:
    """Delete a cohort that never sent a lesson (a mistyped one); otherwise archive it.

    \b
    Example:
      drip cohort delete leadres-q1
    """
    from drip.people.cohorts import delete_cohort

    gone = delete_cohort(open_app().engine, name)
    say(f"cohort '{name}' deleted with its {gone} enrolments")


@cohort.command("calendar")
@click.argument("name", shell_complete=complete_cohort)
@click.option("--person", "email", shell_complete=complete_email, help="Only this person.")
@click.option(
    "--days", type=click.IntRange(1, 400), default=14, show_default=True, help="Days ahead."
)
@output_options
def cohort_calendar(name: str, email: str | None, days: int, fmt: str) -> None:
    """Which lesson goes to whom and when, in each person's local time and in UTC, from now
    (or --now) for --days days: what the dispatcher will send if nothing changes.

    \b
    Example:
      drip cohort calendar leaders-q1 --days 7
      drip --now 2026-12-07T00:00Z cohort calendar leaders-q1 --person ann@example.com
    """
    from drip.curriculum.load import load_course
    from drip.db import session
    from drip.people.calendar import cohort_calendar as plan_calendar
    from drip.people.cohorts import get_cohort

    app = open_app()
    with session(app.engine) as db:
        c = get_cohort(db, name)
    course = load_course(app.settings.lessons_path, c.course)
    now = now_utc()
    planned = plan_calendar(app.engine, c, course, now, days=days, email=email)
    if c.paused and fmt == "table":
        say(f"cohort '{name}' is {'archived' if c.archived else 'paused'}: nothing goes out")
    rows = [
        {
            "local_date": p.local.date(),
            "local_time": p.local.strftime("%a %H:%M"),
            "timezone": p.timezone,
            "utc": p.at.strftime("%Y-%m-%d %H:%M") if fmt == "table" else p.at,
            "email": p.email,
            "name": p.name,
            "lesson": f"{p.position}. {p.title}" if fmt == "table" else p.slug,
            "number": f"{p.number} of {p.total}",
        }
        for p in planned
    ]
    emit(rows, fmt, title=f"{name}: the next {days} days from {now:%Y-%m-%d %H:%M} UTC",
         columns=["local_date", "local_time", "timezone", "utc", "email", "name", "lesson", "number"])  # fmt: skip
