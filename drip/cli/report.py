"""The `drip report` and `drip log` commands: thin shells over drip.reports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drip.errors import DripError

if TYPE_CHECKING:
    from drip.reports.queries import CohortReport

# The sections of a cohort report (drip.reports.queries.SECTIONS; a test keeps them equal),
# spelled out so that `drip --help` does not load the database layer.
SECTIONS = ("summary", "lessons", "people", "activity", "progress")

PERCENT = ("open_rate_human", "open_rate_all", "average_progress")
SUMMARY_COLUMNS = [
    "cohort", "course", "enrolled", "active", "paused", "completed", "unsubscribed", "bounced",
    "lessons_sent", "open_rate_human", "open_rate_all", "confirmed", "answered_right",
    "average_progress", "on_track", "behind", "unreachable", "questions",
]  # fmt: skip
TIMELINE_COLUMNS = ["at", "cohort", "kind", "position", "lesson", "method", "verdict", "reason"]
# Terminal tables: (field, heading); CSV and JSON keep every field under its own name.
TERMINAL_COLUMNS = {
    "lessons": [
        ("position", "#"), ("title", "lesson"), ("sent", "sent"), ("opened_human", "opened"),
        ("opened_all", "all opens"), ("confirmed", "got it"), ("answered_right", "right"),
        ("answered", "answered"), ("unsubscribed_after", "unsubscribed after"),
    ],
    "people": [
        ("email", "email"), ("status", "status"), ("progress", "progress"), ("opened", "opened"),
        ("confirmed", "got it"), ("last_activity", "last activity"), ("behind", "behind"),
        ("unreachable", "unreachable"),
    ],
}  # fmt: skip


def _shown(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in PERCENT:
        return f"{value:.0%}"
    if isinstance(value, bool):
        return "yes" if value else ""
    if key in ("at", "last_activity") and isinstance(value, str):
        return value[:16].replace("T", " ")
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=Text(title), title_justify="left")
    for key, heading in columns:
        sample = rows[0].get(key) if rows else None
        numeric = isinstance(sample, int | float) and not isinstance(sample, bool)
        table.add_column(heading, justify="right" if numeric else "left",
                         no_wrap=key in ("email", "at", "last_activity", "progress"))  # fmt: skip
    for row in rows:
        table.add_row(*(Text(_shown(key, row.get(key))) for key, _ in columns))
    return table


def _plain(columns: list[str]) -> list[tuple[str, str]]:
    return [(c, c.replace("_", " ")) for c in columns]


def _tables(report: CohortReport, sections: Iterable[str]) -> Iterator[Any]:
    """The rich renderables of a report's sections, for the terminal."""
    s = report.summary
    mode = "opens by people" if report.human_only else "all opens"
    from drip.reports.queries import section_rows

    for section in sections:
        rows = section_rows(report, section)
        if section == "summary":
            summary = Table(title=Text(f"{s.cohort}: {s.course_title} ({mode})"), title_justify="left",
                            show_header=False)  # fmt: skip
            summary.add_column("figure")
            summary.add_column("value", justify="right")
            for key, value in rows[0].items():
                if key not in ("cohort", "course", "course_title"):
                    summary.add_row(key.replace("_", " "), Text(_shown(key, value)))
            yield summary
        else:
            columns = TERMINAL_COLUMNS.get(section) or _plain(list(rows[0]) if rows else [])
            yield _table(rows, columns, section)


def _write(text: str, output: Path | None) -> None:
    from drip.cli.base import write_output

    write_output(text, output)


def _render(renderables: Iterable[Any], output: Path | None) -> None:
    if output is None:
        from drip.cli.base import console

        for item in renderables:
            console.print(item)
        return
    try:
        handle = output.open("w", encoding="utf-8")
    except OSError as exc:
        raise DripError(
            f"cannot write {output}: {exc.strerror}; pick a folder that exists"
        ) from None
    with handle:
        file_console = Console(file=handle, width=140, highlight=False, soft_wrap=True)
        for item in renderables:
            file_console.print(item)
    from drip.cli.base import say

    say(f"wrote {output}")


@click.command("report")
@click.argument("cohort", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html", "lms"]),
              default="table", show_default=True,
              help="Output format; lms: the completion CSV an LMS imports.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of the terminal.")  # fmt: skip
@click.option("--human-only/--all", "human_only", default=True, show_default=True,
              help="Count only opens judged to be people (default), or every open.")  # fmt: skip
@click.option("--person", "email", help="Show this person's events instead, oldest first.")
@click.option("--section", type=click.Choice(SECTIONS),
              help="Only this part of a cohort's report (CSV default: people).")  # fmt: skip
def report_cmd(
    cohort: str | None,
    fmt: str,
    output: Path | None,
    human_only: bool,
    email: str | None,
    section: str | None,
) -> None:
    """Report completion: every cohort, one COHORT in detail, or one --person's timeline."""
    from drip.cli.base import now_utc, open_app
    from drip.reports.log import person_timeline
    from drip.reports.queries import (
        as_dict,
        cohort_report,
        cohort_summaries,
        report_json,
        section_rows,
    )

    app = open_app()
    lessons = app.settings.lessons_path
    if email:
        if fmt in ("html", "lms"):
            raise click.UsageError(
                f"--person has no {fmt.upper()} form; use --format table, csv or json"
            )
        rows = [as_dict(e) for e in person_timeline(app.engine, email, cohort)]
        _emit(rows, TIMELINE_COLUMNS, fmt, output, f"events of {email.strip().lower()}")
        return
    if cohort is None:
        if fmt in ("html", "lms"):
            raise click.UsageError(
                f"name a COHORT for the {fmt.upper()} report; see drip cohort list"
            )
        summaries = cohort_summaries(app.engine, lessons, now_utc(), human_only=human_only)
        _emit([as_dict(s) for s in summaries], SUMMARY_COLUMNS, fmt, output, "cohorts")
        return
    if fmt == "lms":
        from drip.reports.lms import completions, completions_csv

        attribute = app.settings.xapi_account_attribute
        _write(completions_csv(completions(app.engine, cohort, attribute)), output)
        return
    report = cohort_report(app.engine, cohort, lessons, now_utc(), human_only=human_only)
    if fmt == "html":
        from drip.reports.html import render_html

        _write(render_html(report, app.settings.templates_path), output)
    elif fmt == "json":
        _write(report_json(report) if section is None
               else json.dumps(section_rows(report, section), indent=2, ensure_ascii=False), output)  # fmt: skip
    elif fmt == "csv":
        from drip.reports.queries import rows_csv

        _write(rows_csv(section_rows(report, section or "people")), output)
    else:
        _render(_tables(report, [section] if section else ["summary", "lessons", "people"]), output)


def _emit(
    rows: list[dict[str, Any]], columns: list[str], fmt: str, output: Path | None, title: str
) -> None:
    from drip.reports.queries import rows_csv

    if fmt == "json":
        _write(json.dumps(rows, indent=2, ensure_ascii=False), output)
    elif fmt == "csv":
        _write(rows_csv(rows, columns), output)
    else:
        _render([_table(rows, _plain(columns), title)], output)
