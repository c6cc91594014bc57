"""Shared pieces of the drip commands: settings, the clock, errors and output."""

from __future__ import annotations

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


EXIT_CODES = (
    "Exit status: 0 when the command did its work (a send pass that ran is 0 even if a recipient "
    "bounced), 1 for a bad value or a failed operation, 2 for bad usage (an unknown option)."
)
# Options of the `drip` command itself that may also be written after a subcommand.
GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")
GLOBAL_VALUES = ("--now",)


def now_utc() -> datetime:
    """The clock of this command: the global --now (or DRIP_NOW) if given, else the real one.
    Only entry points read it."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    pretend = root.obj.get("now") if root is not None and isinstance(root.obj, dict) else None
    return pretend or datetime.now(UTC)


def parse_time(value: str, what: str = "--now") -> datetime:
    """An ISO time as an aware UTC datetime (a naive one is UTC); InputError for a bad one."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(
            [f"{what} '{value}' is not an ISO time like 2026-12-01T07:30:00Z"]
        ) from None
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        moment = datetime.max.replace(tzinfo=UTC)
    from drip.schedule import EARLIEST, LATEST

    if not EARLIEST <= moment.date() <= LATEST:
        raise InputError(
            [f"{what} '{value}' is outside {EARLIEST.year}-{LATEST.year}; check the year"]
        )
    return moment


def parse_now(value: str | None) -> datetime:
    """An ISO time, else this command's clock (see now_utc)."""
    return parse_time(value) if value else now_utc()


def hoist_global_options(args: list[str]) -> list[str]:
    """Move -q, -v and --now written after a subcommand to the front, where click reads them."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg in GLOBAL_VALUES and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        elif arg.split("=", 1)[0] in GLOBAL_VALUES and "=" in arg:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class BadValue(click.BadParameter):
    """A bad option value: exit status 1, like every other bad value (2 stays for usage)."""

    exit_code = 1


class DripCommand(click.Command):
    """A drip command: its help ends with what the exit status means."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(EXIT_CODES)


class DripGroup(click.Group):
    """A click group that turns DripError into a clean message and exit status 1, and a bad
    option value into exit status 1 too (2 stays for usage: an unknown option or command)."""

    command_class = DripCommand

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(EXIT_CODES)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            args = hoist_global_options(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.BadParameter as exc:
            if isinstance(exc, BadValue):
                raise
            raise BadValue(exc.message, exc.ctx, exc.param, exc.param_hint) from None
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


def _remember_excel(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta["drip_excel"] = value


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|csv|json and --excel, shared by the listing commands."""
    func = click.option(
        "--excel",
        is_flag=True,
        expose_value=False,
        callback=_remember_excel,
        help="CSV for Excel: with a UTF-8 byte-order mark, so accents show right.",
    )(func)
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
    *,
    excel: bool | None = None,
) -> None:
    """Print rows as a rich table, CSV (formula cells neutralised) or JSON."""
    from drip.reports.export import csv_text, json_rows, table_text

    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        out(json.dumps(json_rows(rows), default=str, indent=2, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        if excel is None:
            ctx = click.get_current_context(silent=True)
            excel = bool(ctx and ctx.meta.get("drip_excel"))
        out(csv_text(rows, columns, excel=excel))
        return
    if not rows:  # an empty table squeezed to the terminal says less than a line
        console.print(Text(f"{title or 'rows'}: none"))
        return
    cells = [[table_text(c, row.get(c)) for c in columns] for row in rows]
    headers = [column.replace("_", " ") for column in columns]
    if not _fits(headers, cells, console.width):
        _print_records(headers, cells, title)
        return
    # Text() keeps data literal: a name like "[/red]" is shown, not read as markup.
    table = Table(title=Text(title) if title else None, title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold")
    for values in cells:
        table.add_row(*(Text(value) for value in values))
    console.print(table)


def _fits(headers: list[str], cells: list[list[str]], width: int) -> bool:
    """Whether a table shows every value unfolded: each column as wide as its longest value
    (or header word), plus the borders and padding."""
    widest = [max(len(word) for word in header.split() or [""]) for header in headers]
    for values in cells:
        for i, value in enumerate(values):
            widest[i] = max(widest[i], *(len(line) for line in value.splitlines() or [""]))
    return sum(widest) + 3 * len(headers) + 1 <= width


def _print_records(headers: list[str], cells: list[list[str]], title: str | None) -> None:
    """Rows too wide for the terminal, one field a line (like psql's expanded display), so
    no value is folded into pieces; CSV and JSON keep the table's shape."""
    pad = max(len(header) for header in headers)
    lines = [Text(title)] if title else []
    for n, values in enumerate(cells, 1):
        lines.append(Text(f"-[ {n} of {len(cells)} ]" + "-" * max(0, pad - 8)))
        lines.extend(
            Text(f"{h:<{pad}}  {v}".rstrip()) for h, v in zip(headers, values, strict=True)
        )
    console.print(Text("\n").join(lines))


def out(text: str) -> None:
    """Write data to stdout in one piece (one write, not one per line)."""
    click.echo(text, nl=False)


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


# -- shell completion: names read from the database, never an error while typing ---------------


def _names(query: Callable[[Any], list[str]], incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    try:
        app = open_app()
        with app.engine.connect() as conn:
            names = query(conn)
    except Exception:  # completion must stay quiet whatever the settings or database say
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)][:200]


def complete_cohort(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Cohort names for shell completion."""
    import sqlalchemy as sa

    from drip.models import COHORT

    return _names(
        lambda conn: list(conn.execute(sa.select(COHORT.c.name).order_by(COHORT.c.name)).scalars()),
        incomplete,
    )


def complete_email(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """E-mail addresses for shell completion."""
    import sqlalchemy as sa

    from drip.models import PERSON

    return _names(
        lambda conn: list(
            conn.execute(
                sa.select(PERSON.c.email)
                .where(PERSON.c.email.startswith(incomplete.lower()))
                .order_by(PERSON.c.email)
                .limit(200)
            ).scalars()
        ),
        incomplete.lower(),
    )


def complete_course(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Course slugs for shell completion."""
    from click.shell_completion import CompletionItem

    try:
        from drip.curriculum.load import course_slugs

        slugs = course_slugs(settings().lessons_path)
    except Exception:
        return []
    return [CompletionItem(s) for s in slugs if s.startswith(incomplete)]
