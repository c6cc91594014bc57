"""drip against django-post_office, the queue a Python shop would pick, on the same sink.

Run: pip install django-post_office; python bench/peer.py [--people 20000] [--rounds 3]

Method: an SMTP sink (bench/sink.py) runs in its own process. Each round, in alternating order:
(1) drip: a copy of a SQLite file with PEOPLE people due, one `send_due` pass (claim, plan, build,
send, record), DRIP_SMTP_CONNECTIONS pipelined connections, window 8; (2) django-post_office
(PyPI), at its fastest documented setting: one process (`send_queued(processes=1)`),
BATCH_SIZE = PEOPLE (one batch), THREADS_PER_PROCESS = 1 (more threads were slower here),
LOG_LEVEL = 0 (no log row per sent message), Django's SMTP backend; it queues the same PEOPLE
personalised messages (drip's own inlined lesson HTML and text with each person's name and
links filled in, as an application would) with `send_many` and sends them with `send_queued`,
timed from the first queued message to the last sent, on a fresh SQLite file. Prints each round,
min/median/max, and drip's rate over post_office's per round (target >= 3 on SQLite).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import COURSE, NOW, drip_round, make_template_db, settings_for  # noqa: E402
from sink import free_port, start_sink_process, stop_sink  # noqa: E402

from drip.app import App  # noqa: E402
from drip.mail.render import recipient_keys  # noqa: E402


def setup_django(db: Path, port: int, people: int) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}},
        INSTALLED_APPS=["django.contrib.contenttypes", "post_office"],
        EMAIL_BACKEND="post_office.EmailBackend",
        POST_OFFICE={
            "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
            "BATCH_SIZE": people,
            "THREADS_PER_PROCESS": 1,
            "LOG_LEVEL": 0,
            "MESSAGE_ID_ENABLED": True,
        },
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        USE_TZ=True,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


def lesson_parts(template_db: Path, port: int) -> tuple[str, str, str, list[str]]:
    """drip's first lesson, rendered and inlined once: subject, html, text, recipient keys."""
    app = App.open(settings_for(template_db, port, 1, 8), check=False)
    dispatcher = app.dispatcher()
    course = dispatcher.catalog.get(COURSE)
    rendered = dispatcher.mail.renderer.render(course, course.lessons[0])
    html, text = rendered.personalize({k: f"[[{k}]]" for k in recipient_keys(rendered)})
    app.engine.dispose()
    return course.lessons[0].title, html, text, list(recipient_keys(rendered))


def post_office_round(db: Path, people: int, parts: tuple[str, str, str, list[str]]) -> float:
    """Queue and send PEOPLE personalised messages with post_office; messages a second."""
    from django.core.management import call_command
    from django.db import connection
    from post_office import mail
    from post_office.models import Email

    subject, html, text, keys = parts
    call_command("migrate", verbosity=0)
    Email.objects.all().delete()
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for n in range(people):
        values = {k: f"https://learn.example.com/{k.lower()}/{n}.sig" for k in keys}
        values["NAME"] = f"Person {n}"
        body, page = text, html
        for key, value in values.items():
            body = body.replace(f"[[{key}]]", value)
            page = page.replace(f"[[{key}]]", value)
        batch.append(
            {
                "sender": "Drip Lessons <lessons@example.com>",
                "recipients": [f"person{n}@example.com"],
                "subject": subject,
                "message": body,
                "html_message": page,
            }
        )
    mail.send_many(batch)
    sent, failed, _requeued = mail.send_queued(processes=1)
    elapsed = time.perf_counter() - started
    connection.close()
    assert (sent, failed) == (people, 0), (sent, failed)
    return people / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    print(f"\npeople: {args.people:,}; rounds: {args.rounds}; NOW: {NOW:%Y-%m-%d %H:%M}\n")
    port = free_port()
    sink, stats_path = start_sink_process(port)
    rates: dict[str, list[float]] = {"drip": [], "post_office": []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            template = tmp / "template.db"
            make_template_db(template, args.people)
            parts = lesson_parts(template, port)
            setup_django(tmp / "post_office.db", port, args.people)
            options = SimpleNamespace(connections=args.connections, window=8)
            for r in range(args.rounds):
                for name in ("drip", "post_office")[:: 1 if r % 2 == 0 else -1]:
                    if name == "drip":
                        rate, _cpu = drip_round(template, tmp, port, args.people, options)
                    else:
                        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
                        rate = post_office_round(tmp / "post_office.db", args.people, parts)
                    rates[name].append(rate)
                    print(f"round {r + 1}: {name:12s} {rate:7,.0f} msg/s")
    finally:
        stop_sink(sink, stats_path)
    print("\nmsg/s, min / median / max:")
    for name, values in rates.items():
        print(
            f"  {name:12s} {min(values):7,.0f} / {statistics.median(values):7,.0f} / {max(values):7,.0f}"
        )
    ratios = sorted(d / p for d, p in zip(rates["drip"], rates["post_office"], strict=True))
    print(
        f"drip / post_office per round, min / median / max: {ratios[0]:.2f} / "
        f"{statistics.median(ratios):.2f} / {ratios[-1]:.2f} (target >= 3 on SQLite)"
    )


if __name__ == "__main__":
    main()
