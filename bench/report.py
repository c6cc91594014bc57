"""Time `drip report` (table and HTML) and `drip log --last 20` on 100,000 people x 20 lessons,
against a bare count(*) of the events in the same run.

python bench/report.py [--rounds 3]         # the benchmark, in a temporary SQLite file
python bench/report.py --people 60 --html report.html --db keep.db   # a sample HTML report

Targets (issue 15): the table report and the HTML report each under 5 s, log --last 20 under 1 s.

Method: the database is built with its events, then the report tallies are folded once over the
whole log (what the worker does within a minute of the upgrade; timed and printed apart). Before
each timed command, a minute's worth of new events (1,000 opens, confirms, answers) is written, so
every report also folds a fresh tail as it would in service. Each command runs in this process
through click, as a user's shell would run it; ROUNDS rounds, min / median / max, and the median
against a bare count(*) over the events measured between the rounds.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from drip.cli import main as drip_main  # noqa: E402
from drip.curriculum.load import load_course  # noqa: E402
from drip.db import make_engine, migrate  # noqa: E402
from drip.models import COHORT as C  # noqa: E402
from drip.models import DELIVERY as D  # noqa: E402
from drip.models import ENROLLMENT as E  # noqa: E402
from drip.models import EVENT as EV  # noqa: E402
from drip.models import LESSON_VERSION as LV  # noqa: E402
from drip.models import PERSON as P  # noqa: E402
from drip.reports.queries import cohort_report  # noqa: E402
from drip.reports.tally import fold  # noqa: E402

COURSE = "bench-course"
LESSONS = 20
START = datetime(2026, 1, 5, 7, 30, tzinfo=UTC)  # a Monday
CHUNK = 20_000
DEPARTMENTS = ["Finance", "Sales", "Développement", "Legal", "Operations", "HR"]
NAMES = ["Alex", "Sam", "Robin", "Kim", "Jo", "Lee", "Pat", "Chris", "Dana", "Noor", "Ines", "Yuki"]


def weekday(n: int) -> datetime:
    """The send time of lesson n (0-based): one a weekday from START."""
    weeks, day = divmod(n, 5)
    return START + timedelta(days=7 * weeks + day)


def make_course(root: Path) -> Path:
    """A 20-lesson course made from the sample's lessons (the bench does not depend on content)."""
    folder = root / COURSE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "course.yml").write_text('title: "Bench course"\n', encoding="utf-8")
    sample = sorted((ROOT / "lessons" / "sample").glob("*.md"))
    for n in range(1, LESSONS + 1):
        text = sample[(n - 1) % len(sample)].read_text(encoding="utf-8")
        text = text.replace("title: ", f'title: "Lesson {n}" #', 1)
        (folder / f"{n:02d}-lesson-{n}.md").write_text(text, encoding="utf-8")
    return root


def build(engine: sa.Engine, people: int, lessons_root: Path, seed: int = 7) -> dict[str, int]:
    """Fill one cohort with people, their deliveries and sent, open, confirm and answer events."""
    rng = random.Random(seed)
    course = load_course(lessons_root, COURSE)
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
            [{"email": f"p{i:06d}@example.com", "name": f"{NAMES[i % len(NAMES)]} {i}",
              "timezone": None, "created_at": START,
              "attributes": {"Department": DEPARTMENTS[i % len(DEPARTMENTS)], "Employee ID": f"E{i}"}}
             for i in range(people)],
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
                correct: bool | None = None, sent_at: datetime | None = None) -> None:  # fmt: skip
            seconds = (at - sent_at).total_seconds() if sent_at else 0.0
            events.append({"enrollment_id": eid, "delivery_id": did, "kind": kind, "at": at,
                           "method": "GET", "seconds_since_send": seconds, "verdict": verdict,
                           "reason": reason, "detail": "", "option": None if correct is None else 0,
                           "correct": correct, "link": None})  # fmt: skip

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
                        "answer in a browser", right, sent_at)  # fmt: skip
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


def add_tail(engine: sa.Engine, events: int = 1_000, seed: int = 11) -> int:
    """A minute of a big cohort's activity: opens, confirms and answers on recent lessons."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        recent = conn.execute(
            sa.select(D.c.id, D.c.enrollment_id, D.c.sent_at).order_by(D.c.id.desc()).limit(20_000)
        ).all()
        rows = []
        for did, eid, sent_at in rng.sample(recent, events):
            at = sent_at + timedelta(hours=2)
            kind = rng.choice(["open", "open", "confirm", "answer"])
            rows.append({"enrollment_id": eid, "delivery_id": did, "kind": kind, "at": at,
                         "method": "GET", "seconds_since_send": 7200.0, "verdict": "human",
                         "reason": "bench tail", "detail": "", "option": 0 if kind == "answer" else None,
                         "correct": True if kind == "answer" else None, "link": None})  # fmt: skip
        conn.execute(EV.insert(), rows)
    return events


def drip(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run a drip command in this process as a user would; (seconds, output)."""
    started = time.perf_counter()
    result = CliRunner().invoke(drip_main, list(args), env=env, catch_exceptions=False)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"drip {' '.join(args)} failed: {result.output}")
    return seconds, result.output


def _has_people(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.select(sa.func.count()).select_from(P)).scalar())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="Keep the database in this file.")
    parser.add_argument("--html", type=Path, help="Also write the HTML report here.")
    parser.add_argument("--reuse", action="store_true", help="Time a --db built by a run before.")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="drip-bench-"))
    lessons_root = make_course(folder / "lessons")
    path = args.db or folder / "bench.db"
    if not (args.reuse and path.exists()):
        path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    if not (args.reuse and path.exists() and _has_people(engine)):
        started = time.perf_counter()
        counts = build(engine, args.people, lessons_root)
        print(f"built {counts['people']:,} people, {counts['deliveries']:,} deliveries, "
              f"{counts['events']:,} events in {time.perf_counter() - started:.1f} s ({path})")  # fmt: skip
    started = time.perf_counter()
    folded = fold(engine)
    fold_s = time.perf_counter() - started
    with engine.connect() as conn:  # warm the page cache so every timing starts alike
        conn.execute(sa.text("SELECT count(*) FROM event")).scalar()
        conn.execute(sa.select(sa.func.count()).where(EV.c.verdict == "human")).scalar()
    started = time.perf_counter()
    with engine.connect() as conn:  # the baseline: a count that must read every event row
        total = conn.execute(sa.select(sa.func.count()).where(EV.c.verdict == "human")).scalar()
    scan_s = time.perf_counter() - started
    now = weekday(25)
    env = {
        "DRIP_DATABASE_URL": f"sqlite:///{path}",
        "DRIP_LESSONS_DIR": str(lessons_root),
        "DRIP_TEMPLATES_DIR": str(ROOT / "templates"),
        "DRIP_SECRET_KEY": "bench-secret-key-0123456789",
        "DRIP_CONFIG": str(folder / "absent.toml"),
        "DRIP_NOW": now.isoformat(),
    }
    (folder / "absent.toml").write_text("")
    report = cohort_report(engine, "Bench", lessons_root, now)
    html_file = args.html or folder / "report.html"
    csv_file = folder / "people.csv"
    commands = [
        ("drip report Bench (table)", ["report", "Bench"], 5.0),
        ("drip report Bench --format html", ["report", "Bench", "--format", "html", "-o", str(html_file)], 5.0),
        ("drip report Bench --format csv (everyone)", ["report", "Bench", "--format", "csv", "-o", str(csv_file)], None),
        ("drip report Bench --by Department", ["report", "Bench", "--by", "Department"], None),
        ("drip log --last 20", ["log", "--last", "20"], 1.0),
    ]  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name, _, _ in commands}
    printed: dict[str, int] = {}
    scans = [scan_s]
    for round_no in range(args.rounds):
        for name, argv, _ in commands:  # each command folds a fresh minute of events first
            tail = add_tail(engine, seed=100 * round_no + len(times[name]) + len(name))
            seconds, output = drip(env, *argv)
            times[name].append(seconds)
            printed[name] = len(output.encode())
        started = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(sa.select(sa.func.count()).where(EV.c.verdict == "human")).scalar()
        scans.append(time.perf_counter() - started)
    base = statistics.median(scans)
    print(f"baseline: count(*) reading all {total:,} human events, median of {len(scans)}: "
          f"{base * 1000:.0f} ms (min {min(scans) * 1000:.0f}, max {max(scans) * 1000:.0f})")  # fmt: skip
    if folded:
        print(f"first fold of the whole log into the tallies: {folded:,} events in {fold_s:.1f} s "
              f"(once, by the worker after the upgrade)")  # fmt: skip
    print(f"before each command a fresh tail of {tail:,} events is written, which it folds; "
          f"{args.rounds} rounds, seconds min / median / max")  # fmt: skip
    for name, _, target in commands:
        low, mid, high = min(times[name]), statistics.median(times[name]), max(times[name])
        met = "met" if target is not None and mid < target else "MISSED"
        verdict = "" if target is None else f" (target < {target:.0f} s: {met})"
        print(f"{name:<42} {low:6.2f} / {mid:6.2f} / {high:6.2f} s = {mid / base:5.1f}x the "
              f"baseline, {printed[name] / 1024:6.0f} KiB printed{verdict}")  # fmt: skip
    s = report.summary
    print(f"figures: {s.lessons_sent:,} sent, {s.open_rate_human:.1%} opened by people, "
          f"{s.confirmed:,} got it, {s.behind:,} behind; HTML {html_file.stat().st_size / 1024:.0f} KiB, "
          f"CSV {csv_file.stat().st_size / 1024 / 1024:.1f} MiB")  # fmt: skip
    if args.html:
        print(f"wrote {args.html}")
    engine.dispose()
    if args.db is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
