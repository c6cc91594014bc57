"""Late joiners: lesson 1 by default; with --catch-up (or the course's `late_joiners: catch_up`)
the lesson the cohort is on in their own timezone, the ones before skipped and never sent, one
lesson a day as ever. The calendar shows what the dispatcher then sends."""

from __future__ import annotations

import email
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from support import BACKENDS, LESSONS, cli_env, make_settings, pg_database, run_drip, utc

from drip.curriculum.load import inspect_course
from drip.db import alembic_config, current_revision, head_revision, make_engine, migrate
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P

COURSE = "late-course"
LESSONS_IN_COURSE = 10
COHORT = "Spring"
FRIDAY = utc(2026, 12, 4, 12)  # before the cohort starts on Monday 7 December
START = "2026-12-07"


def make_course(root: Path, setting: str = "") -> Path:
    """A 10-lesson course built from the sample's first lesson, with an optional course.yml line."""
    folder = root / COURSE
    folder.mkdir(parents=True)
    # Nobody opens a test e-mail: keep the automatic pause out of the way.
    quiet = "engagement:\n  pause_after: 30\n  catch_up_after: 30\n"
    (folder / "course.yml").write_text(f'title: "Late course"\n{quiet}{setting}', encoding="utf-8")
    sample = (LESSONS / "sample" / "01-what-a-drip-course-is.md").read_text(encoding="utf-8")
    for n in range(1, LESSONS_IN_COURSE + 1):
        text = sample.replace('title: "What a drip course is"', f'title: "Step {n}"')
        (folder / f"{n:02d}-step-{n}.md").write_text(text, encoding="utf-8")
    return root


class Drip:
    """The CLI in-process against one database and lessons folder, with the clock passed in."""

    def __init__(self, tmp_path: Path, db_url: str, setting: str = "") -> None:
        self.lessons = make_course(tmp_path / "lessons", setting)
        self.outbox = tmp_path / "outbox"
        self.settings = make_settings(tmp_path, db_url, lessons_dir=str(self.lessons))
        self.env = cli_env(self.settings)
        self.tmp_path = tmp_path

    def __call__(self, *args: str, now: datetime | None = None, ok: bool = True) -> Any:
        prefix = ["--now", now.isoformat()] if now else []
        result = run_drip([*prefix, *args], self.env)
        if ok:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    def enroll(self, *people: tuple[str, str], now: datetime, flags: tuple[str, ...] = ()) -> Any:
        path = self.tmp_path / f"people-{len(list(self.tmp_path.glob('people-*')))}.csv"
        lines = [
            "email,name,timezone",
            *(f"{who},{who.split('@')[0]},{zone}" for who, zone in people),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self("enroll", COHORT, str(path), *flags, now=now)

    def send(self, now: datetime) -> list[tuple[str, str]]:
        rows = json.loads(self("send-due", "--format", "json", now=now).stdout)
        return [(r["email"], r["lesson"]) for r in rows if r["outcome"] == "sent"]

    def calendar(self, now: datetime, days: int = 1) -> list[dict[str, Any]]:
        out = self("cohort", "calendar", COHORT, "--days", str(days), "--format", "json", now=now)
        return list(json.loads(out.stdout))

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.settings.database_url)


@pytest.fixture
def drip(tmp_path: Path, db_url: str) -> Drip:
    made = Drip(tmp_path, db_url)
    made("cohort", "create", COHORT, "--course", COURSE, "--start", START,
         "--timezone", "Europe/London", "--send-time", "07:30", now=FRIDAY)  # fmt: skip
    return made


def step(n: int) -> str:
    return f"step-{n}"


def weekday_mornings(first: datetime, count: int) -> list[datetime]:
    """`count` send days (Monday to Friday) from `first`, at the same time of day."""
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def first_week(drip: Drip) -> None:
    """Ann is on time: enrolled before the start, lessons 1-5 in the first week."""
    drip.enroll(("ann@example.com", "Europe/London"), now=FRIDAY)
    for n, morning in enumerate(weekday_mornings(utc(2026, 12, 7, 8), 5), 1):
        assert drip.send(morning) == [("ann@example.com", step(n))]


def lesson_line(drip: Drip, to: str, slug: str) -> str:
    """The "Course · Lesson N of M" line of the e-mail that carried `slug` to `to`."""
    for path in sorted(drip.outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        if message["To"].endswith(f"<{to}>") or message["To"] == to:
            if f"Step {slug.split('-')[1]}" in message["Subject"]:
                return str(text.splitlines()[0])
    raise AssertionError(f"no e-mail with {slug} to {to}")


def test_a_catch_up_joiner_gets_the_cohorts_lesson_each_day_and_never_the_skipped_ones(
    drip: Drip,
) -> None:
    first_week(drip)
    monday = utc(2026, 12, 14, 12)  # after the cohort's 07:30 lesson 6, inside the window
    assert drip.send(utc(2026, 12, 14, 8)) == [("ann@example.com", step(6))]

    dry = drip.enroll(
        ("joe@example.com", "Europe/London"), now=monday, flags=("--catch-up", "--dry-run")
    )
    assert "1 person would start at lesson 6 of 10 (catch-up: lessons 1-5 skipped)" in dry.stdout
    done = drip.enroll(("joe@example.com", "Europe/London"), now=monday, flags=("--catch-up",))
    assert "1 person starts at lesson 6 of 10 (catch-up: lessons 1-5 skipped)" in done.stdout

    shown = drip("people", "show", "joe@example.com").stdout
    assert (
        "Spring: started at lesson 6 (catch-up, 5 skipped: step-1, step-2, step-3, step-4, step-5)"
        in shown
    )
    assert (
        json.loads(drip("people", "show", "joe@example.com", "--format", "json").stdout)[0][
            "start_lesson"
        ]
        == 6
    )

    got: dict[str, list[str]] = {"ann@example.com": [], "joe@example.com": []}
    for who, slug in drip.send(monday):  # the same day as the cohort's lesson 6
        got[who].append(slug)
    assert got == {"ann@example.com": [], "joe@example.com": [step(6)]}
    assert "Lesson 6 of 10" in lesson_line(drip, "joe@example.com", step(6))
    checked = drip("lessons", "check", COURSE).stdout
    assert "new before where" not in checked  # the skipped lessons are behind Joe, not ahead
    for morning in [*weekday_mornings(utc(2026, 12, 15, 8), 5)]:
        again = drip.send(morning)
        assert drip.send(morning + timedelta(hours=8)) == []  # never two in a day
        for who, slug in again:
            got[who].append(slug)
    expected = [step(n) for n in range(7, 11)] + ["_complete"]
    assert got["ann@example.com"] == expected
    assert got["joe@example.com"] == [step(6), *expected]
    assert "Lesson 10 of 10" in lesson_line(drip, "joe@example.com", step(10))

    people = {p["email"]: p for p in json.loads(drip("people", "list", "--format", "json").stdout)}
    assert people["joe@example.com"]["status"] == "completed"
    joe = json.loads(drip("people", "show", "joe@example.com", "--format", "json").stdout)[0]
    assert joe["lessons_sent"] == 5  # skipped lessons are never "sent"

    with drip.engine().connect() as conn:
        detail = conn.execute(
            sa.select(EV.c.detail)
            .join(E, E.c.id == EV.c.enrollment_id)
            .join(P, P.c.id == E.c.person_id)
            .where(P.c.email == "joe@example.com", EV.c.kind == "enrol")
        ).scalar_one()
    assert detail == "catch-up: starts at lesson 6; skipped: step-1, step-2, step-3, step-4, step-5"


def test_without_the_flag_a_late_joiner_starts_at_lesson_1(drip: Drip) -> None:
    first_week(drip)
    monday = utc(2026, 12, 14, 12)
    done = drip.enroll(("joe@example.com", "Europe/London"), now=monday)
    assert "1 person starts at lesson 1 of 10" in done.stdout
    assert "catch-up" not in done.stdout
    assert ("joe@example.com", step(1)) in drip.send(monday)
    assert "started at lesson" not in drip("people", "show", "joe@example.com").stdout


def test_catch_up_before_the_cohort_starts_changes_nothing(drip: Drip) -> None:
    done = drip.enroll(("joe@example.com", "Europe/London"), now=FRIDAY, flags=("--catch-up",))
    assert "1 person starts at lesson 1 of 10" in done.stdout
    assert drip.send(utc(2026, 12, 7, 8)) == [("joe@example.com", step(1))]


@pytest.mark.parametrize(
    ("setting", "flags", "first"),
    [
        ("late_joiners: catch_up\n", (), 6),
        ("late_joiners: catch_up\n", ("--from-start",), 1),
        ("late_joiners: start\n", ("--catch-up",), 6),
        ("late_joiners: start\n", (), 1),
    ],
)
def test_the_course_setting_decides_and_the_flag_overrides_it(
    tmp_path: Path, db_url: str, setting: str, flags: tuple[str, ...], first: int
) -> None:
    drip = Drip(tmp_path, db_url, setting)
    drip("cohort", "create", COHORT, "--course", COURSE, "--start", START,
         "--timezone", "Europe/London", now=FRIDAY)  # fmt: skip
    monday = utc(2026, 12, 14, 6)  # before the 07:30 slot: lessons 1-5 went out last week
    drip.enroll(("joe@example.com", "Europe/London"), now=monday, flags=flags)
    assert drip.send(utc(2026, 12, 14, 8)) == [("joe@example.com", step(first))]


def test_a_bad_late_joiners_value_is_an_error_with_its_line(tmp_path: Path) -> None:
    root = make_course(tmp_path / "lessons", "audience: managers\nlate_joiners: catchup\n")
    course, problems = inspect_course(root, COURSE)
    assert course is None
    assert [str(p) for p in problems if p.severity == "error"] == [
        f"{root / COURSE / 'course.yml'}:6: error: 'late_joiners' is 'catchup'; use start "
        "(lesson 1) or catch_up (the lesson the cohort is on)"
    ]
    env = cli_env(make_settings(tmp_path, lessons_dir=str(root)))
    checked = run_drip(["lessons", "check", COURSE], env)
    assert checked.returncode == 1
    assert "course.yml:6: 'late_joiners' is 'catchup'; use start" in checked.stderr


def test_joiners_in_other_timezones_start_where_the_cohort_is_on_their_own_day(
    drip: Drip,
) -> None:
    tuesday = utc(2026, 12, 15, 17, 30)  # London 17:30, Los Angeles 09:30, Tokyo Wed 02:30
    people = (
        ("lon@example.com", "Europe/London"),
        ("lax@example.com", "America/Los_Angeles"),
        ("tyo@example.com", "Asia/Tokyo"),
    )
    done = drip.enroll(*people, now=tuesday, flags=("--catch-up",))
    assert "2 people start at lesson 7 of 10 (catch-up: lessons 1-6 skipped)" in done.stdout
    assert "1 person starts at lesson 8 of 10 (catch-up: lessons 1-7 skipped)" in done.stdout
    first: dict[str, tuple[str, str, str, str]] = {}
    for r in drip.calendar(tuesday, days=2):  # by time: each person's first lesson first
        first.setdefault(r["email"], (r["email"], r["lesson"], r["number"], r["local_date"]))
    assert set(first.values()) == {
        ("lon@example.com", step(7), "7 of 10", "2026-12-15"),
        ("lax@example.com", step(7), "7 of 10", "2026-12-15"),
        ("tyo@example.com", step(8), "8 of 10", "2026-12-16"),  # Wednesday in Tokyo
    }


def test_the_calendar_matches_what_the_dispatcher_sends_day_by_day(drip: Drip) -> None:
    first_week(drip)
    assert drip.send(utc(2026, 12, 14, 8)) == [("ann@example.com", step(6))]
    monday = utc(2026, 12, 14, 12)
    drip.enroll(("joe@example.com", "Europe/London"), ("kim@example.com", "Asia/Tokyo"),
                now=monday, flags=("--catch-up",))  # fmt: skip
    day = monday
    sent_to: dict[str, list[str]] = {"joe@example.com": [], "kim@example.com": []}
    for _ in range(9):
        calendar = drip.calendar(day)
        planned = {(r["utc"], r["email"], r["lesson"]) for r in calendar}
        numbers = {(r["email"], r["lesson"], int(r["number"].split()[0])) for r in calendar}
        sent = set()
        for moment in sorted({datetime.fromisoformat(at) for at, _, _ in planned}):
            dry = drip("send-due", "--dry-run", "--format", "json", now=moment).stdout
            would = {
                (r["email"], r["lesson"], r["position"])
                for r in json.loads(dry)
                if r["outcome"] == "would send lesson"
            }
            assert would <= numbers  # the dry run numbers each lesson as the calendar does
            rows = json.loads(drip("send-due", "--format", "json", now=moment).stdout)
            went = {(r["email"], r["lesson"]) for r in rows if r["outcome"] == "sent"}
            assert {(e, s) for e, s, _ in would} == {x for x in went if not x[1].startswith("_")}
            sent |= {(moment.isoformat(), e, s) for e, s in went if not s.startswith("_")}
        assert sent == {(datetime.fromisoformat(a).isoformat(), e, s) for a, e, s in planned}
        for _, who, slug in sorted(sent):
            sent_to.setdefault(who, []).append(slug)
        day = (day + timedelta(days=1)).replace(hour=0)
    assert sent_to["joe@example.com"] == [step(n) for n in range(6, 11)]
    # Kim is in Tokyo: 21:00 on Monday there, so she starts with Tuesday's lesson 7.
    assert sent_to["kim@example.com"] == [step(n) for n in range(7, 11)]


def test_a_move_keeps_the_skipped_lessons_behind_the_person(drip: Drip) -> None:
    drip("cohort", "create", "Autumn", "--course", COURSE, "--start", START,
         "--timezone", "Europe/London", "--send-time", "09:00", now=FRIDAY)  # fmt: skip
    monday = utc(2026, 12, 14, 6)
    drip.enroll(("joe@example.com", "Europe/London"), now=monday, flags=("--catch-up",))
    assert drip.send(utc(2026, 12, 14, 8)) == [("joe@example.com", step(6))]
    drip("people", "move", "joe@example.com", "--to", "Autumn", now=utc(2026, 12, 14, 12))
    assert drip.send(utc(2026, 12, 15, 8)) == []  # Autumn sends at 09:00
    assert drip.send(utc(2026, 12, 15, 9)) == [("joe@example.com", step(7))]
    assert "Autumn: started at lesson 6" in drip("people", "show", "joe@example.com").stdout


def test_catching_up_with_a_finished_cohort_starts_at_its_last_lesson_and_warns(
    drip: Drip,
) -> None:
    late = utc(2027, 1, 11, 6)  # the cohort's ten lessons ended on Friday 18 December
    dry = drip.enroll(
        ("joe@example.com", "Europe/London"), now=late, flags=("--catch-up", "--dry-run")
    )
    assert "1 person would start at lesson 10 of 10 (catch-up: lessons 1-9 skipped)" in dry.stdout
    assert (
        "cohort 'Spring' has had its last lesson (Europe/London): catching up, people start at "
        "the last lesson 'step-10' only" in dry.stderr
    )
    drip.enroll(("joe@example.com", "Europe/London"), now=late, flags=("--catch-up",))
    assert drip.send(utc(2027, 1, 11, 8)) == [("joe@example.com", step(10))]
    assert drip.send(utc(2027, 1, 12, 8)) == [("joe@example.com", "_complete")]


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A database with no tables, on each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    with pg_database("drip_cu") as (_, url):
        engine = make_engine(url)
        yield engine
        engine.dispose()


def alembic(engine: sa.Engine, action: str, target: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_the_migration_gives_existing_enrolments_no_skips_and_goes_back_down(
    empty_engine: sa.Engine,
) -> None:
    alembic(empty_engine, "upgrade", "0007_person_attributes")
    now = utc(2026, 12, 1)
    with empty_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO person (id, email, name, created_at) VALUES (1, 'a@example.com', 'A', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO cohort (id, name, course, start_date, timezone, send_time, send_days, "
                "window_end, skip_dates, paused, welcome, sponsor, created_at) VALUES (1, 'c', "
                "'sample', '2026-12-07', 'UTC', '07:30', 'mon-fri', '18:00', '', false, true, '', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO enrollment (id, person_id, cohort_id, status, status_reason, "
                "lessons_sent, send_time, send_days, created_at) "
                "VALUES (1, 1, 1, 'active', '', 2, '', '', :now)"
            ),
            {"now": now},
        )

    migrate(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    with empty_engine.begin() as conn:
        assert conn.execute(sa.select(E.c.skipped, E.c.lessons_sent)).one() == ([], 2)
        conn.execute(E.update().values(skipped=["step-1", "step-2"]))
        assert conn.execute(sa.select(E.c.skipped)).scalar_one() == ["step-1", "step-2"]

    alembic(empty_engine, "downgrade", "0007_person_attributes")
    assert current_revision(empty_engine) == "0007_person_attributes"
    columns = {c["name"] for c in sa.inspect(empty_engine).get_columns("enrollment")}
    assert "skipped" not in columns and "lessons_sent" in columns
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT lessons_sent FROM enrollment")).scalar_one() == 2
