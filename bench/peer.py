"""drip against django-post_office, the queue a Python shop would pick, on the same sink.

Run: pip install -e '.[bench]'; python bench/peer.py [--people 20000] [--rounds 3]
     [--database-url postgresql://user@host/db]

Method: an SMTP sink (bench/sink.py) runs in its own process. Each round, in alternating order:
(1) drip: a copy of a SQLite file with PEOPLE people due, one `send_due` pass (claim, plan, build,
send, record), DRIP_SMTP_CONNECTIONS pipelined connections, drip's default window (4 x the
connections); (2) django-post_office
(PyPI), at its fastest documented setting: one process (`send_queued(processes=1)`),
BATCH_SIZE = PEOPLE (one batch), THREADS_PER_PROCESS = 1 (more threads were slower here),
LOG_LEVEL = 0 (no log row per sent message), Django's SMTP backend; it queues the same PEOPLE
personalised messages (drip's own inlined lesson HTML and text with each person's name and
links filled in, as an application would) with `send_many` and sends them with `send_queued`,
timed from the first queued message to the last sent, on a fresh SQLite file. Prints each round,
min/median/max, and drip's rate over post_office's per round (target >= 3 on SQLite).

With --database-url (PostgreSQL; the URL's database is only used to create others), both run on
PostgreSQL instead: drip on a fresh copy (CREATE DATABASE ... TEMPLATE) of a database where
PEOPLE are due, post_office on a database of its own, emptied each round as on SQLite; every
database made here is dropped at the end (target >= 2 on PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from send import (  # noqa: E402
    COURSE,
    NOW,
    drip_round,
    make_template_db,
    settings_for,
    timed_pass,
)
from sink import free_port, start_sink_process, stop_sink  # noqa: E402

from drip.app import App  # noqa: E402
from drip.mail.render import recipient_keys  # noqa: E402


def setup_django(db: Path | str, port: int, people: int) -> None:
    import django
    from django.conf import settings

    if isinstance(db, str):  # a PostgreSQL URL
        url = urlsplit(db)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": url.path.lstrip("/"),
            "USER": url.username or "",
            "PASSWORD": url.password or "",
            "HOST": url.hostname or "",
            "PORT": str(url.port or ""),
        }
    else:
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}
    settings.configure(
        DATABASES={"default": database},
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


def lesson_parts(template_db: Path | str, port: int) -> tuple[str, str, str, list[str]]:
    """drip's first lesson, rendered and inlined once: subject, html, text, recipient keys."""
    app = App.open(settings_for(template_db, port, 1, 8), check=False)
    dispatcher = app.dispatcher()
    course = dispatcher.catalog.get(COURSE)
    rendered = dispatcher.mail.renderer.render(course, course.lessons[0])
    html, text = rendered.personalize({k: f"[[{k}]]" for k in recipient_keys(rendered)})
    app.engine.dispose()
    return course.lessons[0].title, html, text, list(recipient_keys(rendered))


def post_office_round(people: int, parts: tuple[str, str, str, list[str]]) -> float:
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


class Postgres:
    """Databases made for the run next to the one in `url`, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://")
        self.made: list[str] = []

    def at(self, name: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)

    def create(self, name: str, template: str = "") -> str:
        self.sql(f"DROP DATABASE IF EXISTS {name}")
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        if name not in self.made:
            self.made.append(name)
        return self.at(name)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            with contextlib.suppress(Exception):
                self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--database-url", default="", help="PostgreSQL to run both on.")
    args = parser.parse_args()
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"\npeople: {args.people:,}; rounds: {args.rounds}; database: {database}; "
          f"NOW: {NOW:%Y-%m-%d %H:%M}\n")  # fmt: skip
    port = free_port()
    sink, stats_path = start_sink_process(port)
    rates: dict[str, list[float]] = {"drip": [], "post_office": []}
    pg = Postgres(args.database_url) if args.database_url else None
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            options = SimpleNamespace(connections=args.connections, window="auto")
            template: Path | str = tmp / "template.db"
            office: Path | str = tmp / "post_office.db"
            if pg is not None:
                template = pg.create("drip_peer_template")
                office = pg.create("drip_peer_post_office")
            make_template_db(template, args.people)
            parts = lesson_parts(template, port)
            setup_django(office, port, args.people)
            for r in range(args.rounds):
                for name in ("drip", "post_office")[:: 1 if r % 2 == 0 else -1]:
                    if name == "drip" and pg is None:
                        rate, _cpu = drip_round(template, tmp, port, args.people, options)
                    elif name == "drip" and pg is not None:
                        url = pg.create("drip_peer_round", template="drip_peer_template")
                        settings = settings_for(url, port, options.connections, options.window)
                        rate, _cpu = timed_pass(settings, args.people)
                    else:
                        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
                        rate = post_office_round(args.people, parts)
                    rates[name].append(rate)
                    print(f"round {r + 1}: {name:12s} {rate:7,.0f} msg/s", flush=True)
    finally:
        stop_sink(sink, stats_path)
        if pg is not None:
            pg.drop_all()
    print("\nmsg/s, min / median / max:")
    for name, values in rates.items():
        print(
            f"  {name:12s} {min(values):7,.0f} / {statistics.median(values):7,.0f} / {max(values):7,.0f}"
        )
    ratios = sorted(d / p for d, p in zip(rates["drip"], rates["post_office"], strict=True))
    target = "2 on PostgreSQL" if pg is not None else "3 on SQLite"
    print(
        f"drip / post_office per round, min / median / max: {ratios[0]:.2f} / "
        f"{statistics.median(ratios):.2f} / {ratios[-1]:.2f} (target >= {target})"
    )


if __name__ == "__main__":
    main()
