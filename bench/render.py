"""Cost per message of render + build for one lesson: inline CSS once vs premailer per recipient.

Run: python bench/render.py [--recipients 10000] [--sample 200]
The per-recipient premailer pipeline is measured on --sample recipients (it costs ~12 ms each);
both figures are per message, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from drip.curriculum.load import load_course
from drip.mail.message import MessageTemplate
from drip.mail.render import RenderedLesson, Renderer, inline_css, recipient_keys
from drip.tokens import Purpose, make_token

ROOT = Path(__file__).resolve().parent.parent
SENDER = "Drip Lessons <lessons@example.com>"
NOW = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)


def values_for(rendered: RenderedLesson, i: int) -> dict[str, str]:
    values = {
        key: f"https://learn.example.com/x/{make_token('k' * 32, Purpose.open, i)}"
        for key in recipient_keys(rendered)
    }
    values["NAME"] = f"Person {i}"
    return values


def inline_once(renderer: Renderer, n: int) -> float:
    course = load_course(ROOT / "lessons", "social-media-for-executives")
    lesson = course.lessons[0]
    start = time.perf_counter()
    template = MessageTemplate.of(renderer.render(course, lesson), SENDER)
    for i in range(n):
        template.build(
            to_name=f"Person {i}",
            to_address=f"p{i}@example.com",
            date=NOW,
            message_id=f"<{i}@example.com>",
            values=values_for(template.rendered, i),
        )
    return (time.perf_counter() - start) / n


def inline_per_recipient(renderer: Renderer, n: int) -> float:
    course = load_course(ROOT / "lessons", "social-media-for-executives")
    lesson = course.lessons[0]
    start = time.perf_counter()
    for i in range(n):
        renderer._cache.clear()
        rendered = renderer.render(course, lesson)  # renders and inlines again for this recipient
        template = MessageTemplate.of(rendered, SENDER)
        template.build(
            to_name=f"Person {i}",
            to_address=f"p{i}@example.com",
            date=NOW,
            message_id=f"<{i}@example.com>",
            values=values_for(rendered, i),
        )
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    renderer = Renderer(ROOT / "templates")
    inline_css("<html><body><p>warm up</p></body></html>")
    once = inline_once(renderer, args.recipients)
    per = inline_per_recipient(renderer, args.sample)
    print(
        f"inline once, {args.recipients} recipients: {once * 1e6:8.1f} us/message "
        f"({args.recipients * once:.2f} s in all)"
    )
    print(
        f"premailer per recipient ({args.sample} sampled): {per * 1e6:8.1f} us/message "
        f"(~{args.recipients * per:.0f} s for {args.recipients})"
    )
    print(f"ratio: inline-once is {per / once:.0f}x cheaper per message")


if __name__ == "__main__":
    main()
