"""`drip suppress`: the addresses no cohort may mail, with reasons and dates."""

from __future__ import annotations

from pathlib import Path

import click

from drip.cli.base import DripGroup, emit, now_utc, open_app, output_options, say


@click.group("suppress", cls=DripGroup)
def suppress() -> None:
    """List, add, remove or import suppressed addresses (bounced, complained, or by hand).

    \b
    Example:
      drip suppress list
    """


@suppress.command("list")
@output_options
def suppress_list(fmt: str) -> None:
    """List suppressed addresses, newest first, with the reason and date.

    \b
    Example:
      drip suppress list --format csv
    """
    from drip.people.suppression import entries

    rows = [
        {
            "email": s.email,
            "reason": s.reason,
            "source": s.source,
            "since": f"{s.since:%Y-%m-%d %H:%M}",
        }
        for s in entries(open_app().engine)
    ]
    emit(rows, fmt, title="suppressed addresses", columns=["email", "source", "since", "reason"])


@suppress.command("add")
@click.argument("email")
@click.option("--reason", default="added by hand", show_default=True, help="Why, for the list.")
def suppress_add(email: str, reason: str) -> None:
    """Suppress EMAIL: no cohort mails it again and its enrolments stop (as unsubscribed).

    \b
    Example:
      drip suppress add ex.employee@example.com --reason "left the company"
    """
    from drip.people.suppression import add

    stopped = add(open_app().engine, email, reason, now_utc())
    say(f"suppressed {email.strip().lower()}; {stopped} enrolment(s) stopped")


@suppress.command("remove")
@click.argument("email")
def suppress_remove(email: str) -> None:
    """Take EMAIL off the list so it can be enrolled again.

    \b
    Example:
      drip suppress remove ada@example.com
    """
    from drip.people.suppression import remove

    remove(open_app().engine, email)
    say(
        f"{email.strip().lower()} is no longer suppressed; enrol or resubscribe it to mail it again"
    )


@suppress.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def suppress_import(file: Path) -> None:
    """Suppress every address in FILE.csv (email[,reason]), all or nothing.

    \b
    Example:
      drip suppress import leavers.csv
    """
    from drip.people.suppression import import_csv

    added, already = import_csv(open_app().engine, file, now_utc())
    say(f"suppressed {added} address(es) from {file.name} ({already} already suppressed)")
