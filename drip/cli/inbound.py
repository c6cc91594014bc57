"""`drip inbound`: read what comes back (bounces, complaints, out-of-office, replies)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import click

from drip.cli.base import DripGroup, now_utc, open_app, parse_now, say
from drip.errors import ConfigError


@click.group("inbound", cls=DripGroup)
def inbound() -> None:
    """Receive (SMTP) or fetch (IMAP) bounces, complaints and replies, and act on them.

    \b
    Example:
      drip inbound poll
    """


def _setup() -> tuple[Any, Any, Callable[[], AbstractContextManager[Any]]]:
    from drip.inbound.process import Inbound
    from drip.mail.transports import open_transport

    app = open_app()
    s = app.settings
    if not s.bounce_domain and not s.reply_address:
        raise ConfigError(
            "DRIP_BOUNCE_DOMAIN is not set; set it to the domain whose mail reaches drip, "
            "like bounce.example.com"
        )
    config = Inbound.of(s)
    return app, config, lambda: open_transport(s.mail_url, s.smtp_timeout)


@inbound.command("serve")
@click.option("--host", default=None, help="Address to listen on (default DRIP_INBOUND_HOST).")
@click.option("--port", type=int, default=None, help="Port (default DRIP_INBOUND_PORT).")
@click.option(
    "--now", "now_text", help="Pretend it is this time (ISO 8601), for tests and replays."
)
def inbound_serve(host: str | None, port: int | None, now_text: str | None) -> None:
    """Receive mail for the bounce domain over SMTP until stopped (Ctrl-C or SIGTERM).

    \b
    Example:
      drip inbound serve --host 0.0.0.0 --port 2525
    """
    from drip.inbound.receive import ReceiveHandler, receiver

    app, config, transport = _setup()
    host = host or app.settings.inbound_host
    port = port or app.settings.inbound_port
    handler = ReceiveHandler(app.engine, config, _clock(now_text), transport)
    controller = receiver(handler, host, port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc}; pick a free port with --port"
        ) from None
    say(
        f"drip inbound listening on {host}:{port} for @{config.bounce_domain or config.reply_address}"
    )
    try:
        stop.wait()
    finally:
        controller.stop()
    say("drip inbound stopped")


def _clock(now_text: str | None) -> Callable[[], Any]:
    if not now_text:
        return now_utc
    fixed = parse_now(now_text)
    return lambda: fixed


@inbound.command("poll")
@click.option(
    "--now", "now_text", help="Pretend it is this time (ISO 8601), for tests and replays."
)
def inbound_poll(now_text: str | None) -> None:
    """Process the new messages of the DRIP_IMAP_URL mailbox once each, then flag them.

    \b
    Example:
      drip inbound poll
    """
    from drip.inbound.poll import poll

    app, config, transport = _setup()
    if not app.settings.imap_url:
        raise ConfigError(
            "DRIP_IMAP_URL is not set; set it like imaps://user:pass@imap.example.com/INBOX"
        )
    result = poll(
        app.engine, config, app.settings.imap_url, clock=_clock(now_text), transport=transport
    )
    for item in result.results:
        if not item.duplicate:
            say(f"{item.kind} {item.email or '(unmatched)'}: {item.action}")
    say(result.summary())
