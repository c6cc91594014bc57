"""`drip cohort`: create, list, show, pause and resume cohorts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from drip.cli.base import (
    DripGroup,
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
    """Create a cohort that follows COURSE."""
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
@output_options
def cohort_list(fmt: str) -> None:
    """List cohorts with their enrolment counts."""
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
    from drip.people.cohorts import get_cohort
    from drip.people.directory import list_people

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
    from drip.people.cohorts import set_cohort_paused

    set_cohort_paused(open_app().engine, name, True, now_utc())
    say(f"cohort '{name}' paused")


@cohort.command("resume")
@click.argument("name")
def cohort_resume(name: str) -> None:
    """Resume a paused cohort; everyone continues with their next lesson."""
    from drip.people.cohorts import set_cohort_paused

    set_cohort_paused(open_app().engine, name, False, now_utc())
    say(f"cohort '{name}' resumed")
