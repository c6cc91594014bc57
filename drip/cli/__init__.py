"""The `drip` command: each command parses input, calls one service and prints the result."""

from __future__ import annotations

import logging

import click

from drip import __version__
from drip.cli.base import DripGroup
from drip.cli.cohort import cohort
from drip.cli.demo import demo_cmd
from drip.cli.doctor import doctor_cmd
from drip.cli.enroll import enroll
from drip.cli.inbound import inbound
from drip.cli.init import config_cmd, init_cmd, migrate_cmd
from drip.cli.lessons import lessons
from drip.cli.log import log_cmd
from drip.cli.people import people
from drip.cli.report import report_cmd
from drip.cli.run import healthcheck_cmd, run_cmd, serve_cmd
from drip.cli.send import send_due_cmd, send_test
from drip.cli.suppress import suppress
from drip.cli.xapi import xapi


@click.group(cls=DripGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drip")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and requested data.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option(
    "--now",
    "now_text",
    envvar="DRIP_NOW",
    metavar="TIME",
    help="Pretend it is this time (ISO 8601, UTC if no offset), for rehearsals; env DRIP_NOW.",
)
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool, now_text: str | None) -> None:
    """drip: one short lesson email a day, from an ordered curriculum, for busy executives.

    \b
    Example:
      drip cohort create leaders-q1 --course social-media-for-executives --start 2026-12-07
      drip enroll leaders-q1 hr-export.xlsx --dry-run
      drip --now 2026-12-07T08:00Z send-due --dry-run

    Shell completion (cohorts, courses and e-mail addresses complete too):
    eval "$(_DRIP_COMPLETE=bash_source drip)" in ~/.bashrc; zsh_source or fish_source likewise.
    """
    from drip.cli.base import parse_time

    ctx.obj = {"quiet": quiet, "now": parse_time(now_text) if now_text else None}
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "cssutils", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO, and a webhook's URL can be its secret
    # (Slack's and Teams' are); drip logs what a delivery did without it.
    for leaky in ("httpx", "httpcore"):
        logging.getLogger(leaky).setLevel(logging.WARNING)


for _command, _name in (
    (config_cmd, "config"),
    (init_cmd, "init"),
    (migrate_cmd, "migrate"),
    (lessons, "lessons"),
    (send_test, "send-test"),
    (cohort, "cohort"),
    (enroll, "enroll"),
    (people, "people"),
    (send_due_cmd, "send-due"),
    (run_cmd, "run"),
    (serve_cmd, "serve"),
    (healthcheck_cmd, "healthcheck"),
    (demo_cmd, "demo"),
    (report_cmd, "report"),
    (log_cmd, "log"),
    (xapi, "xapi"),
    (suppress, "suppress"),
    (inbound, "inbound"),
    (doctor_cmd, "doctor"),
):
    main.add_command(_command, _name)
