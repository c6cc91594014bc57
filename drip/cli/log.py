"""`drip log`: the completion log, filtered, as a table or JSON lines, or followed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from drip.states import EventKind

if TYPE_CHECKING:
    from drip.reports.log import EventRow, LogFilter


def _line(event: EventRow) -> str:
    lesson = f"{event.position}. {event.lesson}" if event.position else "-"
    why = f" ({event.reason})" if event.reason else ""
    return (
        f"{event.at:%Y-%m-%d %H:%M:%S}  {event.kind:<11} {event.verdict:<7} {event.email}  "
        f"[{event.cohort}] {lesson}  {event.method}{why}"
    )


@click.command("log")
@click.option("--cohort", "cohort_name", help="Only this cohort.")
@click.option("--person", "email", help="Only this person (e-mail address).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in EventKind]),
              help="Only events of this kind (repeat for several).")  # fmt: skip
@click.option(
    "--since", "since_text", help="Only events at or after this ISO time (UTC if no offset)."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True, help="One line per event, as text or JSON.")  # fmt: skip
def log_cmd(
    cohort_name: str | None,
    email: str | None,
    kinds: tuple[str, ...],
    since_text: str | None,
    follow: bool,
    fmt: str,
) -> None:
    """Print the completion log event by event, oldest first; --follow streams new events."""
    from drip.cli.base import open_app, parse_now
    from drip.reports.log import LogFilter, check_filter, follow_events
    from drip.reports.queries import as_dict

    since = parse_now(since_text) if since_text else None
    engine = open_app().engine
    f = LogFilter(cohort=cohort_name, email=email, kinds=kinds, since=since)
    check_filter(engine, f)
    events = follow_events(engine, f) if follow else _all_events(engine, f)
    try:
        for event in events:
            click.echo(
                json.dumps(as_dict(event), ensure_ascii=False) if fmt == "jsonl" else _line(event)
            )
    except KeyboardInterrupt:
        pass


def _all_events(engine: Any, f: LogFilter, page: int = 1000) -> Iterator[EventRow]:
    from drip.reports.log import log_events

    """Every matching event, fetched a page at a time so a long log streams."""
    after = 0
    while True:
        batch = log_events(engine, f, after, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].id
