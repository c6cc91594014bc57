"""`drip enroll`: enrol the people of an HR file (CSV, tab-separated, UTF-16 or .xlsx) into a cohort."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import Progress

from drip.cli.base import (
    DripCommand,
    err_console,
    now_utc,
    open_app,
    quiet,
    say,
    warn,
)


@click.command("enroll", cls=DripCommand)
@click.argument("cohort_name", metavar="COHORT", shell_complete=None)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Check the file and say what would happen; write nothing."
)
@click.option(
    "--map",
    "pairs",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Read COLUMN as FIELD (email, name, first_name, last_name, timezone, or ignore). Repeatable.",
)
@click.option(
    "--catch-up/--from-start",
    "catch_up",
    default=None,
    help="People joining a running cohort start at the lesson it is on (the ones before are "
    "skipped, one lesson a day as ever), or at lesson 1. Default: the course's late_joiners.",
)
def enroll(
    cohort_name: str, file: Path, dry_run: bool, pairs: tuple[str, ...], catch_up: bool | None
) -> None:
    """Enrol the people in FILE into COHORT, all or nothing.

    FILE is CSV (comma, semicolon or tab; UTF-8 or Excel's UTF-16 "Unicode Text") or .xlsx. Headers
    such as "Email Address", "Work Email", "Full Name", "First Name"/"Last Name" and "Time Zone"
    are understood; Windows zone names like "Eastern Standard Time" too. Every other column
    (Employee ID, Department...) is kept with the person and carried into every export.

    \b
    Example:
      drip enroll leaders-q1 hr-export.xlsx --dry-run
      drip enroll leaders-q1 hr-export.csv --map "Courriel=email"
      drip enroll leaders-q1 late-joiners.csv --catch-up
    """
    from drip.curriculum.load import Catalog
    from drip.people.csv import parse_map
    from drip.people.enroll import enroll_csv

    app = open_app()
    mapping = parse_map(pairs)
    show_bar = not quiet() and file.exists() and file.stat().st_size > 200_000
    with Progress(console=err_console, disable=not show_bar, transient=True) as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = enroll_csv(
            app.engine,
            cohort_name,
            file,
            now=now_utc(),
            dry_run=dry_run,
            mapping=mapping,
            special_use=app.settings.special_use,
            progress=advance,
            course=Catalog(app.settings.lessons_path).get,
            catch_up=catch_up,
        )
    for message in result.refused:
        err_console.print(message, markup=False, soft_wrap=True)
    for note in result.notes:
        say(note)
    for warning in result.warnings:
        warn(warning)
    verb = "would enrol" if dry_run else "enrolled"
    left_out = f", {result.suppressed} left out" if result.suppressed else ""
    say(
        f"{verb} {result.enrolled} of {result.rows} people in '{cohort_name}' "
        f"({result.new_people} new, {result.already} already enrolled and skipped{left_out}"
        + (f", {len(result.refused)} suppressed and refused" if result.refused else "")
        + ")"
    )
