"""`drip doctor`: check DNS and settings the way a receiving mail server will."""

from __future__ import annotations

import click

from drip.cli.base import DripCommand, emit, output_options, settings


@click.command("doctor", cls=DripCommand)
@click.option("--nameserver", metavar="HOST[:PORT]",
              help="Ask this DNS server instead of the system's resolver.")  # fmt: skip
@click.option("--offline", is_flag=True,
              help="Only look things up: do not fetch DRIP_BASE_URL/healthz (from a machine "
              "that cannot reach the public address).")  # fmt: skip
@output_options
def doctor_cmd(nameserver: str | None, offline: bool, fmt: str) -> None:
    """Check SPF, DKIM, DMARC, the bounce MX, reverse DNS, the base URL and that drip's web app
    answers there, each with its fix.

    \b
    Example:
      drip doctor --nameserver 1.1.1.1
      drip doctor --offline
    """
    from drip.doctor import Level, http_fetch, resolver_lookup, run_checks

    fetch = None if offline else http_fetch()
    findings = run_checks(settings(), resolver_lookup(nameserver), fetch)
    emit(
        [
            {"check": f.check, "result": f.level.value, "detail": f.detail, "fix": f.fix}
            for f in findings
        ],  # fmt: skip
        fmt,
        title="drip doctor",
        columns=["check", "result", "detail", "fix"],
    )
    failed = [f for f in findings if f.level is Level.fail]
    if failed:
        raise click.exceptions.Exit(1)
