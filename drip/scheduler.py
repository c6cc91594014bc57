"""APScheduler wiring only: the tick job that runs a dispatcher pass (never two at once), the
outbox and report-tally jobs, and each managed cohort's weekly digest job."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from drip.app import App
from drip.models import COHORT as C
from drip.outbound.outbox import push_all
from drip.reports.digest import due_retries, send_digests
from drip.reports.tally import fold
from drip.sending.run import send_due

log = logging.getLogger("drip.run")

TALLY_SECONDS = 60  # how often the worker folds new events into the report's tallies
SYNC_JOB = "digest-sync"
RETRY_JOB = "digest-retry"


def make_tick(app: App, stop: threading.Event) -> Callable[[], None]:
    """The job APScheduler runs: one dispatcher pass with a fresh SMTP connection, then a
    heartbeat for `drip healthcheck`."""
    dispatcher = app.dispatcher()

    def tick() -> None:
        started = datetime.now(UTC)
        beat(app.settings.heartbeat_path, started)
        dispatcher.transport = app.transport()
        try:
            result = send_due(dispatcher, started, should_stop=stop.is_set)
        except Exception:  # a failed pass must not kill the loop; the next tick retries
            log.exception("tick failed")
            return
        finally:
            dispatcher.transport.close()
        beat(app.settings.heartbeat_path, datetime.now(UTC))
        seconds = (datetime.now(UTC) - started).total_seconds()
        log.info("tick %s: %s in %.2fs", started.strftime("%H:%M:%S"), result.summary(), seconds)

    return tick


def make_outbox_job(app: App, stop: threading.Event) -> Callable[[], None] | None:
    """The job that sends the outbox (xAPI statements, webhooks), or None if none is configured."""
    targets = app.outbox_targets()
    if not targets:
        return None

    def push() -> None:
        try:
            results = push_all(app.engine, targets, datetime.now(UTC), should_stop=stop.is_set)
        except Exception:  # a failed pass must not kill the loop; the next one retries
            log.exception("outbox pass failed")
            return
        for name, result in results.items():
            if result.sent or result.rejected or result.stopped:
                log.info("outbox %s: %s", name, result.summary())

    return push


def tally(app: App) -> None:
    """The job that keeps the report's tallies current, so `drip report` only folds the last
    minute's events."""
    try:
        read = fold(app.engine)
    except Exception:  # the next run, or the next report, folds what this one could not
        log.exception("report tally failed")
        return
    if read:
        log.info("report tallies: %d new events counted", read)


def beat(path: Path, now: datetime) -> None:
    """Write the heartbeat file: the time the worker last started or finished a pass."""
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(now.isoformat() + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a missing heartbeat makes the healthcheck fail, which says why
        log.warning("cannot write the heartbeat %s: %s", path, exc.strerror)


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
    outbox_job = make_outbox_job(app, stop)
    if outbox_job is not None:
        scheduler.add_job(
            outbox_job, IntervalTrigger(seconds=app.settings.tick_seconds), id="outbox",
            max_instances=1, coalesce=True, misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )  # fmt: skip
    scheduler.add_job(
        tally, IntervalTrigger(seconds=TALLY_SECONDS), args=[app], id="tally", max_instances=1,
        coalesce=True, misfire_grace_time=None,
    )  # fmt: skip
    add_digest_jobs(scheduler, app)
    scheduler.start()
    return scheduler


def run_forever(app: App, serve: Callable[[], Any] | None = None) -> None:
    """Run the scheduler until SIGINT/SIGTERM, finishing the message in flight and handing the
    claims of the rest back; serve() runs the web endpoint in this thread meanwhile."""
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        log.info("received %s, stopping after the message in flight", signal.Signals(signum).name)
        stop.set()

    # uvicorn takes these signals while it serves, and raises them again once it has shut
    # down: this handler then makes that a clean stop (exit 0) instead of a death by SIGTERM.
    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    scheduler = start_scheduler(app, stop)
    try:
        if serve is not None:
            serve()  # returns when uvicorn got SIGINT/SIGTERM and shut down
        else:
            while not stop.wait(1.0):
                pass
    finally:
        stop.set()
        scheduler.shutdown(wait=True)  # the pass in flight records what it sent, releases the rest
        log.info("stopped")


def add_digest_jobs(scheduler: BaseScheduler, app: App) -> None:
    """Schedule each managed cohort's digest for Monday 08:00 in its timezone, re-checked hourly."""
    sync_digest_jobs(scheduler, app)
    if scheduler.get_job(SYNC_JOB) is None:
        scheduler.add_job(
            sync_digest_jobs, IntervalTrigger(hours=1), args=(scheduler, app), id=SYNC_JOB,
            max_instances=1, coalesce=True,
        )  # fmt: skip
    if scheduler.get_job(RETRY_JOB) is None:
        scheduler.add_job(
            retry_digests, IntervalTrigger(minutes=5), args=(app,), id=RETRY_JOB,
            max_instances=1, coalesce=True,
        )  # fmt: skip


def sync_digest_jobs(scheduler: BaseScheduler, app: App) -> None:
    """Add, move or drop the digest jobs so they match the cohorts that have a manager."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(C.c.id, C.c.timezone).where(
                C.c.manager_email.is_not(None), C.c.manager_email != ""
            )
        ).all()
    wanted = {f"digest-{cohort_id}": (cohort_id, zone) for cohort_id, zone in rows}
    for job in scheduler.get_jobs():
        if (
            job.id.startswith("digest-")
            and job.id not in (SYNC_JOB, RETRY_JOB)
            and job.id not in wanted
        ):
            scheduler.remove_job(job.id)
    for job_id, (cohort_id, zone) in wanted.items():
        job = scheduler.get_job(job_id)
        if job is not None and str(job.trigger.timezone) == zone:
            continue
        if job is not None:
            scheduler.remove_job(job_id)
        scheduler.add_job(
            _send_one, CronTrigger(day_of_week="mon", hour=8, minute=0, timezone=zone),
            args=(app, cohort_id), id=job_id, max_instances=1, coalesce=True,
            misfire_grace_time=6 * 3600,
        )  # fmt: skip


def _send_one(app: App, cohort_id: int) -> None:
    """The job: one cohort's digest through a fresh transport, with the real clock."""
    transport = app.transport()
    try:
        send_digests(
            app.engine, transport, app.settings, datetime.now(UTC), cohort_id, once_per_week=True
        )
    except Exception:  # a failed digest must not kill the scheduler; its claim expires
        log.exception("digest of cohort %s failed", cohort_id)
    finally:
        transport.close()


def retry_digests(app: App, now: datetime | None = None) -> int:
    """The job: send again this week's digests that failed for a while or were left by a dead
    worker; returns how many were tried."""
    now = now or datetime.now(UTC)
    try:
        cohorts = due_retries(app.engine, now)
    except Exception:
        log.exception("cannot read the digests due for a retry")
        return 0
    if not cohorts:
        return 0
    transport = app.transport()
    try:
        for cohort_id in cohorts:
            try:
                send_digests(
                    app.engine, transport, app.settings, now, cohort_id, once_per_week=True
                )
            except Exception:
                log.exception("digest of cohort %s failed", cohort_id)
    finally:
        transport.close()
    return len(cohorts)
