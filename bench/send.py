"""End-to-end sending rate (claim, plan, build, send, record) against two raw baselines, interleaved.

Run: python bench/send.py [--people 20000] [--rounds 3] [--connections 4] [--window auto]
                          [--history N]

Method: an SMTP sink (bench/sink.py, offers PIPELINING) runs in its own process. Each round runs,
in rotating order: (1) drip: a copy of a SQLite file with PEOPLE people due at once, one
`send_due` pass through DRIP_SMTP_CONNECTIONS pipelined connections by a warm worker (the course
loaded and the variant the pass sends rendered and inlined before the clock starts); (2) "pipelined raw": the
same number of pre-built messages with PIPELINING over the same number of connections, nothing
else (one thread per connection, each message's body and the next envelope in one write: the
wire's limit); (3) "smtplib raw": the same messages over one smtplib connection (four round trips
a message). Prints every round, min/median/max, drip's ratio to each baseline per round, drip's CPU
time per message and the peak memory of this process. Targets: median ratio >= 1.0 of smtplib raw
and >= 0.3 of pipelined raw; peak memory < 200 MB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sink import free_port, start_sink_process  # noqa: E402

from drip.app import App  # noqa: E402
from drip.config import load_settings  # noqa: E402
from drip.db import migrate  # noqa: E402
from drip.mail.build import Recipient  # noqa: E402
from drip.models import DELIVERY, ENROLLMENT, PERSON  # noqa: E402
from drip.people.cohorts import create_cohort, get_cohort  # noqa: E402
from drip.people.csv import Row  # noqa: E402
from drip.people.enroll import enroll_rows  # noqa: E402
from drip.sending import store  # noqa: E402
from drip.sending.plan import Send, plan  # noqa: E402
from drip.sending.run import send_due  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, inside everyone's window
COURSE = "social-media-for-executives"


def settings_for(db: Path | str, port: int, connections: int, window: int | str) -> Any:
    """Settings for a SQLite file or a database URL, with no config file."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    return load_settings(
        env={
            "DRIP_DATABASE_URL": url,
            "DRIP_MAIL_URL": f"smtp://127.0.0.1:{port}",
            "DRIP_SECRET_KEY": "bench-secret-key-0123456789",
            "DRIP_LESSONS_DIR": str(ROOT / "lessons"),
            "DRIP_TEMPLATES_DIR": str(ROOT / "templates"),
            "DRIP_BASE_URL": "https://learn.example.com",
            "DRIP_FROM": "Drip Lessons <lessons@example.com>",
            "DRIP_SMTP_CONNECTIONS": str(connections),
            "DRIP_SEND_WINDOW": str(window),
        },
        config_path=Path(tempfile.gettempdir()) / "drip-bench-none.toml",
    )


def make_template_db(path: Path | str, people: int, history: int = 0) -> None:
    """A SQLite file (or the database at a URL) with `people` people due at NOW in one cohort
    (and `history` earlier deliveries), made in a child process so that enrolment's memory does
    not count in the peak of the sending measured here."""
    import subprocess

    subprocess.run(
        [sys.executable, __file__, "--make-template", str(path), "--people", str(people),
         "--history", str(history)],
        check=True,
    )  # fmt: skip


def _make_template_db(path: str, people: int, history: int = 0) -> None:
    app = App.open(settings_for(path if "://" in path else Path(path), 1, 1, 8), check=False)
    migrate(app.engine)
    create_cohort(
        app.engine, name="bench", course=COURSE, start=date(2026, 11, 30), timezone="UTC", now=NOW
    )
    from drip.db import session

    with session(app.engine) as db:
        cohort = get_cohort(db, "bench")
    rows = [Row(i, f"person{i}@example.com", f"Person {i}", None) for i in range(people)]
    enroll_rows(app.engine, cohort, rows, now=NOW)
    add_history(app.engine, history)
    app.engine.dispose()


def add_history(engine: sa.Engine, deliveries: int) -> None:
    """Earlier sent lessons, 20 to a person, of people who have finished (never due again),
    with random Message-IDs as drip made them before they began with the time."""
    import secrets

    with engine.begin() as conn:
        enrollment = dict(conn.execute(sa.select(ENROLLMENT).limit(1)).mappings().one())
        person_id = conn.execute(sa.select(sa.func.max(PERSON.c.id))).scalar_one()
        enrollment_id = conn.execute(sa.select(sa.func.max(ENROLLMENT.c.id))).scalar_one()
    sent = NOW - timedelta(days=60)
    people = -(-deliveries // 20)
    for start in range(0, people, 5_000):
        count = min(5_000, people - start)
        with engine.begin() as conn:
            conn.execute(
                PERSON.insert(),
                [{"id": person_id + start + i + 1, "email": f"earlier{start + i}@example.com",
                  "name": f"Earlier {start + i}", "created_at": sent} for i in range(count)],
            )  # fmt: skip
            conn.execute(
                ENROLLMENT.insert(),
                [{**enrollment, "id": enrollment_id + start + i + 1,
                  "person_id": person_id + start + i + 1, "status": "completed",
                  "next_due_at": None, "lessons_sent": 20} for i in range(count)],
            )  # fmt: skip
            conn.execute(
                DELIVERY.insert(),
                [{"enrollment_id": enrollment_id + start + i + 1, "lesson_slug": f"earlier-{n}",
                  "position": n, "content_hash": "0" * 64, "kind": "lesson",
                  "message_id": f"<{secrets.token_hex(16)}@example.com>", "created_at": sent,
                  "status": "sent", "attempts": 1, "sent_at": sent, "last_error": ""}
                 for i in range(count) for n in range(20)
                 if (start + i) * 20 + n < deliveries],
            )  # fmt: skip


def sample_message(app: App) -> bytes:
    """The first lesson built for one person, as drip builds it."""
    mail = app.lesson_mail()
    course = app.dispatcher().catalog.get(COURSE)
    return mail.build(
        course,
        course.lessons[0],
        Recipient(1, "raw@example.com", "Person", NOW, "<raw.1@example.com>"),
    )


def drip_round(template: Path, tmp: Path, port: int, people: int, args: Any) -> tuple[float, float]:
    """One drip pass over a fresh copy of the database: (msg/s, CPU seconds per message)."""
    db = tmp / "round.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, db)
    return timed_pass(settings_for(db, port, args.connections, args.window), people)


def timed_pass(settings: Any, people: int) -> tuple[float, float]:
    """One warm `send_due` pass over a database where `people` are due: (msg/s, CPU seconds
    per message)."""
    app = App.open(settings, check=False)
    dispatcher = app.dispatcher()
    warm(dispatcher)
    cpu, started = time.process_time(), time.perf_counter()
    result = send_due(dispatcher, NOW)
    dispatcher.transport.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    app.engine.dispose()
    assert result.sent == people, result.summary()
    return people / elapsed, cpu / people


def warm(dispatcher: Any) -> None:
    """Load the course and render and inline the variant this pass sends (the first lesson with
    the cohort's welcome), as a worker that ran a pass before holds them; nothing is claimed."""
    with dispatcher.engine.connect() as conn:
        first = conn.execute(sa.select(ENROLLMENT.c.id).limit(1)).scalar_one()
        rows, existing = store.load_batch(conn, [first])
    course = dispatcher.catalog.get(rows[0].course)
    action = plan(rows[0], course, existing.get(first, {}), NOW)
    assert isinstance(action, Send), action
    dispatcher.mail.template(action.course, action.lesson, action.extras)


def _stuffed(data: bytes) -> bytes:
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _reply(file: Any) -> int:
    while True:
        line = file.readline()
        if line[3:4] != b"-":
            return int(line[:3])


def pipelined_raw(port: int, data: bytes, count: int, connections: int) -> float:
    """Pre-built bytes with PIPELINING over `connections` connections, one thread each: every
    write carries one body and the next envelope (MAIL, RCPT, DATA)."""
    body = _stuffed(data)

    def one(share: int, errors: list[str]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            file = sock.makefile("rb")
            _reply(file)
            sock.sendall(b"EHLO bench\r\n")
            _reply(file)

            def envelope(n: int) -> bytes:
                return f"MAIL FROM:<lessons@example.com>\r\nRCPT TO:<raw{n}@example.com>\r\nDATA\r\n".encode()

            sock.sendall(envelope(0))
            replies = [_reply(file) for _ in range(3)]
            for n in range(share):
                sock.sendall(body + (envelope(n + 1) if n + 1 < share else b""))
                replies = [_reply(file) for _ in range(4 if n + 1 < share else 1)]
                if replies[0] != 250:
                    errors.append(str(replies))
            sock.sendall(b"QUIT\r\n")

    errors: list[str] = []
    shares = [
        count // connections + (1 if i < count % connections else 0) for i in range(connections)
    ]
    threads = [threading.Thread(target=one, args=(s, errors)) for s in shares]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    return count / elapsed


def smtplib_raw(port: int, data: bytes, count: int) -> float:
    """The same bytes over one smtplib connection: MAIL, RCPT, DATA, body, each awaited."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for i in range(count):
            client.sendmail("lessons@example.com", [f"raw{i}@example.com"], data)
    return count / (time.perf_counter() - started)


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    ordered = sorted(values)
    return " / ".join(fmt.format(v) for v in (ordered[0], statistics.median(ordered), ordered[-1]))


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--window", default="auto", help="DRIP_SEND_WINDOW (auto: 4 x connections, drip's default)"
    )
    parser.add_argument(
        "--history", type=int, default=0,
        help="earlier deliveries the database holds first (a database that has run a while)",
    )  # fmt: skip
    parser.add_argument("--make-template", help=argparse.SUPPRESS)
    parser.add_argument("--dkim", action="store_true", help="Only measure DKIM's cost a message.")
    args = parser.parse_args()
    if args.dkim:
        dkim_cost()
        return
    if args.make_template:
        _make_template_db(args.make_template, args.people, args.history)
        return
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    print(
        f"\npeople due: {args.people:,}; earlier deliveries: {args.history:,}; "
        f"connections: {args.connections}; window: {args.window}; "
        f"rounds: {args.rounds}\n"
    )
    port = free_port()
    sink, _stats = start_sink_process(port)
    runs: dict[str, list[float]] = {"drip": [], "pipelined raw": [], "smtplib raw": []}
    cpu: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            template = tmp / "template.db"
            make_template_db(template, args.people, args.history)
            data = sample_message(App.open(settings_for(template, port, 1, 8), check=False))
            measures: dict[str, Callable[[], float]] = {
                "pipelined raw": lambda: pipelined_raw(port, data, args.people, args.connections),
                "smtplib raw": lambda: smtplib_raw(port, data, args.people),
            }
            for n in range(args.rounds):
                order = ["drip", "pipelined raw", "smtplib raw"]
                order = order[n % 3 :] + order[: n % 3]  # nobody always goes first
                for name in order:
                    if name == "drip":
                        rate, per_message = drip_round(template, tmp, port, args.people, args)
                        cpu.append(per_message)
                    else:
                        rate = measures[name]()
                    runs[name].append(rate)
                    print(f"round {n + 1}: {name:14s} {rate:8,.0f} msg/s")
            with smtplib.SMTP("127.0.0.1", port) as client:  # the count, not the whole log
                received = int(client.docmd("STATS")[1])
    finally:
        sink.terminate()  # its log of every message is not read here: it is not drip's memory
        sink.wait(30)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\nmsg/s, min / median / max:")
    for name, rates in runs.items():
        print(f"  {name:14s} {spread(rates)}")
    for name in ("smtplib raw", "pipelined raw"):
        ratios = [d / b for d, b in zip(runs["drip"], runs[name], strict=True)]
        target = "1.0" if name == "smtplib raw" else "0.3"
        print(
            f"drip / {name} per round, min / median / max: {spread(ratios, '{:.2f}')} "
            f"(target median >= {target})"
        )
    print(f"drip CPU per message, min / median / max: {spread([c * 1e6 for c in cpu])} us")
    print(f"sink received {received:,} messages; peak memory {peak_mb:.0f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
