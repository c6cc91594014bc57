"""`drip doctor`: check DNS and settings the way a receiving mail server will."""

from __future__ import annotations

import click

from drip.cli.base import DripCommand, emit, output_options, settings


@click.command("doctor", cls=DripCommand)
@click.option("--nameserver", metavar="HOST[:PORT]",
              help="Ask this DNS server instead of the system's resolver.")  # fmt: skip
@output_options
def doctor_cmd(nameserver: str | None, fmt: str) -> None:
    """Check SPF, DKIM, DMARC, the bounce MX, reverse DNS and the base URL, each with its fix.

    \b
    Example:
      drip doctor --nameserver 1.1.1.1
    """
    from drip.doctor import Level, resolver_lookup, run_checks

    findings = run_checks(settings(), resolver_lookup(nameserver))
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
