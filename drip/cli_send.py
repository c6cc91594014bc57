"""drip send-due, run, serve and demo."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drip.cli_base import (
    emit,
    now_utc,
    open_app,
    output_options,
    parse_now,
    quiet,
    say,
    settings,
)
from drip.config import require_secret


@click.command("send-due")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601, UTC if no offset).")
@output_options
def send_due_cmd(now_text: str | None, fmt: str) -> None:
    """Make one dispatcher pass: send every lesson that is due, and print what happened."""
    from drip.dispatch import send_due

    app = open_app()
    dispatcher = app.dispatcher()
    try:
        result = send_due(dispatcher, parse_now(now_text))
    finally:
        dispatcher.transport.close()
    if fmt != "table" or (result.items and not quiet()):
        emit(
            [
                {"email": i.email, "lesson": i.lesson, "outcome": i.outcome, "detail": i.detail}
                for i in result.items
            ],
            fmt,
            columns=["email", "lesson", "outcome", "detail"],
        )
    if fmt == "table":
        say(result.summary())
    if result.failed:
        sys.exit(1)


@click.command("run")
@click.option(
    "--no-web", is_flag=True, help="Only the scheduler, without the tracking web endpoint."
)
@click.option("--host", default=None, help="Web address (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Web port (default DRIP_WEB_PORT).")
def run_cmd(no_web: bool, host: str | None, port: int | None) -> None:
    """Run the scheduler (a pass every DRIP_TICK_SECONDS) and, unless --no-web, the web endpoint."""
    from drip.scheduler import run_forever

    app = open_app()
    require_secret(app.settings)
    serve = None
    if not no_web:
        from drip.web import serve_function

        serve = serve_function(app, host or app.settings.web_host, port or app.settings.web_port)
    say(
        f"drip running: database {app.engine.url.render_as_string(hide_password=True)}, "
        f"mail via {app.transport().describe()}, a pass every {app.settings.tick_seconds:g}s"
        + (
            ""
            if no_web
            else f", web on http://{host or app.settings.web_host}:{port or app.settings.web_port}"
        )
    )
    run_forever(app, serve)


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Port (default DRIP_WEB_PORT).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Web processes."
)
def serve_cmd(host: str | None, port: int | None, workers: int) -> None:
    """Serve the tracking web endpoint (opens, clicks, got it, answers, pause, unsubscribe)."""
    from drip.web import serve_function

    app = open_app()
    require_secret(app.settings)
    serve_function(app, host or app.settings.web_host, port or app.settings.web_port, workers)()


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drip-demo"),
    show_default=True,
    help="Folder for the demo database and outbox (replaced if it holds an old demo).",
)
@click.option(
    "--days", type=click.IntRange(1, 60), default=14, show_default=True, help="Days to simulate."
)
def demo_cmd(folder: Path, days: int) -> None:
    """Enrol a dozen example executives and simulate a fortnight of lessons into an outbox folder."""
    from drip.demo import demo_start, run_demo

    started = now_utc()
    result = run_demo(folder, settings(), days=days, start=demo_start(started))
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
    say(
        f"{result.messages} lesson emails in {result.outbox}/ ({result.passes} dispatcher passes, {elapsed:.1f}s).\n"
        f"Open any .eml file in a mail client. The folder has its own drip.toml, so in it:\n"
        f"  cd {result.folder} && drip people list && drip report demo\n"
        f"  cd {result.folder} && drip serve    # then the links in the emails work\n"
        f"  drip lessons preview social-media-for-executives why-it-matters-now -o lesson.html"
    )
