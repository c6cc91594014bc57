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

from drip.cli.base import DripCommand, complete_cohort, complete_email
from drip.errors import DripError

if TYPE_CHECKING:
    from drip.reports.model import CohortReport

# The sections of a cohort report (drip.reports.sections.SECTIONS; a test keeps them equal),
# spelled out so that `drip --help` does not load the database layer.
SECTIONS = ("summary", "lessons", "people", "activity", "progress")

PAGE = 100  # people per page of --people all in the terminal
SUMMARY_COLUMNS = [
    "cohort", "course", "enrolled", "active", "paused", "completed", "unsubscribed", "bounced",
    "lessons_sent", "open_rate_human", "open_rate_all", "confirmed", "answered_right",
    "average_progress", "on_track", "behind", "unreachable", "questions",
]  # fmt: skip
SUMMARY_TERMINAL = [
    "cohort", "enrolled", "active", "completed", "lessons_sent",
    "open_rate_human", "average_progress", "behind", "unreachable",
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
    from drip.reports.export import table_text

    if key in ("at", "last_activity") and isinstance(value, str):
        return value[:16].replace("T", " ")
    return table_text(key, value)


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


def _tables(
    report: CohortReport, sections: Iterable[str], people: str = "behind", page: int = 1
) -> Iterator[Any]:
    """The rich renderables of a report's sections, for the terminal."""
    s = report.summary
    mode = "opens by people" if report.human_only else "all opens"
    from drip.reports.sections import section_rows

    for section in sections:
        if section == "summary":
            rows = section_rows(report, section)
            # The name on its own line: a table title would be cut at the table's width.
            yield Text(f"{s.cohort}: {s.course_title} ({mode})")
            summary = Table(show_header=False)
            summary.add_column("figure")
            summary.add_column("value", justify="right")
            for key, value in rows[0].items():
                if key not in ("cohort", "course", "course_title"):
                    summary.add_row(key.replace("_", " "), Text(_shown(key, value)))
            yield summary
        elif section == "people":
            yield from _people_tables(report, people, page)
        else:
            rows = section_rows(report, section)
            columns = TERMINAL_COLUMNS.get(section) or _plain(list(rows[0]) if rows else [])
            yield _table(rows, columns, section)


def _people_tables(report: CohortReport, people: str, page: int) -> Iterator[Any]:
    from drip.reports.sections import as_dict

    everyone = report.people
    enrolled = report.summary.enrolled
    if people == "none":
        return
    if people == "behind":
        behind = report.behind
        if not behind:
            yield Text(f"nobody is behind ({enrolled:,} people; --people all lists them)")
            return
        chosen, title = behind, f"people behind ({len(behind):,} of {enrolled:,})"
    else:
        chosen, title = everyone, f"people ({len(everyone):,})"
    pages = max(1, -(-len(chosen) // PAGE))
    page = min(max(page, 1), pages)
    shown = chosen[(page - 1) * PAGE : page * PAGE]
    if pages > 1:
        title += f", page {page} of {pages}"
    yield _table([as_dict(p) for p in shown], TERMINAL_COLUMNS["people"], title)
    if page < pages:
        yield Text(f"next: --page {page + 1} (or --format csv for everyone)")


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


@click.command("report", cls=DripCommand)
@click.argument("cohort", required=False, shell_complete=complete_cohort)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html", "lms"]),
              default="table", show_default=True,
              help="Output format; lms: the completion CSV an LMS imports.")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of the terminal.")  # fmt: skip
@click.option("--excel", is_flag=True,
              help="CSV for Excel: with a UTF-8 byte-order mark, so accents show right.")  # fmt: skip
@click.option("--human-only/--all", "human_only", default=True, show_default=True,
              help="Count only opens judged to be people (default), or every open.")  # fmt: skip
@click.option("--person", "email", shell_complete=complete_email,
              help="Show this person's events instead, oldest first.")  # fmt: skip
@click.option("--section", type=click.Choice(SECTIONS),
              help="Only this part of a cohort's report (CSV default: people).")  # fmt: skip
@click.option("--by", "attribute", metavar="ATTRIBUTE",
              help="Figures per value of a person attribute from the HR file, like Department.")  # fmt: skip
@click.option("--people", "people", type=click.Choice(["behind", "all", "none"]), default="behind",
              show_default=True, help="Which people the terminal table lists.")  # fmt: skip
@click.option("--page", type=click.IntRange(1), default=1, show_default=True,
              help=f"Page of --people all, {PAGE} people a page.")  # fmt: skip
def report_cmd(
    cohort: str | None,
    fmt: str,
    output: Path | None,
    excel: bool,
    human_only: bool,
    email: str | None,
    section: str | None,
    attribute: str | None,
    people: str,
    page: int,
) -> None:
    """Report completion: every cohort, one COHORT in detail, or one --person's timeline.

    The terminal shows a cohort's summary, its lesson funnel and the people behind; CSV and
    JSON have everyone, with the attributes of the HR file (Department, Employee ID...) as
    columns. CSV cells that a spreadsheet would run as a formula start with an apostrophe.

    \b
    Example:
      drip report leaders-q1
      drip report leaders-q1 --by Department --format csv --excel -o departments.csv
      drip report leaders-q1 --format html -o report.html
    """
    from drip.cli.base import now_utc, open_app
    from drip.reports.log import person_timeline
    from drip.reports.queries import cohort_report, cohort_summaries
    from drip.reports.sections import as_dict, breakdown, report_json, section_rows

    app = open_app()
    lessons = app.settings.lessons_path
    if email:
        if fmt in ("html", "lms"):
            raise click.UsageError(
                f"--person has no {fmt.upper()} form; use --format table, csv or json"
            )
        rows = [as_dict(e) for e in person_timeline(app.engine, email, cohort)]
        _emit(rows, TIMELINE_COLUMNS, fmt, output, f"events of {email.strip().lower()}", excel)
        return
    if cohort is None:
        if fmt in ("html", "lms"):
            raise click.UsageError(
                f"name a COHORT for the {fmt.upper()} report; see drip cohort list"
            )
        summaries = cohort_summaries(app.engine, lessons, now_utc(), human_only=human_only)
        # The terminal gets the columns that fit a screen; CSV and JSON have every figure.
        columns = SUMMARY_COLUMNS if fmt != "table" else SUMMARY_TERMINAL
        _emit([as_dict(s) for s in summaries], columns, fmt, output, "cohorts", excel)
        return
    if fmt == "lms":
        from drip.reports.lms import completions, completions_csv

        account = app.settings.xapi_account_attribute
        _write(completions_csv(completions(app.engine, cohort, account)), output)
        return
    # Only what the output shows is computed: the terminal table has no activity chart.
    if attribute:
        parts = frozenset({"people"})
    elif fmt in ("html", "json") and section is None:
        parts = frozenset(SECTIONS) - {"summary"}
    elif section is not None:
        parts = frozenset({section})
    else:
        shown = "behind" if people == "behind" else "people"
        parts = frozenset({"people"} if fmt == "csv" else {"lessons", shown})
    if fmt == "html" and not attribute:
        from drip.reports.html import MAX_ROWS

        parts, limit = parts | {"behind"}, MAX_ROWS  # the page lists the first people only
    else:
        limit = None
    report = cohort_report(
        app.engine, cohort, lessons, now_utc(), human_only=human_only, parts=parts,
        people_limit=limit,
    )  # fmt: skip
    if attribute:
        if fmt == "html":
            raise click.UsageError("--by has no HTML form; use --format table, csv or json")
        rows = breakdown(report, attribute)
        _emit(rows, list(rows[0]), fmt, output, f"{cohort} by {attribute}", excel)
        return
    if fmt == "html":
        from drip.reports.html import render_html

        _write(render_html(report, app.settings.templates_path), output)
    elif fmt == "json":
        _write(report_json(report) if section is None
               else json.dumps(section_rows(report, section), indent=2, ensure_ascii=False), output)  # fmt: skip
    elif fmt == "csv":
        from drip.reports.sections import rows_csv

        _write(rows_csv(section_rows(report, section or "people"), excel=excel), output)
    else:
        sections = [section] if section else ["summary", "lessons", "people"]
        _render(_tables(report, sections, people, page), output)


def _emit(
    rows: list[dict[str, Any]],
    columns: list[str],
    fmt: str,
    output: Path | None,
    title: str,
    excel: bool = False,
) -> None:
    from drip.reports.export import json_rows
    from drip.reports.sections import rows_csv

    if fmt == "json":
        _write(json.dumps(json_rows(rows), indent=2, ensure_ascii=False), output)
    elif fmt == "csv":
        _write(rows_csv(rows, columns, excel=excel), output)
    elif not rows:
        _write(f"{title}: none\n", output)
    else:
        _render([_table(rows, _plain(columns), title)], output)
