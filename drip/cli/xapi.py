"""`drip xapi push|status|replay`: the outbox of xAPI statements and signed webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from drip.cli.base import DripGroup, emit, open_app, output_options, parse_now, say
from drip.errors import ConfigError, DripError

NOT_CONFIGURED = (
    "neither DRIP_XAPI_ENDPOINT nor DRIP_WEBHOOK_URL is set; set one (README: Learning records)"
)


def _targets(app: Any) -> list[Any]:
    targets: list[Any] = app.outbox_targets()
    if not targets:
        raise ConfigError(NOT_CONFIGURED)
    return targets


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@click.group("xapi", cls=DripGroup)
def xapi() -> None:
    """Learning records that leave drip: xAPI statements to an LRS and signed webhooks.

    \b
    Example:
      drip xapi status
    """


@xapi.command("push")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601, UTC if no offset).")
@click.option("--limit", type=click.IntRange(1), help="Send at most this many per target.")
def push_cmd(now_text: str | None, limit: int | None) -> None:
    """Send what the outbox holds now to the LRS and the webhook, oldest first.

    \b
    Example:
      drip xapi push
    """
    from drip.outbound.outbox import push_all

    app = open_app()
    results = push_all(app.engine, _targets(app), parse_now(now_text), limit=limit)
    for name, result in results.items():
        say(f"{name}: {result.summary()}")
    failed = [f"{name}: {r.stopped}" for name, r in results.items() if r.stopped]
    failed += [f"{name}: {r.rejected} rejected; see drip xapi status"
               for name, r in results.items() if r.rejected]  # fmt: skip
    if failed:
        raise DripError("\n".join(failed))


@xapi.command("status")
@output_options
def status_cmd(fmt: str) -> None:
    """Show each target's queue, its last error, and the events it rejected with its reason.

    \b
    Example:
      drip xapi status --format json
    """
    from drip.outbound.outbox import rejections, status

    app = open_app()
    names = [t.name for t in _targets(app)]
    rows: list[dict[str, Any]] = [
        {
            "target": s.target,
            **s.counts,
            "oldest_waiting": _when(s.oldest_pending),
            "next_attempt": _when(s.next_attempt),
            "last_error": s.last_error,
        }
        for s in status(app.engine, names)
    ]
    refused = [
        {
            "target": r.target,
            "at": _when(r.at),
            "event": r.kind,
            "email": r.email,
            "lesson": r.lesson,
            "code": r.code,
            "reason": r.reason,
            "id": r.key,
        }
        for r in rejections(app.engine, names)
    ]
    if fmt == "json":
        import json

        click.echo(json.dumps({"targets": rows, "rejected": refused}, indent=2, ensure_ascii=False))
        return
    emit(rows, fmt, "outbox")
    if refused and fmt == "table":
        # One line each: a reason is too long for a table column in a terminal.
        click.echo("rejected, never retried (fix the cause, then drip xapi replay --since DATE):")
        for r in refused:
            lesson = f" {r['lesson']}" if r["lesson"] else ""
            click.echo(f"  {r['target']} {r['at']} {r['event']}{lesson} of {r['email']} "
                       f"(id {r['id']}): {r['reason']}")  # fmt: skip


@xapi.command("replay")
@click.option(
    "--since", required=True, help="Re-send events from this date or time (ISO 8601, UTC)."
)
@click.option("--target", type=click.Choice(["all", "xapi", "webhook"]), default="all",
              show_default=True, help="Which target gets them again.")  # fmt: skip
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601, UTC if no offset).")
def replay_cmd(since: str, target: str, now_text: str | None) -> None:
    """Queue every event since DATE again with the same ids (for a new LRS or receiver).

    \b
    Example:
      drip xapi replay --since 2026-12-01 --target xapi
    """
    from dataclasses import replace

    from drip.app import outbox_config
    from drip.outbound.outbox import replay

    app = open_app()
    config = outbox_config(app.settings)
    if config is None:
        raise ConfigError(NOT_CONFIGURED)
    if target != "all":
        if target not in config.targets:
            raise click.UsageError(
                f"--target {target} is not configured; configured: {', '.join(config.targets)}"
            )
        config = replace(config, targets=(target,))
    start = parse_now(since)
    queued = replay(app.engine, config, start, parse_now(now_text))
    for name, count in queued.items():
        say(f"{name}: {count} events queued again since {_when(start)}; drip xapi push sends them")
