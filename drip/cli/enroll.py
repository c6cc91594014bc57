"""`drip enroll`: enrol people from a CSV file into a cohort."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import Progress

from drip.cli.base import (
    err_console,
    now_utc,
    open_app,
    quiet,
    say,
)


@click.command("enroll")
@click.argument("cohort_name", metavar="COHORT")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and report, writing nothing.")
def enroll(cohort_name: str, file: Path, dry_run: bool) -> None:
    """Enrol the people in FILE.csv (email,name[,timezone]) into COHORT, all or nothing."""
    from drip.people.enroll import enroll_csv

    app = open_app()
    show_bar = not quiet() and file.exists() and file.stat().st_size > 200_000
    with Progress(console=err_console, disable=not show_bar, transient=True) as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = enroll_csv(
            app.engine, cohort_name, file, now=now_utc(), dry_run=dry_run, progress=advance
        )
    for message in result.refused:
        err_console.print(message, markup=False, soft_wrap=True)
    verb = "would enrol" if dry_run else "enrolled"
    say(
        f"{verb} {result.enrolled} of {result.rows} people in '{cohort_name}' "
        f"({result.new_people} new, {result.already} already enrolled and skipped"
        + (f", {len(result.refused)} suppressed and refused" if result.refused else "")
        + ")"
    )
