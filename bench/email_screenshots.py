"""Screenshots of the lesson e-mail for docs/: 375 and 600 px wide, light and dark, and 375 px with
the <body> styles stripped the way Gmail, Outlook.com and Yahoo replace <body>.

Run: python bench/email_screenshots.py [--out docs]   (needs Chromium: apt-get install chromium)
Dark mode is Chromium's prefers-color-scheme emulation (--force-dark-mode plus the Blink setting).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from drip.curriculum.load import load_course
from drip.mail.render import Renderer, recipient_keys

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


def strip_body(html: str) -> str:
    """What webmail keeps of <body>: nothing of its attributes (the content stays)."""
    return re.sub(r"<body[^>]*>", "<body>", html, count=1)


def shoot(chromium: str, html: str, out: Path, width: int, dark: bool) -> None:
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
            f"--window-size={width},2600",
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
    for width in (375, 600):
        shoot(chromium, html, args.out / f"lesson-{width}.png", width, dark=False)
        shoot(chromium, html, args.out / f"lesson-{width}-dark.png", width, dark=True)
    shoot(chromium, strip_body(html), args.out / "lesson-375-no-body-styles.png", 375, dark=False)


if __name__ == "__main__":
    main()
