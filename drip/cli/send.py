"""`drip send-due` and `drip send-test`: one dispatcher pass, or one lesson to one address."""

from __future__ import annotations

import secrets
import sys

import click

from drip.cli.base import (
    emit,
    now_utc,
    open_app,
    output_options,
    parse_now,
    quiet,
    say,
    settings,
)
from drip.errors import DripError


@click.command("send-due")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601, UTC if no offset).")
@output_options
def send_due_cmd(now_text: str | None, fmt: str) -> None:
    """Make one dispatcher pass: send every lesson that is due, and print what happened."""
    from drip.sending.run import send_due

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
    if result.stopped:
        click.echo(f"Error: {result.stopped}; everyone due stays due for the next pass", err=True)
    if result.failed or result.stopped:
        sys.exit(1)
    if result.retried and not result.sent:
        # Every message due was deferred (a full outbox disk, a relay that is down): cron and
        # monitoring must see that nothing went out.
        raise DripError(
            f"no lesson could be sent: {result.retried} deferred for a retry; see the details above"
        )


@click.command("send-test")
@click.argument("course")
@click.argument("slug")
@click.option("--to", "to", required=True, help="Recipient address.")
@click.option("--name", default="", help="Recipient display name.")
def send_test(course: str, slug: str, to: str, name: str) -> None:
    """Send one lesson to one address through the configured transport."""
    from drip.app import dkim_signer
    from drip.curriculum.load import load_course
    from drip.mail.build import LessonMail, Recipient
    from drip.mail.message import new_message_id, sender_domain
    from drip.mail.render import Renderer
    from drip.mail.transports import Outcome, open_transport
    from drip.people.csv import valid_address

    s = settings()
    address = valid_address(to)
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
        reason = "will retry later" if result.outcome is Outcome.retry else "rejected"
        detail = f"{result.code} {result.reply}".strip() if result.code else result.reply
        raise DripError(f"not sent to {address} via {transport.describe()} ({reason}): {detail}")
    say(f"sent '{lesson.title}' to {address} via {transport.describe()}: {result.reply}")
