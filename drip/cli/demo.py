"""`drip demo`: five weeks of a course for a dozen fictional executives, into an outbox."""

from __future__ import annotations

from pathlib import Path

import click

from drip.cli.base import (
    DripCommand,
    emit,
    now_utc,
    say,
    settings,
)


@click.command("demo", cls=DripCommand)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drip-demo"),
    show_default=True,
    help="Folder for the demo database and outbox (replaced if it holds an old demo).",
)
@click.option(
    "--days", type=click.IntRange(1, 60), default=35, show_default=True, help="Days to replay."
)
def demo_cmd(folder: Path, days: int) -> None:
    """Replay the past five weeks of a course for a dozen example executives into an outbox.

    \b
    Example:
      drip demo --dir drip-demo && cd drip-demo && drip serve
    """
    from drip.demo import demo_start, highlights, run_demo

    started = now_utc()
    result = run_demo(folder, settings(), days=days, start=demo_start(started, days))
    rows = [
        {
            "person": f"{p.name} <{p.email}>",
            "timezone": p.timezone,
            "lessons": f"{p.received} of {p.total}",
            "next_lesson_local": p.next_due.astimezone(
                __import__("zoneinfo").ZoneInfo(p.timezone)
            ).strftime("%a %d %b %H:%M")
            if p.next_due
            else "-",
        }
        for p in result.people
    ]
    emit(
        rows,
        "table",
        title=f"drip demo: {result.start:%a %d %b} to {result.end:%a %d %b %Y} (simulated)",
    )
    elapsed = (now_utc() - started).total_seconds()
    found = highlights(result.outbox)
    if found:
        say("Worth opening first:")
        for label, path in found.items():
            say(f"  {label}: {path}")
    say(
        f"{result.messages} emails in {result.outbox}/ ({result.passes} dispatcher passes, {elapsed:.1f}s).\n"
        f"Open any .eml file in a mail client. The folder has its own drip.toml, so in it:\n"
        f"  cd {result.folder} && drip people list && drip report demo\n"
        f"  cd {result.folder} && drip serve    # then the links in the emails work\n"
        f"  drip lessons preview social-media-for-executives why-it-matters-now -o lesson.html"
    )
