"""Time to claim 1,000 due enrollments among 100,000 and among 1,000,000 (SQLite file).

Run: python bench/tick.py [--small 100000] [--large 1000000]
The claim must not grow with the table: the ratio large/small should stay at most 2.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from drip.db import make_engine, migrate
from drip.models import COHORT as C
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.sending.claims import claim

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def fill(engine: sa.Engine, total: int, due: int) -> None:
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(
            C.insert().values(
                id=1,
                name="big",
                course="sample",
                start_date=NOW.date(),
                timezone="UTC",
                send_time="07:30",
                send_days="mon,tue,wed,thu,fri",
                window_end="18:00",
                skip_dates="",
                paused=False,
                created_at=NOW,
            )
        )
        chunk = 50_000
        for start in range(0, total, chunk):
            ids = range(start + 1, min(total, start + chunk) + 1)
            conn.execute(
                P.insert(),
                [
                    {"id": i, "email": f"p{i}@example.com", "name": "", "created_at": NOW}
                    for i in ids
                ],
            )
            conn.execute(
                E.insert(),
                [
                    {
                        "id": i,
                        "person_id": i,
                        "cohort_id": 1,
                        "status": "active" if i % 10 else "completed",
                        "status_reason": "",
                        "lessons_sent": 0,
                        "created_at": NOW,
                        "next_due_at": NOW - timedelta(minutes=rng.randint(1, 600))
                        if i <= due
                        else NOW + timedelta(hours=rng.randint(1, 24 * 20)),
                    }
                    for i in ids
                ],
            )


def time_claim(engine: sa.Engine, rounds: int = 9) -> float:
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        ids = claim(engine, NOW, 1000, timedelta(minutes=5), f"bench-{r}")
        times.append(time.perf_counter() - start)
        assert len(ids) == 1000, len(ids)
        with engine.begin() as conn:  # hand them back for the next round
            conn.execute(
                E.update().where(E.c.id.in_(ids)).values(claimed_until=None, claimed_by=None)
            )
    return statistics.median(times)


def measure(total: int, folder: Path) -> float:
    engine = make_engine(f"sqlite:///{folder / f'tick-{total}.db'}")
    migrate(engine)
    fill(engine, total, due=5_000)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    result = time_claim(engine)
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(args.small, Path(tmp))
        large = measure(args.large, Path(tmp))
    print(f"claim 1,000 due among {args.small:>9,}: {small * 1000:7.1f} ms")
    print(f"claim 1,000 due among {args.large:>9,}: {large * 1000:7.1f} ms")
    print(f"ratio: {large / small:.2f} (must be at most 2)")


if __name__ == "__main__":
    main()
