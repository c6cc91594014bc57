"""Events per second through the outbox to a real LRS (Ralph), against the LRS's own ingest rate
(the same number of statements PUT straight to it with one kept-alive client) in the same run.

Run: python bench/xapi.py [--events 300] [--rounds 5]
Needs Ralph in ./.ralph-venv or $DRIP_TEST_RALPH_PYTHON (see tests/support.py). Each figure gets
a fresh Ralph (its file backend reads its whole file on every PUT, so a fuller file is slower);
rounds alternate which goes first; prints min/median/max of each and the ratio of the medians. drip's figure is the whole pass: claim, join, build, PUT, record.
Also times writing the events with and without the outbox (the cost inside the event's transaction).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import RALPH_PASSWORD, RALPH_USER, Ralph, ralph_python  # noqa: E402

from drip import events  # noqa: E402
from drip.db import make_engine, migrate  # noqa: E402
from drip.models import DELIVERY as D  # noqa: E402
from drip.models import ENROLLMENT as E  # noqa: E402
from drip.outbound.outbox import push_all  # noqa: E402
from drip.outbound.xapi import Identity, XapiTarget  # noqa: E402
from drip.outgoing import OutboxConfig, enable, namespace_for  # noqa: E402
from drip.people.cohorts import create_cohort  # noqa: E402
from drip.people.csv import Row  # noqa: E402
from drip.people.enroll import enroll_rows  # noqa: E402
from drip.states import EventKind, Verdict  # noqa: E402

BASE = "https://learn.example.com/xapi"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def database(folder: Path, people: int) -> tuple[str, list[tuple[int, int]]]:
    """A migrated SQLite file with a cohort, its people and one sent delivery each."""
    url = f"sqlite:///{folder / 'drip.db'}"
    engine = make_engine(url)
    migrate(engine)
    cohort = create_cohort(engine, name="bench", course="sample", start=NOW.date(),
                           timezone="UTC", now=NOW)  # fmt: skip
    enroll_rows(engine, cohort, [Row(i + 2, f"p{i}@example.com", f"P {i}", None)
                                 for i in range(people)], now=NOW)  # fmt: skip
    with engine.begin() as conn:
        enrollments = list(conn.execute(sa.select(E.c.id).order_by(E.c.id)).scalars())
        conn.execute(D.insert(), [
            {"enrollment_id": e, "lesson_slug": "lesson-one", "position": 1, "content_hash": "h",
             "message_id": f"<{e}@bench>", "created_at": NOW, "status": "sent", "attempts": 1,
             "sent_at": NOW, "last_error": ""}
            for e in enrollments
        ])  # fmt: skip
        pairs = [tuple(r) for r in conn.execute(sa.select(D.c.enrollment_id, D.c.id))]
    engine.dispose()
    return url, pairs  # type: ignore[return-value]


def rows(pairs: list[tuple[int, int]], n: int) -> list[events.Row]:
    return [
        events.hit(
            EventKind.open,
            pairs[i % len(pairs)][0],
            pairs[i % len(pairs)][1],
            NOW + timedelta(seconds=i),
            method="GET",
            seconds_since_send=60.0,
            verdict=Verdict.human,
            reason="mail client",
        )  # fmt: skip
        for i in range(n)
    ]


def write(url: str, batch: list[events.Row], config: OutboxConfig | None) -> float:
    """Seconds to write the events, 100 per transaction, with or without the outbox."""
    engine = enable(make_engine(url), config)
    started = time.perf_counter()
    for start in range(0, len(batch), 100):
        with engine.begin() as conn:
            events.insert(conn, batch[start : start + 100])
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def through_drip(ralph: Ralph, url: str, config: OutboxConfig, n: int) -> float:
    engine = enable(make_engine(url), config)
    target = XapiTarget(
        ralph.endpoint, Identity(BASE), config.namespace, RALPH_USER, RALPH_PASSWORD
    )
    started = time.perf_counter()
    result = push_all(engine, [target], NOW + timedelta(days=1))["xapi"]
    seconds = time.perf_counter() - started
    engine.dispose()
    assert result.sent == n and not result.stopped, result.summary()
    return n / seconds


def direct(ralph: Ralph, n: int) -> float:
    """The LRS's ingest rate: n statements PUT one by one, as a client that does nothing else."""
    statements = []
    for i in range(n):
        key = str(uuid.uuid4())
        statements.append((key, {
            "id": key, "actor": {"objectType": "Agent", "mbox": f"mailto:p{i}@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced", "display": {"en-US": "experienced"}},
            "object": {"objectType": "Activity", "id": f"{BASE}/courses/sample/lessons/lesson-one"},
            "timestamp": (NOW + timedelta(seconds=i)).isoformat(), "version": "1.0.3",
        }))  # fmt: skip
    with httpx.Client(timeout=10) as client:
        started = time.perf_counter()
        for key, body in statements:
            response = client.put(f"{ralph.endpoint}/statements", params={"statementId": key},
                                  json=body, auth=(RALPH_USER, RALPH_PASSWORD),
                                  headers={"X-Experience-API-Version": "1.0.3"})  # fmt: skip
            assert response.status_code == 204, response.text
        return n / (time.perf_counter() - started)


def spread(values: list[float], unit: str) -> str:
    return (f"min {min(values):,.0f}  median {statistics.median(values):,.0f}  "
            f"max {max(values):,.0f} {unit}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    python = ralph_python()
    if python is None:
        sys.exit("Ralph is not installed: see tests/support.py (ralph_python)")
    config = OutboxConfig(("xapi",), namespace_for(BASE))
    drip_rates, lrs_rates, plain_writes, outbox_writes = [], [], [], []
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            url, pairs = database(folder, 100)
            batch = rows(pairs, args.events)
            plain_writes.append(args.events / write(url, batch, None))
            outbox_writes.append(args.events / write(url, batch, config))  # these are pushed
            # A fresh LRS for each figure: both start from an empty file.
            for which in ("lrs", "drip") if round_no % 2 else ("drip", "lrs"):
                ralph = Ralph(python, folder / f"ralph-{which}")
                ralph.start()
                try:
                    if which == "drip":
                        drip_rates.append(through_drip(ralph, url, config, args.events))
                    else:
                        lrs_rates.append(direct(ralph, args.events))
                    assert len(ralph.stored()) == args.events
                finally:
                    ralph.stop()
        print(f"round {round_no + 1}: drip {drip_rates[-1]:,.0f}/s, LRS direct {lrs_rates[-1]:,.0f}/s",
              flush=True)  # fmt: skip
    print(f"{args.events} events a round, {args.rounds} rounds, Ralph (file backend) on 127.0.0.1")
    print(f"through drip's outbox to the LRS: {spread(drip_rates, 'events/s')}")
    print(f"LRS ingest, direct PUTs:          {spread(lrs_rates, 'statements/s')}")
    print(
        f"ratio of medians (drip / direct): {statistics.median(drip_rates) / statistics.median(lrs_rates):.2f}"
    )
    print(
        f"writing the events, 100 a transaction: {spread(plain_writes, 'events/s')} without the outbox, "
        f"{spread(outbox_writes, 'events/s')} with it"
    )


if __name__ == "__main__":
    main()
