"""CPU time to claim 1,000 due enrollments among 100,000 and among 1,000,000 (SQLite files).

Run: python bench/tick.py [--small 100000] [--large 1000000] [--rounds 15]

Method: both files are filled first (5,000 due in each, ANALYZEd); then claims alternate between
them, ROUNDS each, every claim handed back before the next; each claim is timed in CPU time of
this process (SQLite runs in-process, so that is the claim's own work, not the machine's load).
Prints min/median/max of each and the ratio of the medians: the claim must not grow with the
table (ratio at most 2).
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


def claim_once(engine: sa.Engine, r: int) -> float:
    """CPU seconds of one claim of 1,000, handed back afterwards."""
    start = time.process_time()
    ids = claim(engine, NOW, 1000, timedelta(minutes=5), f"bench-{r}")
    spent = time.process_time() - start
    assert len(ids) == 1000, len(ids)
    with engine.begin() as conn:  # hand them back for the next round
        conn.execute(E.update().where(E.c.id.in_(ids)).values(claimed_until=None, claimed_by=None))
    return spent


def prepared(total: int, folder: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{folder / f'tick-{total}.db'}")
    migrate(engine)
    fill(engine, total, due=5_000)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(__doc__.split("\n\n", 2)[2].strip() if __doc__ else "")
    times: dict[int, list[float]] = {args.small: [], args.large: []}
    with tempfile.TemporaryDirectory() as tmp:
        engines = {total: prepared(total, Path(tmp)) for total in times}
        for engine in engines.values():
            claim_once(engine, -1)  # warm the cache of each file once
        for r in range(args.rounds):
            for total in (args.small, args.large)[:: 1 if r % 2 == 0 else -1]:
                times[total].append(claim_once(engines[total], r))
        for engine in engines.values():
            engine.dispose()
    for total, spent in times.items():
        ms = sorted(t * 1000 for t in spent)
        print(
            f"claim 1,000 due among {total:>9,}: {ms[0]:6.1f} / {statistics.median(ms):6.1f} / "
            f"{ms[-1]:6.1f} ms CPU (min / median / max of {len(ms)})"
        )
    ratio = statistics.median(times[args.large]) / statistics.median(times[args.small])
    print(f"ratio of the medians: {ratio:.2f} (must be at most 2)")


if __name__ == "__main__":
    main()
