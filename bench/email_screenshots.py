"""Screenshots for docs/: the lesson e-mail 375 and 600 px wide, light and dark, and 375 px with
the <body> styles stripped the way Gmail, Outlook.com and Yahoo replace <body>; the digest at
600 px; the answer and "got it" pages at 375 px, light and dark.

Run: python bench/email_screenshots.py [--out docs]   (needs Chromium: apt-get install chromium)
Dark mode is Chromium's prefers-color-scheme emulation (--force-dark-mode plus the Blink setting).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from drip.curriculum.load import load_course
from drip.mail.render import Renderer, recipient_keys
from drip.reports.digest import Named, digest_parts
from drip.reports.model import CohortReport, PersonRow, Summary
from drip.tracking.hits import Answered, Confirmed
from drip.tracking.pages import Status

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://learn.example.com"


def lesson_html() -> str:
    course = load_course(ROOT / "lessons", "social-media-for-executives")
    rendered = Renderer(ROOT / "templates").render(course, course.lessons[2])
    values = {key: f"{BASE}/{key.lower()}" for key in recipient_keys(rendered)}
    values["NAME"] = "Ada"
    values["OPEN"] = (
        "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    )
    return rendered.personalize(values)[0]


def digest_html() -> str:
    people = [
        PersonRow(
            f"{n.split()[0].lower()}@example.com",
            n,
            "active",
            "",
            3,
            20,
            "3 of 20",
            None,
            0,
            0,
            i < 2,
        )
        for i, n in enumerate(["Bob Baker", "Fay Fischer", "Ann Archer", "Eve Evans"])
    ]
    summary = Summary(
        "Leaders Q1", "social-media-for-executives", "Social media for executives", 20, 12, 10,
        1, 0, 1, 0, 0, 36, 20, 24, 0.56, 0.67, 9, 8, 6, 0.15, 10, 2,
    )  # fmt: skip
    report = CohortReport(summary, [], people, [], [], True, datetime(2026, 3, 9, 8, tzinfo=UTC))
    paused = [Named("Hal Jordan", "hal@example.com")]
    return digest_parts(report, paused, ROOT / "templates", "leaders-q1-2026-03-09.html")[0]


def page_html(name: str, **context: object) -> str:
    pages = Environment(
        loader=FileSystemLoader(ROOT / "templates" / "web"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    return pages.get_template(name).render(contact="lessons@example.com", **context)


def web_pages() -> dict[str, str]:
    course = load_course(ROOT / "lessons", "social-media-for-executives")
    lesson = course.lessons[2]
    assert lesson.check is not None
    nxt = datetime(2026, 12, 1, 7, 30, tzinfo=ZoneInfo("Europe/London"))
    status = Status("active", None, nxt, "Europe/London", lessons_sent=3, course=course.slug)
    when = "Tuesday 1 December at 07:30 (Europe/London)"
    wrong = (lesson.check.answer + 1) % len(lesson.check.options)
    answered = Answered(lesson.title, lesson.check.question, list(lesson.check.options), wrong,
                        lesson.check.answer, lesson.check.explanation, False)  # fmt: skip
    paused = Status("paused", date(2026, 12, 19), nxt, "Europe/London", True, 3, course.slug)
    return {
        "web-answer": page_html(
            "answer.html.j2", answer=answered, status=status, when=when, total=20
        ),  # fmt: skip
        "web-confirm": page_html(
            "confirm.html.j2",
            lesson=Confirmed(lesson.title, lesson.takeaway, status),
            status=status,
            when=when,
            total=20,
        ),  # fmt: skip
        "web-pause": page_html(
            "pause.html.j2",
            status=paused,
            action="pause2",
            problem="",
            when="Monday 21 December at 07:30 (Europe/London)",
            total=20,
        ),  # fmt: skip
    }


def strip_body(html: str) -> str:
    """What webmail keeps of <body>: nothing of its attributes (the content stays)."""
    return re.sub(r"<body[^>]*>", "<body>", html, count=1)


def shoot(chromium: str, html: str, out: Path, width: int, dark: bool, height: int = 2600) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "mail.html"
        page.write_text(html, encoding="utf-8")
        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp}/profile",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
        ]
        if dark:
            args += ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
        subprocess.run([*args, page.as_uri()], check=True, capture_output=True, timeout=120)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    html = lesson_html()
    for width, height in ((375, 3100), (600, 2500)):
        shoot(chromium, html, args.out / f"lesson-{width}.png", width, False, height)
        shoot(chromium, html, args.out / f"lesson-{width}-dark.png", width, True, height)
    stripped = strip_body(html)
    shoot(chromium, stripped, args.out / "lesson-375-no-body-styles.png", 375, False, 3100)
    shoot(chromium, digest_html(), args.out / "digest-600.png", 600, dark=False, height=1300)
    for name, page in web_pages().items():
        shoot(chromium, page, args.out / f"{name}.png", 375, dark=False, height=1100)
        shoot(chromium, page, args.out / f"{name}-dark.png", 375, dark=True, height=1100)


if __name__ == "__main__":
    main()
