"""The report's tallies: folded a few events at a time they equal one fold from scratch and a
count made by hand from the event log, through moves, scanners caught late and unsubscribes
without a link."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import utc

from drip.app import App
from drip.config import Settings
from drip.models import COHORT as C
from drip.models import DAY_TALLY as DT
from drip.models import DELIVERY as D
from drip.models import DELIVERY_TALLY as DLT
from drip.models import ENROLLMENT as E
from drip.models import ENROLLMENT_TALLY as ET
from drip.models import EVENT as EV
from drip.models import LESSON_TALLY as LT
from drip.models import PERSON as P
from drip.models import TALLY_STATE as TS
from drip.reports.tally import fold
from drip.scheduler import TALLY_SECONDS, start_scheduler, tally

START = utc(2026, 3, 2, 7, 30)
SLUGS = [f"lesson-{n}" for n in range(1, 7)]
TABLES = (DLT, ET, LT, DT)


class Log:
    """A small cohort pair whose event log the test writes step by step, as drip would."""

    def __init__(self, engine: sa.Engine, rng: random.Random) -> None:
        self.engine, self.rng = engine, rng
        self.clock = START
        with engine.begin() as conn:
            self.cohorts = [
                conn.execute(
                    C.insert().returning(C.c.id),
                    {"name": name, "course": "c", "start_date": START.date(), "timezone": "UTC",
                     "send_time": "07:30", "send_days": "mon,tue,wed,thu,fri", "window_end": "18:00",
                     "skip_dates": "", "paused": False, "created_at": START},
                ).scalar_one()
                for name in ("A", "B")
            ]  # fmt: skip
            self.enrollments = []
            for i in range(8):
                person = conn.execute(
                    P.insert().returning(P.c.id),
                    {"email": f"p{i}@example.com", "name": f"P {i}", "created_at": START},
                ).scalar_one()
                self.enrollments.append(
                    conn.execute(
                        E.insert().returning(E.c.id),
                        {"person_id": person, "cohort_id": self.cohorts[i % 2], "status": "active",
                         "created_at": START},
                    ).scalar_one()
                )  # fmt: skip
        self.sent: dict[int, list[int]] = {e: [] for e in self.enrollments}
        self.notes = 0

    def event(self, conn: sa.Connection, eid: int, kind: str, **values: Any) -> None:
        self.clock += timedelta(minutes=7)
        conn.execute(
            EV.insert(),
            {"enrollment_id": eid, "kind": kind, "at": self.clock, "verdict": "unknown",
             "reason": "", "detail": "", "method": "GET", **values},
        )  # fmt: skip

    def step(self) -> None:
        """One random thing that happens to a cohort."""
        rng, eid = self.rng, self.rng.choice(self.enrollments)
        with self.engine.begin() as conn:
            what = rng.choice(["send"] * 4 + ["open"] * 4 + ["answer", "confirm", "scanner",
                              "move", "unsubscribe", "question", "note", "pause"])  # fmt: skip
            if what in ("send", "note") or not self.sent[eid]:
                n = len(self.sent[eid])
                if n >= len(SLUGS):
                    return
                self.notes += 1
                slug, kind = (
                    (SLUGS[n], "lesson") if what != "note" else (f"_note:{self.notes}", "note")
                )
                did = conn.execute(
                    D.insert().returning(D.c.id),
                    {"enrollment_id": eid, "lesson_slug": slug, "kind": kind, "position": n + 1,
                     "content_hash": "h", "message_id": f"<{eid}.{slug}@t>", "status": "sent",
                     "created_at": self.clock, "sent_at": self.clock + timedelta(minutes=7)},
                ).scalar_one()  # fmt: skip
                if kind == "lesson":
                    self.sent[eid].append(did)
                self.event(conn, eid, "sent", delivery_id=did)
                return
            did = rng.choice(self.sent[eid])
            if what == "open":
                verdict = rng.choice(["human", "human", "machine", "unknown"])
                self.event(conn, eid, "open", delivery_id=did, verdict=verdict)
            elif what in ("answer", "confirm"):
                verdict = rng.choice(["human", "human", "machine"])
                correct = rng.random() < 0.6 if what == "answer" else None
                self.event(conn, eid, what, delivery_id=did, verdict=verdict, correct=correct)
                if verdict == "human":
                    self.event(conn, eid, "open", delivery_id=did, verdict="human")
            elif what == "scanner":  # caught late: its earlier hits were not a person's
                conn.execute(
                    EV.update()
                    .where(EV.c.delivery_id == did, EV.c.verdict == "human")
                    .values(verdict="machine")
                )
                self.event(conn, eid, "click", delivery_id=did, verdict="machine")
            elif what == "move":
                current = conn.execute(sa.select(E.c.cohort_id).where(E.c.id == eid)).scalar_one()
                other = next(c for c in self.cohorts if c != current)
                conn.execute(E.update().where(E.c.id == eid).values(cohort_id=other))
                self.event(conn, eid, "move", verdict="human")
            elif what == "unsubscribe":
                linked = rng.random() < 0.5
                self.event(conn, eid, "unsubscribe", delivery_id=did if linked else None)
            elif what == "question":
                self.event(conn, eid, "question", delivery_id=did)
            else:
                self.event(conn, eid, "pause", verdict="human")


def tallies(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t)).all()) for t in TABLES}


def by_hand(engine: sa.Engine) -> dict[str, Any]:
    """The figures the report shows, counted from the event log row by row."""
    with engine.connect() as conn:
        deliveries = conn.execute(sa.select(D)).mappings().all()
        events = conn.execute(sa.select(EV).order_by(EV.c.id)).mappings().all()
        cohort_of = dict(conn.execute(sa.select(E.c.id, E.c.cohort_id)).all())
    lessons: dict[tuple[int, str], list[int]] = {}
    people: dict[int, list[Any]] = {}
    for d in deliveries:
        mine = [e for e in events if e["delivery_id"] == d["id"]]
        opened = any(e["kind"] == "open" and e["verdict"] == "human" for e in mine)
        confirmed = any(e["kind"] == "confirm" and e["verdict"] == "human" for e in mine)
        answers = [e for e in mine if e["kind"] == "answer" and e["verdict"] != "machine"]
        if d["kind"] != "lesson":
            continue
        key = (cohort_of[d["enrollment_id"]], d["lesson_slug"])
        row = lessons.setdefault(key, [0, 0, 0, 0, 0])
        for i, flag in enumerate(
            (True, opened, confirmed, bool(answers), bool(answers and answers[0]["correct"]))
        ):
            row[i] += int(flag)
        person = people.setdefault(d["enrollment_id"], [0, []])
        person[0] += int(opened)
        person[1].append((d["sent_at"], d["position"], opened))
    behind = {
        eid: len(sent) >= 3 and not any(o for _, _, o in sorted(sent, reverse=True)[:3])
        for eid, (_, sent) in people.items()
    }
    questions = sum(1 for e in events if e["kind"] == "question")
    return {
        "lessons": lessons,
        "opened": {eid: p[0] for eid, p in people.items()},
        "behind": behind,
        "questions": questions,
    }


def from_tallies(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        lessons = {
            (r.cohort_id, r.slug): [r.sent, r.opened_h, r.confirmed_h, r.answered, r.right]
            for r in conn.execute(sa.select(LT))
            if r.sent
        }
        people = conn.execute(sa.select(ET)).all()
    counted = {r.enrollment_id: r for r in people if r.sent}
    return {
        "lessons": lessons,
        "opened": {eid: r.opened_h for eid, r in counted.items()},
        "behind": {eid: bool(r.behind_h) for eid, r in counted.items()},
        "questions": sum(r.questions for r in people),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_folding_step_by_step_equals_one_fold_and_the_hand_count(
    engine: sa.Engine, seed: int
) -> None:
    rng = random.Random(seed)
    log = Log(engine, rng)
    for _ in range(25):
        for _ in range(rng.randint(1, 12)):
            log.step()
        fold(engine)
    step_by_step = tallies(engine)
    assert from_tallies(engine) == by_hand(engine)
    with engine.begin() as conn:
        for table in (*TABLES, TS):
            conn.execute(table.delete())
    fold(engine)
    at_once = tallies(engine)
    # The activity chart is history: a day's events stay in the cohort they happened in, and
    # a scanner caught after the fold is not taken back there. Every event is on its day once.
    days = {"day_tally"}
    assert {k: v for k, v in at_once.items() if k not in days} == {
        k: v for k, v in step_by_step.items() if k not in days
    }

    def per_day(rows: list[tuple[Any, ...]]) -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for _cohort, day, what, count_a, _count_h in rows:
            total[day, what] += count_a
        return total

    assert per_day(at_once["day_tally"]) == per_day(step_by_step["day_tally"])


def test_a_long_backlog_is_folded_in_transactions_sized_to_hold_the_lock_briefly(
    engine: sa.Engine,
) -> None:
    log = Log(engine, random.Random(4))
    for _ in range(60):
        log.step()
    with engine.begin() as conn:
        # Ids far apart: a backlog of ids as long as a big log's, in a log the test can count.
        count = conn.execute(sa.select(sa.func.count()).select_from(EV)).scalar_one()
        conn.execute(EV.update().values(id=EV.c.id * (100_000 // count)))
        last = conn.execute(sa.select(sa.func.max(EV.c.id))).scalar_one()
    assert 60_000 < last <= 150_000
    commits: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(1))

    def fold_afresh(hold: float) -> tuple[int, dict[str, list[tuple[Any, ...]]]]:
        with engine.begin() as conn:
            for table in (*TABLES, TS):
                conn.execute(table.delete())
        commits.clear()
        fold(engine, hold=hold)
        return len(commits), tallies(engine)

    # Transactions that seem slow shrink to 1,000 ids; fast ones grow fourfold at a time
    # (10,000, 40,000, 100,000 ids), plus the look at what is committed and the last check.
    shrunk, by_small = fold_afresh(hold=0.0)
    grown, by_large = fold_afresh(hold=1e9)
    assert grown == 2 + 3
    assert shrunk == 2 + 2 + -(-(last - 12_500) // 1_000)  # 10,000, 2,500, then 1,000 each
    assert by_small == by_large
    assert from_tallies(engine) == by_hand(engine)


def test_a_move_takes_the_lessons_to_the_new_cohort_and_leaves_the_days(engine: sa.Engine) -> None:
    log = Log(engine, random.Random(0))
    eid = log.enrollments[0]  # in cohort A
    with engine.begin() as conn:
        did = conn.execute(
            D.insert().returning(D.c.id),
            {"enrollment_id": eid, "lesson_slug": SLUGS[0], "kind": "lesson", "position": 1,
             "content_hash": "h", "message_id": "<m@t>", "status": "sent",
             "created_at": START, "sent_at": START},
        ).scalar_one()  # fmt: skip
        log.event(conn, eid, "sent", delivery_id=did)
        log.event(conn, eid, "open", delivery_id=did, verdict="human")
    fold(engine)
    a, b = log.cohorts

    def funnel() -> dict[int, tuple[int, int]]:
        with engine.connect() as conn:
            return {
                r.cohort_id: (r.sent, r.opened_h)
                for r in conn.execute(sa.select(LT).where(LT.c.slug == SLUGS[0]))
            }

    assert funnel() == {a: (1, 1)}
    with engine.begin() as conn:
        conn.execute(E.update().where(E.c.id == eid).values(cohort_id=b))
        log.event(conn, eid, "move", verdict="human")
    fold(engine)
    assert funnel() == {a: (0, 0), b: (1, 1)}
    with engine.connect() as conn:  # the chart keeps the day it happened in cohort A
        days = conn.execute(sa.select(DT.c.cohort_id, DT.c.what, DT.c.count_h)).all()
    assert (a, "opened", 1) in days and all(c == a for c, _, _ in days)


def test_an_unsubscribe_without_a_link_counts_against_the_last_lesson_before_it(
    engine: sa.Engine,
) -> None:
    log = Log(engine, random.Random(0))
    eid = log.enrollments[0]
    with engine.begin() as conn:
        for n in range(2):
            did = conn.execute(
                D.insert().returning(D.c.id),
                {"enrollment_id": eid, "lesson_slug": SLUGS[n], "kind": "lesson", "position": n + 1,
                 "content_hash": "h", "message_id": f"<m{n}@t>", "status": "sent",
                 "created_at": START, "sent_at": START + timedelta(days=n)},
            ).scalar_one()  # fmt: skip
            log.clock = START + timedelta(days=n)
            log.event(conn, eid, "sent", delivery_id=did)
        log.clock = START + timedelta(days=1, hours=3)
        log.event(conn, eid, "unsubscribe", method="cli")
    fold(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(LT.c.slug, LT.c.unsubscribed)).all())
        at = conn.execute(sa.select(ET.c.last_at_h).where(ET.c.enrollment_id == eid)).scalar()
    assert rows == {SLUGS[0]: 0, SLUGS[1]: 1}
    assert isinstance(at, datetime) and at == START + timedelta(days=1, hours=3, minutes=7)


def test_the_worker_folds_every_minute_and_a_report_folds_the_rest(
    engine: sa.Engine, settings: Settings
) -> None:
    log = Log(engine, random.Random(5))
    for _ in range(30):
        log.step()
    app = App(settings, engine)
    scheduler = start_scheduler(app, threading.Event())
    try:
        job = scheduler.get_job("tally")
        assert job is not None and job.trigger.interval.total_seconds() == TALLY_SECONDS
    finally:
        scheduler.shutdown(wait=True)
    tally(app)  # what the job runs
    with engine.connect() as conn:
        mark = conn.execute(sa.select(TS.c.last_event_id)).scalar_one()
        last = conn.execute(sa.select(sa.func.max(EV.c.id))).scalar_one()
    assert mark == last
    log.step()
    log.step()
    assert 0 < fold(engine) <= 4 and fold(engine) == 0  # a step writes one or two events
