"""`drip send-due` and `drip send-test`: one dispatcher pass, or one lesson to one address."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import click
from rich.progress import Progress

from drip.cli.base import (
    DripCommand,
    complete_course,
    emit,
    err_console,
    now_utc,
    open_app,
    output_options,
    quiet,
    say,
    settings,
)
from drip.errors import DripError

SCREENFUL = 40  # more messages than this are summed up in one line, not a table


@click.command("send-due", cls=DripCommand)
@click.option(
    "--dry-run", is_flag=True, help="List what a pass would send now (or at --now); send nothing."
)
@output_options
def send_due_cmd(dry_run: bool, fmt: str) -> None:
    """Make one dispatcher pass: send every lesson that is due, and print what happened.

    A pass that ran exits 0 even when a recipient bounced (see drip report); it exits 1 only
    when the pass itself failed. With more than a screenful of messages the table becomes a
    summary line (use --format csv for every message).

    \b
    Example:
      drip --now 2026-12-07T08:00Z send-due --dry-run
      drip send-due --format csv > pass.csv
    """
    app = open_app()
    now = now_utc()
    if dry_run:
        _dry_run(app, now, fmt)
        return
    from drip.sending.run import send_due

    dispatcher = app.dispatcher()
    try:
        with Progress(
            console=err_console, disable=quiet() or fmt != "table", transient=True
        ) as bar:
            task = bar.add_task("sending", total=_due_count(app.engine, now) or None)

            def tick() -> bool:
                # The pass asks before each message whether to stop: a step of the bar.
                bar.advance(task)
                return False

            total = send_due(dispatcher, now, should_stop=tick)
    finally:
        dispatcher.transport.close()
    rows = [
        {"email": i.email, "lesson": i.lesson, "outcome": i.outcome, "detail": i.detail}
        for i in total.items
    ]
    columns = ["email", "lesson", "outcome", "detail"]
    if fmt != "table":
        emit(rows, fmt, columns=columns)
        _deferred_only(total)
        return
    if rows and not quiet():
        if len(rows) <= SCREENFUL:
            emit(rows, fmt, columns=columns)
        else:
            problems = [r for r in rows if r["outcome"] != "sent"]
            if problems and len(problems) <= SCREENFUL:
                emit(problems, fmt, title="not sent", columns=columns)
    say(total.summary())
    _deferred_only(total)


def _deferred_only(total: Any) -> None:
    if total.stopped:  # the relay is down, or refused everyone: nothing was bounced
        raise DripError(f"{total.stopped}; everyone due stays due for the next pass")
    if total.retried and not total.sent:
        # Every message due was deferred (a full outbox disk, a relay that is down): cron and
        # monitoring must see that nothing went out. A bounce alone is a pass that ran: exit 0.
        raise DripError(
            f"no lesson could be sent: {total.retried} deferred for a retry; see the details above"
        )


def _due_count(engine: Any, now: datetime) -> int:
    import sqlalchemy as sa

    from drip.models import ENROLLMENT as E

    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(E.c.status == "active", E.c.next_due_at <= now)
            ).scalar_one()
        )


def _dry_run(app: Any, now: datetime, fmt: str) -> None:
    from drip.curriculum.load import Catalog
    from drip.sending.preview import preview

    planned = preview(app.engine, Catalog(app.settings.lessons_path), now)
    rows = [
        {"email": p.email, "course": p.course, "outcome": "would " + p.outcome,
         "position": p.position, "lesson": p.lesson, "detail": p.detail}
        for p in planned
    ]  # fmt: skip
    emit(rows, fmt, title=f"a pass at {now:%Y-%m-%d %H:%M} UTC would",
         columns=["email", "course", "outcome", "position", "lesson", "detail"])  # fmt: skip
    if fmt == "table":
        sends = sum(p.outcome.startswith("send") for p in planned)
        say(
            f"dry run: would send {sends} e-mails at {now:%Y-%m-%d %H:%M} UTC; nothing was sent or written"
        )


@click.command("send-test", cls=DripCommand)
@click.argument("course", shell_complete=complete_course)
@click.argument("slug")
@click.option("--to", "to", required=True, help="Recipient address.")
@click.option("--name", default="", help="Recipient display name.")
def send_test(course: str, slug: str, to: str, name: str) -> None:
    """Send one lesson to one address through the configured transport.

    \b
    Example:
      drip send-test social-media-for-executives why-it-matters-now --to me@example.com
    """
    from drip.addresses import valid_address
    from drip.curriculum.load import load_course
    from drip.mail.build import LessonMail, Recipient
    from drip.mail.dkim import dkim_signer
    from drip.mail.message import new_message_id, sender_domain
    from drip.mail.render import Renderer
    from drip.mail.transports import Outcome, open_transport

    s = settings()
    address = valid_address(to, s.special_use)
    c = load_course(s.lessons_path, course)
    lesson = c.lesson(slug)
    # Without a secret key the links are signed with a throwaway one: they will not resolve.
    key = s.secret_key or secrets.token_urlsafe(32)
    mail = LessonMail(
        Renderer(s.templates_path), s.sender, s.base_url, key, s.reply_to, dkim=dkim_signer(s)
    )
    recipient = Recipient(0, address, name, now_utc(), new_message_id(sender_domain(s.sender)))
    data = mail.build(c, lesson, recipient)
    with open_transport(s.mail_url, s.smtp_timeout) as transport:
        result = transport.send(mail.template(c, lesson).envelope_from, address, data)
    if result.outcome is not Outcome.accepted:
        reason = (
            "a temporary failure: try again later"
            if result.outcome is Outcome.retry
            else "rejected"
        )
        detail = f"{result.code} {result.reply}".strip() if result.code else result.reply
        raise DripError(f"not sent to {address} via {transport.describe()} ({reason}): {detail}")
    say(f"sent '{lesson.title}' to {address} via {transport.describe()}: {result.reply}")
