"""Time the cohort report on 10,000 people x 20 lessons against a bare count(*) of the events.

python bench/report.py                      # the benchmark, in a temporary SQLite file
python bench/report.py --people 60 --html report.html --db keep.db   # a sample HTML report
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drip.curriculum.load import load_course  # noqa: E402
from drip.db import make_engine, migrate  # noqa: E402
from drip.models import COHORT as C  # noqa: E402
from drip.models import DELIVERY as D  # noqa: E402
from drip.models import ENROLLMENT as E  # noqa: E402
from drip.models import EVENT as EV  # noqa: E402
from drip.models import LESSON_VERSION as LV  # noqa: E402
from drip.models import PERSON as P  # noqa: E402
from drip.reports.html import render_html  # noqa: E402
from drip.reports.queries import cohort_report  # noqa: E402

COURSE = "social-media-for-executives"
START = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)  # a Monday
CHUNK = 20_000
NAMES = ["Alex", "Sam", "Robin", "Kim", "Jo", "Lee", "Pat", "Chris", "Dana", "Noor", "Ines", "Yuki"]


def weekday(n: int) -> datetime:
    """The send time of lesson n (0-based): one a weekday from START."""
    weeks, day = divmod(n, 5)
    return START + timedelta(days=7 * weeks + day)


def build(engine: sa.Engine, people: int, seed: int = 7) -> dict[str, int]:
    """Fill one cohort with people, their deliveries and sent, open, confirm and answer events."""
    rng = random.Random(seed)
    course = load_course(ROOT / "lessons", COURSE)
    lessons = course.lessons
    counts = {"people": people, "deliveries": 0, "events": 0}
    with engine.begin() as conn:
        conn.execute(
            LV.insert(),
            [{"content_hash": x.content_hash, "course": COURSE, "slug": x.slug, "title": x.title,
              "links": "[]", "takeaway": x.takeaway, "check": ""} for x in lessons],
        )  # fmt: skip
        cohort_id = conn.execute(
            C.insert().returning(C.c.id),
            {"name": "Bench", "course": COURSE, "start_date": START.date(), "timezone": "UTC",
             "send_time": "07:30", "send_days": "mon,tue,wed,thu,fri", "window_end": "18:00",
             "skip_dates": "", "paused": False, "manager_email": "boss@example.com",
             "created_at": START},
        ).scalar_one()  # fmt: skip
        conn.execute(
            P.insert(),
            [{"email": f"p{i:05d}@example.com", "name": f"{NAMES[i % len(NAMES)]} {i}",
              "timezone": None, "created_at": START} for i in range(people)],
        )  # fmt: skip
        person_ids = list(conn.execute(sa.select(P.c.id).order_by(P.c.id)).scalars())
        plans = []
        for person_id in person_ids:
            keen = rng.random()  # how likely this person is to open a lesson
            sent = len(lessons) if rng.random() < 0.7 else rng.randint(1, len(lessons))
            status = "completed" if sent == len(lessons) else rng.choice(
                ["active"] * 8 + ["paused", "unsubscribed", "bounced"]
            )  # fmt: skip
            plans.append((person_id, keen, sent, status))
        conn.execute(
            E.insert(),
            [{"person_id": pid, "cohort_id": cohort_id, "status": status, "status_reason": "",
              "lessons_sent": sent, "last_sent_on": weekday(sent - 1).date(),
              "created_at": START} for pid, _, sent, status in plans],
        )  # fmt: skip
        enrollment_ids = list(conn.execute(sa.select(E.c.id).order_by(E.c.id)).scalars())
        deliveries = []
        for eid, (_, _, sent, _) in zip(enrollment_ids, plans, strict=True):
            for n in range(sent):
                deliveries.append(
                    {"enrollment_id": eid, "lesson_slug": lessons[n].slug, "position": n + 1,
                     "content_hash": lessons[n].content_hash, "message_id": f"<{eid}.{n}@bench>",
                     "created_at": weekday(n), "status": "sent", "attempts": 1,
                     "sent_at": weekday(n), "last_error": ""}
                )  # fmt: skip
        for i in range(0, len(deliveries), CHUNK):
            conn.execute(D.insert(), deliveries[i : i + CHUNK])
        counts["deliveries"] = len(deliveries)
        keen_by_enrollment = {eid: plan[1] for eid, plan in zip(enrollment_ids, plans, strict=True)}
        last = {eid: (plan[2], plan[3]) for eid, plan in zip(enrollment_ids, plans, strict=True)}
        rows = conn.execute(
            sa.select(D.c.id, D.c.enrollment_id, D.c.sent_at, D.c.position).order_by(D.c.id)
        ).all()
        events: list[dict[str, object]] = []

        def add(eid: int, did: int, kind: str, at: datetime, verdict: str, reason: str,
                detail: str = "", sent_at: datetime | None = None) -> None:  # fmt: skip
            seconds = (at - sent_at).total_seconds() if sent_at else 0.0
            events.append({"enrollment_id": eid, "delivery_id": did, "kind": kind, "at": at,
                           "method": "GET", "seconds_since_send": seconds, "verdict": verdict,
                           "reason": reason, "detail": detail})  # fmt: skip

        for did, eid, sent_at, position in rows:
            keen = keen_by_enrollment[eid] * (1 - position / 60)  # interest fades a little
            add(eid, did, "sent", sent_at, "unknown", "", sent_at=sent_at)
            if rng.random() < 0.18:
                add(eid, did, "open", sent_at + timedelta(seconds=2), "machine",
                    "Apple Mail Privacy Protection prefetch", sent_at=sent_at)  # fmt: skip
            if rng.random() < keen:
                opened = sent_at + timedelta(minutes=rng.randint(10, 600))
                add(eid, did, "open", opened, "human", "mail client", sent_at=sent_at)
                if rng.random() < 0.5:
                    add(eid, did, "confirm", opened + timedelta(minutes=2), "human",
                        "confirm in a browser", sent_at=sent_at)  # fmt: skip
                if rng.random() < 0.35:
                    right = rng.random() < 0.75
                    add(eid, did, "answer", opened + timedelta(minutes=3), "human",
                        "answer in a browser", f'{{"option": 0, "correct": {str(right).lower()}}}',
                        sent_at)  # fmt: skip
            sent_count, status = last[eid]
            if position == sent_count and status in ("unsubscribed", "paused", "bounced"):
                kind = {"unsubscribed": "unsubscribe", "paused": "pause", "bounced": "bounce"}[
                    status
                ]
                add(eid, did, kind, sent_at + timedelta(hours=3), "human", f"{kind} via the page",
                    sent_at=sent_at)  # fmt: skip
            if len(events) >= CHUNK:
                conn.execute(EV.insert(), events)
                counts["events"] += len(events)
                events.clear()
        if events:
            conn.execute(EV.insert(), events)
            counts["events"] += len(events)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="Keep the database in this file.")
    parser.add_argument("--html", type=Path, help="Also write the HTML report here.")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="drip-bench-"))
    path = args.db or folder / "bench.db"
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    started = time.perf_counter()
    counts = build(engine, args.people)
    print(f"built {counts['people']:,} people, {counts['deliveries']:,} deliveries, "
          f"{counts['events']:,} events in {time.perf_counter() - started:.1f} s ({path})")  # fmt: skip
    with engine.connect() as conn:  # warm the page cache so both timings start alike
        conn.execute(sa.text("SELECT count(*) FROM event")).scalar()
    started = time.perf_counter()
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(EV)).scalar()
    count_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as conn:  # a count that must read every row, not just an index
        conn.execute(sa.select(sa.func.count()).where(EV.c.verdict == "human")).scalar()
    scan_s = time.perf_counter() - started
    now = weekday(25)
    started = time.perf_counter()
    report = cohort_report(engine, "Bench", ROOT / "lessons", now)
    report_s = time.perf_counter() - started
    started = time.perf_counter()
    everything = cohort_report(engine, "Bench", ROOT / "lessons", now, human_only=False)
    all_s = time.perf_counter() - started
    started = time.perf_counter()
    html = render_html(report, ROOT / "templates")
    html_s = time.perf_counter() - started
    print(f"SELECT count(*) over {total:,} events: {count_s * 1000:.1f} ms")
    print(f"count(*) that reads every event row:  {scan_s * 1000:.1f} ms")
    print(f"cohort report (opens by people):     {report_s * 1000:.0f} ms "
          f"= {report_s / count_s:.0f}x the count, {report_s / scan_s:.0f}x the scan")  # fmt: skip
    print(f"cohort report (--all):               {all_s * 1000:.0f} ms")
    print(f"HTML report ({len(html) / 1024:.0f} KiB):             {html_s * 1000:.0f} ms")
    s = report.summary
    print(f"figures: {s.lessons_sent:,} sent, {s.open_rate_human:.0%} opened by people "
          f"({everything.summary.open_rate_all:.0%} all), {s.confirmed:,} got it, "
          f"{s.behind:,} behind")  # fmt: skip
    if args.html:
        args.html.write_text(html, encoding="utf-8")
        print(f"wrote {args.html}")
    engine.dispose()
    if args.db is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
