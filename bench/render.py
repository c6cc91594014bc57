"""Cost per message of building one lesson for many recipients: drip's pre-folded message vs a
per-recipient Jinja render of a template whose CSS is already inlined (the honest alternative).

Run: python bench/render.py [--recipients 5000] [--rounds 5]

Method: both start from the same lesson, rendered and CSS-inlined once (premailer runs once for
both: nobody re-inlines per recipient). drip fills the per-recipient values (signed links, name)
into its pre-folded MIME template (`MessageTemplate.build`). The baseline compiles the inlined
HTML and the text as Jinja templates once, then per recipient renders both with the same values
(autoescaped) and builds the message with the standard library (`EmailMessage`, text and HTML
alternatives, quoted-printable, `as_bytes`), as an application would. Both sign the same link
tokens; "jinja only" is the baseline's render without the message. Rounds rotate the order; prints per-message us min/median/max and the ratio of
the baseline's cost to drip's per round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

import jinja2

from drip.curriculum.load import load_course
from drip.mail.message import MessageTemplate
from drip.mail.render import RenderedLesson, Renderer, recipient_keys
from drip.tokens import link_values

ROOT = Path(__file__).resolve().parent.parent
SENDER = "Drip Lessons <lessons@example.com>"
NOW = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)
KEY = "k" * 32


def values_for(rendered: RenderedLesson, i: int) -> dict[str, str]:
    options = len(rendered.lesson.check.options) if rendered.lesson.check else 0
    values = link_values("https://learn.example.com", KEY, i, options, len(rendered.links))
    values["NAME"] = f"Person {i}"
    return values


def drip_build(rendered: RenderedLesson, n: int) -> float:
    template = MessageTemplate.of(rendered, SENDER)
    start = time.process_time()
    for i in range(n):
        template.build(
            to_name=f"Person {i}",
            to_address=f"p{i}@example.com",
            date=NOW,
            message_id=f"<{i}@example.com>",
            values=values_for(rendered, i),
        )
    return (time.process_time() - start) / n


def jinja_build(rendered: RenderedLesson, n: int) -> float:
    keys = sorted(recipient_keys(rendered))
    names = {key: f"{{{{ v.k{index} }}}}" for index, key in enumerate(keys)}
    html_source, text_source = rendered.personalize(names)
    html = jinja2.Environment(autoescape=True).from_string(html_source)
    text = jinja2.Environment(autoescape=False).from_string(text_source)
    start = time.process_time()
    for i in range(n):
        values = values_for(rendered, i)
        v = {f"k{index}": values[key] for index, key in enumerate(keys)}
        message = EmailMessage(policy=SMTP)
        message["From"] = SENDER
        message["To"] = f"Person {i} <p{i}@example.com>"
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(NOW)
        message["Message-ID"] = f"<{i}@example.com>"
        message["List-Unsubscribe"] = f"<{values['UNSUBSCRIBE']}>"
        message.set_content(text.render(v=v), cte="quoted-printable")
        message.add_alternative(html.render(v=v), subtype="html", cte="quoted-printable")
        message.as_bytes()
    return (time.process_time() - start) / n


def jinja_only(rendered: RenderedLesson, n: int) -> float:
    """The Jinja part of the baseline alone: both parts rendered, no message built."""
    keys = sorted(recipient_keys(rendered))
    names = {key: f"{{{{ v.k{index} }}}}" for index, key in enumerate(keys)}
    html_source, text_source = rendered.personalize(names)
    html = jinja2.Environment(autoescape=True).from_string(html_source)
    text = jinja2.Environment(autoescape=False).from_string(text_source)
    start = time.process_time()
    for i in range(n):
        values = values_for(rendered, i)
        v = {f"k{index}": values[key] for index, key in enumerate(keys)}
        text.render(v=v)
        html.render(v=v)
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    course = load_course(ROOT / "lessons", "social-media-for-executives")
    rendered = Renderer(ROOT / "templates").render(course, course.lessons[0])
    runs: dict[str, list[float]] = {"drip": [], "jinja + email": [], "jinja only": []}
    for r in range(args.rounds):
        order = [("drip", drip_build), ("jinja + email", jinja_build), ("jinja only", jinja_only)]
        order = order[r % 3 :] + order[: r % 3]
        for name, measure in order:
            runs[name].append(measure(rendered, args.recipients))
    print(f"\n{args.recipients:,} recipients a round, {args.rounds} rounds, CPU time:")
    for name, values in runs.items():
        us = sorted(v * 1e6 for v in values)
        print(
            f"  {name:14s} {us[0]:7.1f} / {statistics.median(us):7.1f} / {us[-1]:7.1f} us a message"
        )
    for name in ("jinja + email", "jinja only"):
        ratios = sorted(j / d for d, j in zip(runs["drip"], runs[name], strict=True))
        print(
            f"{name} / drip per round, min / median / max: {ratios[0]:.1f} / "
            f"{statistics.median(ratios):.1f} / {ratios[-1]:.1f}x"
        )


if __name__ == "__main__":
    main()
