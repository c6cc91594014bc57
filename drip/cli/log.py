"""`drip log`: the completion log, filtered, as a table or JSON lines, or followed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import click

from drip.cli.base import DripCommand, complete_cohort, complete_email
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


@click.command("log", cls=DripCommand)
@click.option("--cohort", "cohort_name", shell_complete=complete_cohort, help="Only this cohort.")
@click.option("--person", "email", shell_complete=complete_email,
              help="Only this person (e-mail address).")  # fmt: skip
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in EventKind]),
              help="Only events of this kind (repeat for several).")  # fmt: skip
@click.option(
    "--since", "since_text", help="Only events at or after this ISO time (UTC if no offset)."
)
@click.option("--last", "last", type=click.IntRange(1), metavar="N",
              help="Only the N most recent matching events (fast on a long log).")  # fmt: skip
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True, help="One line per event, as text or JSON.")  # fmt: skip
def log_cmd(
    cohort_name: str | None,
    email: str | None,
    kinds: tuple[str, ...],
    since_text: str | None,
    last: int | None,
    follow: bool,
    fmt: str,
) -> None:
    """Print the completion log event by event, oldest first; --follow streams new events.

    \b
    Example:
      drip log --last 20
      drip log --cohort leaders-q1 --kind answer --format jsonl > answers.jsonl
      drip log --follow
    """
    from drip.cli.base import open_app, parse_time
    from drip.reports.log import LogFilter, check_filter, follow_events, last_events

    since = parse_time(since_text, "--since") if since_text else None
    engine = open_app().engine
    f = LogFilter(cohort=cohort_name, email=email, kinds=kinds, since=since)
    check_filter(engine, f)
    if last:
        events: Iterable[EventRow] = last_events(engine, f, last)
        if follow:
            after = events[-1].id if events else 0  # type: ignore[index]
            events = _chain(events, follow_events(engine, f, after_id=after))
    else:
        events = follow_events(engine, f) if follow else _all_events(engine, f)
    text = _json_line if fmt == "jsonl" else _line
    buffer: list[str] = []
    try:
        for event in events:
            buffer.append(text(event))
            # Whole pages at a time: one write per line made a long log crawl. Followed events
            # are printed as they come.
            if len(buffer) >= 1000 or follow:
                click.echo("\n".join(buffer))
                buffer.clear()
    except KeyboardInterrupt:
        pass
    finally:
        if buffer:
            click.echo("\n".join(buffer))


def _chain(first: Iterable[EventRow], then: Iterable[EventRow]) -> Iterator[EventRow]:
    yield from first
    yield from then


def _json_line(event: EventRow) -> str:
    from drip.reports.export import json_rows
    from drip.reports.sections import as_dict

    return json.dumps(json_rows([as_dict(event)])[0], ensure_ascii=False)


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
