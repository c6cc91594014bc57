"""`drip run` and `drip serve`: the scheduler loop and the web endpoint."""

from __future__ import annotations

import click

from drip.cli.base import (
    DripCommand,
    open_app,
    say,
    warn_settings,
)
from drip.config import require_secret


@click.command("run", cls=DripCommand)
@click.option(
    "--no-web", is_flag=True, help="Only the scheduler, without the tracking web endpoint."
)
@click.option("--host", default=None, help="Web address (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Web port (default DRIP_WEB_PORT).")
def run_cmd(no_web: bool, host: str | None, port: int | None) -> None:
    """Run the scheduler (a pass every DRIP_TICK_SECONDS) and, unless --no-web, the web endpoint.

    \b
    Example:
      drip run --no-web
    """
    from drip.scheduler import run_forever

    app = open_app()
    require_secret(app.settings)
    warn_settings(app.settings)
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


@click.command("serve", cls=DripCommand)
@click.option("--host", default=None, help="Address to listen on (default DRIP_WEB_HOST).")
@click.option("--port", type=int, default=None, help="Port (default DRIP_WEB_PORT).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Web processes."
)
def serve_cmd(host: str | None, port: int | None, workers: int) -> None:
    """Serve the tracking web endpoint (opens, clicks, got it, answers, pause, unsubscribe).

    \b
    Example:
      drip serve --port 8080
    """
    from drip.web import serve_function

    app = open_app()
    require_secret(app.settings)
    serve_function(app, host or app.settings.web_host, port or app.settings.web_port, workers)()


@click.command("healthcheck", cls=DripCommand)
@click.option(
    "--max-age",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds since the last pass that still count as healthy (default 3 ticks + a lease).",
)
def healthcheck_cmd(max_age: float | None) -> None:
    """Exit 0 when this machine's `drip run` worker made a pass recently, else 1 (for Docker).

    \b
    Example:
      drip healthcheck || echo "the worker is stuck"
    """
    from datetime import datetime

    from drip.cli.base import now_utc, settings
    from drip.errors import DripError

    s = settings()
    limit = max_age or 3 * s.tick_seconds + s.lease_seconds
    path = s.heartbeat_path
    try:
        text = path.read_text(encoding="utf-8").strip()
        last = datetime.fromisoformat(text)
    except FileNotFoundError:
        raise DripError(f"no heartbeat at {path}: the worker has not made a pass yet") from None
    except (OSError, ValueError) as exc:
        raise DripError(f"cannot read the heartbeat {path}: {exc}") from None
    age = (now_utc() - last).total_seconds()
    if age > limit:
        raise DripError(
            f"the worker's last pass was {age:.0f} s ago (more than {limit:g} s): it is stuck or stopped"
        )
    say(f"ok: the worker's last pass was {age:.0f} s ago")
