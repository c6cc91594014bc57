"""APScheduler wiring only: a tick job that runs a dispatcher pass, never two at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from drip.app import App
from drip.digest import add_digest_jobs
from drip.dispatch import send_due

log = logging.getLogger("drip.run")


def make_tick(app: App, stop: threading.Event) -> Callable[[], None]:
    """The job APScheduler runs: one dispatcher pass with a fresh SMTP connection."""
    dispatcher = app.dispatcher()

    def tick() -> None:
        started = datetime.now(UTC)
        dispatcher.transport = app.transport()
        try:
            result = send_due(dispatcher, started, should_stop=stop.is_set)
        except Exception:  # a failed pass must not kill the loop; the next tick retries
            log.exception("tick failed")
            return
        finally:
            dispatcher.transport.close()
        seconds = (datetime.now(UTC) - started).total_seconds()
        log.info("tick %s: %s in %.2fs", started.strftime("%H:%M:%S"), result.summary(), seconds)

    return tick


def start_scheduler(app: App, stop: threading.Event) -> BackgroundScheduler:
    """Start the tick job every DRIP_TICK_SECONDS, coalesced, one instance at a time."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        make_tick(app, stop),
        IntervalTrigger(seconds=app.settings.tick_seconds),
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )
    add_digest_jobs(scheduler, app)
    scheduler.start()
    return scheduler


def run_forever(app: App, serve: Callable[[], Any] | None = None) -> None:
    """Run the scheduler until SIGINT/SIGTERM, finishing the message in flight; serve() runs the web."""
    stop = threading.Event()
    scheduler = start_scheduler(app, stop)
    try:
        if serve is not None:
            serve()  # uvicorn handles the signals and returns on shutdown
        else:

            def handle(signum: int, _frame: Any) -> None:
                log.info(
                    "received %s, stopping after the message in flight", signal.Signals(signum).name
                )
                stop.set()

            signal.signal(signal.SIGINT, handle)
            signal.signal(signal.SIGTERM, handle)
            while not stop.wait(1.0):
                pass
    finally:
        stop.set()
        scheduler.shutdown(wait=True)
        log.info("stopped")
