"""Shared pieces of the drip commands: settings, the clock, errors and output."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drip.config import Settings, load_settings
from drip.errors import DripError, InputError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def now_utc() -> datetime:
    """The real clock; only entry points read it."""
    return datetime.now(UTC)


def parse_now(value: str | None) -> datetime:
    """--now ISO, else the real clock; a naive time is taken as UTC."""
    if not value:
        return now_utc()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is not an ISO time like 2026-12-01T07:30:00Z"
        ) from None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        moment = datetime.max.replace(tzinfo=UTC)
    from drip.schedule import EARLIEST, LATEST

    if not EARLIEST <= moment.date() <= LATEST:
        raise click.BadParameter(
            f"'{value}' is outside {EARLIEST.year}-{LATEST.year}; check the year"
        )
    return moment


class DripGroup(click.Group):
    """A click group that turns DripError into a clean message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            for problem in exc.problems:
                err_console.print(
                    Text.assemble(("error:", "red"), " ", str(problem)), soft_wrap=True
                )
            ctx.exit(1)
        except DripError as exc:
            for line in str(exc).splitlines():
                err_console.print(Text.assemble(("error:", "red"), " ", line), soft_wrap=True)
            ctx.exit(1)
        except Exception as exc:
            # Database errors (disk full, locked too long, connection lost) are the operator's
            # to fix, not a bug: a message and exit 1. SQLAlchemy is only loaded if it was used.
            said = _database_problem(exc) if "sqlalchemy" in sys.modules else None
            if said is None:
                raise
            err_console.print(Text.assemble(("error:", "red"), " ", said), soft_wrap=True)
            ctx.exit(1)


def _database_problem(exc: BaseException) -> str | None:
    from drip.db import database_problem

    return database_problem(exc)


def settings() -> Settings:
    """The settings, read now."""
    return load_settings()


def open_app(check: bool = True) -> Any:
    from drip.app import App

    return App.open(settings(), check=check)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|csv|json, shared by the listing commands."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print rows as a rich table, CSV or JSON."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        click.echo(json.dumps(list(rows), default=str, indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        click.echo(buffer.getvalue(), nl=False)
        return
    # Text() keeps data literal: a name like "[/red]" is shown, not read as markup.
    table = Table(title=Text(title) if title else None, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in columns))
    console.print(table)


def quiet() -> bool:
    ctx = click.get_current_context()
    return bool(ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


def say(message: str) -> None:
    """Print a human message unless --quiet."""
    if not quiet():
        console.print(message, markup=False)


def warn(message: str) -> None:
    """Print a warning to stderr, even with --quiet."""
    click.echo(f"warning: {message}", err=True)


def warn_settings(s: Settings) -> None:
    """Print the warnings about the settings (drip config, drip run)."""
    from drip.config import warnings

    for message in warnings(s):
        warn(message)


def write_output(text: str, output: Path | None) -> None:
    """Write text to the --output file, or print it when there is none."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DripError(
            f"cannot write {output}: {exc.strerror}; pick a folder that exists"
        ) from None
    say(f"wrote {output}")
