"""End-to-end sending rate (claim, render, send, record) vs raw sends of pre-built bytes.

Run: python bench/send.py [--people 20000]
20,000 people are due at once in a SQLite file; an SMTP sink runs in a separate process
(bench/sink.py). The same run sends the same number of pre-built messages over one smtplib
connection with nothing else, and prints both rates, their ratio (target >= 0.5) and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import smtplib
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink import free_port, request_stats, start_sink_process, stop_sink  # noqa: E402

from drip.app import App  # noqa: E402
from drip.config import load_settings  # noqa: E402
from drip.db import migrate, session  # noqa: E402
from drip.mail.message import MessageTemplate  # noqa: E402
from drip.mail.render import recipient_keys  # noqa: E402
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows, get_cohort  # noqa: E402
from drip.sending.run import send_due  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, inside everyone's window


def raw_rate(port: int, data: bytes, count: int) -> float:
    """Messages per second sending the same bytes over one smtplib connection."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for i in range(count):
            client.sendmail("lessons@example.com", [f"raw{i}@example.com"], data)
    return count / (time.perf_counter() - started)


def _first_lesson(dispatcher: Any) -> tuple[Any, Any]:
    course = dispatcher.catalog.get("social-media-for-executives")
    return course, course.lessons[0]


def _values(rendered: Any) -> dict[str, str]:
    values = dict.fromkeys(
        recipient_keys(rendered), "https://learn.example.com/x/1.abcdefghijklmnopqrstuv"
    )
    values["NAME"] = "Person"
    return values


def dkim_cost(count: int = 2_000) -> None:
    """Per-message cost of building one lesson, without and with a DKIM signature (2048-bit RSA)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from drip.curriculum.load import Catalog
    from drip.mail.build import LessonMail, Recipient
    from drip.mail.dkim import DkimSigner
    from drip.mail.render import Renderer

    with tempfile.TemporaryDirectory() as tmp:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = Path(tmp) / "dkim.pem"
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
        course = Catalog(ROOT / "lessons").get("sample")
        lesson = course.lessons[0]
        renderer = Renderer(ROOT / "templates")
        sender = "Drip Lessons <lessons@example.com>"
        plain = LessonMail(renderer, sender, "https://learn.example.com", "k" * 32)
        signed = LessonMail(renderer, sender, "https://learn.example.com", "k" * 32,
                            dkim=DkimSigner.load(pem, "drip", "example.com"))  # fmt: skip
        figures = {}
        for name, mail in (("build", plain), ("build + DKIM", signed)):
            mail.build(course, lesson, Recipient(1, "p@example.com", "P", NOW, "<w@example.com>"))
            started = time.perf_counter()
            for i in range(count):
                recipient = Recipient(i, f"p{i}@example.com", "P", NOW, f"<{i}@example.com>")
                mail.build(course, lesson, recipient)
            figures[name] = (time.perf_counter() - started) / count * 1e6
    for name, us in figures.items():
        print(f"{name:<14} {us:8.0f} us a message")
    print(f"DKIM adds {figures['build + DKIM'] - figures['build']:.0f} us a message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--dkim", action="store_true", help="Only measure DKIM's cost a message.")
    args = parser.parse_args()
    if args.dkim:
        dkim_cost()
        return
    port = free_port()
    sink, stats_path = start_sink_process(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                env={
                    "DRIP_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                    "DRIP_MAIL_URL": f"smtp://127.0.0.1:{port}",
                    "DRIP_SECRET_KEY": "bench-secret-key-0123456789",
                    "DRIP_LESSONS_DIR": str(ROOT / "lessons"),
                    "DRIP_TEMPLATES_DIR": str(ROOT / "templates"),
                    "DRIP_BASE_URL": "https://learn.example.com",
                    "DRIP_FROM": "Drip Lessons <lessons@example.com>",
                },
                config_path=Path(tmp) / "none.toml",
            )
            app = App.open(settings, check=False)
            migrate(app.engine)
            create_cohort(
                app.engine,
                name="bench",
                course="social-media-for-executives",
                start=date(2026, 11, 30),
                timezone="UTC",
                now=NOW,
            )
            with session(app.engine) as db:
                cohort = get_cohort(db, "bench")
            enroll_rows(
                app.engine,
                cohort,
                [Row(i, f"person{i}@example.com", f"Person {i}", None) for i in range(args.people)],
                now=NOW,
            )
            dispatcher = app.dispatcher()
            warm = dispatcher.renderer.render(*_first_lesson(dispatcher))
            raw_before = raw_rate(port, MessageTemplate.of(warm, settings.sender).build(
                to_name="Person", to_address="raw@example.com", date=NOW,
                message_id="<raw@example.com>", values=_values(warm),
            ), args.people)  # fmt: skip
            started = time.perf_counter()
            result = send_due(dispatcher, NOW)
            dispatcher.transport.close()
            pipeline = time.perf_counter() - started
            assert result.sent == args.people, result.summary()
            # The same message, pre-built, over one connection with nothing else: measured
            # before and after the pipeline (the machine drifts), and averaged.
            raw_after = raw_rate(port, MessageTemplate.of(warm, settings.sender).build(
                to_name="Person", to_address="raw@example.com", date=NOW,
                message_id="<raw@example.com>", values=_values(warm),
            ), args.people)  # fmt: skip
            bare = (raw_before + raw_after) / 2
            stats = request_stats(port, stats_path)
    finally:
        stop_sink(sink, stats_path)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"people due:               {args.people:,}")
    rate = args.people / pipeline
    print(f"end to end (claim, render, send, record): {rate:8,.0f} msg/s  ({pipeline:.1f} s)")
    print(f"raw sends of pre-built bytes, before:     {raw_before:8,.0f} msg/s")
    print(f"raw sends of pre-built bytes, after:      {raw_after:8,.0f} msg/s")
    print(f"ratio to their mean: {rate / bare:.2f} (target >= 0.5)")
    print(
        f"sink received {stats['count']:,} messages; peak memory {peak_mb:.0f} MB (target < 300 MB)"
    )


if __name__ == "__main__":
    main()
