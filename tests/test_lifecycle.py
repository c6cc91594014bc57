"""The lifecycle: one table of transitions, every status change with its event, and a log that
replays to the state whatever people, managers, the dispatcher and the clock do."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import SECRET, cli_env, make_settings, run_drip, serving, utc

from drip import lifecycle
from drip.app import App
from drip.db import make_engine, migrate
from drip.lifecycle import RULES, Change, Transition, TransitionError
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.directory import change_person
from drip.people.enroll import enroll_rows
from drip.sending.run import send_due
from drip.states import EnrollmentStatus
from drip.tokens import Purpose, make_token
from drip.web import create_app

MONDAY = utc(2026, 11, 30, 6, 0)
PEOPLE = ["ada@example.com", "bo@example.com", "cy@example.com"]


def replayed(engine: sa.Engine) -> dict[int, tuple[str, str | None]]:
    """Each enrollment's status and the status its events replay to."""
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(E.c.id, E.c.status)).all())
        kinds: dict[int, list[str]] = {eid: [] for eid in statuses}
        for eid, kind in conn.execute(sa.select(EV.c.enrollment_id, EV.c.kind).order_by(EV.c.id)):
            kinds[eid].append(kind)
    return {eid: (statuses[eid], _value(lifecycle.replay(k))) for eid, k in kinds.items()}


def _value(status: EnrollmentStatus | None) -> str | None:
    return None if status is None else status.value


def enrol(engine: sa.Engine, cohort_name: str, now: datetime) -> None:
    cohort = create_cohort(
        engine, name=cohort_name, course="sample", start=now.date(), timezone="UTC", now=now
    )
    enroll_rows(
        engine, cohort, [Row(i + 2, email, "", None) for i, email in enumerate(PEOPLE)], now=now
    )


def test_every_transition_ends_where_its_event_replays_to() -> None:
    for transition, rule in RULES.items():
        assert lifecycle.STATUS_AFTER[rule.event.value] is rule.target, transition
    assert lifecycle.replay(["enrol", "sent", "pause", "wake", "sent", "complete"]) == "completed"
    assert lifecycle.replay(["enrol", "unsubscribe", "resubscribe"]) == "active"
    assert lifecycle.replay([]) is None


def test_a_transition_that_is_not_allowed_is_a_clear_error(engine: sa.Engine) -> None:
    enrol(engine, "board", MONDAY)
    with engine.begin() as conn:
        eid = conn.execute(sa.select(sa.func.min(E.c.id))).scalar_one()
        with pytest.raises(TransitionError, match=r"cannot resubscribe: the enrolment is active"):
            lifecycle.apply_one(
                conn, Transition.resubscribe, Change(eid), now=MONDAY, method="test"
            )
    with pytest.raises(TransitionError, match="board: cannot resume: the enrolment is active"):
        change_person(engine, PEOPLE[0], "resume", now=MONDAY)


def test_cli_resume_of_an_active_person_says_why_and_exits_1(tmp_path: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    enrol(engine, "board", MONDAY)
    env = cli_env(make_settings(tmp_path, db_url))
    result = run_drip(["people", "resume", PEOPLE[0]], env)
    assert result.returncode == 1
    assert (
        "cannot resume: the enrolment is active (resume applies to bounced, held, paused, removed)"
        in (result.stderr)
    )


def test_log_lists_completions_and_the_end_of_a_timed_pause(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> None:
    settings_ = make_settings(tmp_path, db_url)
    enrol(engine, "board", MONDAY)
    app = App(settings_, engine)
    dispatcher = app.dispatcher()
    send_due(dispatcher, utc(2026, 11, 30, 7, 30))
    change_person(engine, PEOPLE[1], "pause", now=utc(2026, 11, 30, 9), until=date(2026, 12, 2))
    for day in (1, 2, 3):  # ada and cy finish on the 2nd; bo, back on the 2nd, a day later
        send_due(dispatcher, utc(2026, 12, day, 7, 30))
    env = cli_env(settings_)
    completed = run_drip(["log", "--kind", "complete", "--format", "jsonl"], env)
    assert completed.returncode == 0, completed.stderr
    assert sorted(
        line.split('"email": "')[1].split('"')[0] for line in completed.stdout.splitlines()
    ) == [
        "ada@example.com",
        "cy@example.com",
    ]
    woke = run_drip(["log", "--kind", "wake"], env)
    assert "bo@example.com" in woke.stdout and "timed pause ended" in woke.stdout
    assert all(status == replay for status, replay in replayed(engine).values())


# -- the property: state and log never disagree ----------------------------------------------

ACTIONS = st.one_of(
    st.tuples(st.just("cli"), st.sampled_from(["pause", "resume", "unsubscribe", "resubscribe"]),
              st.integers(0, 2)),
    st.tuples(st.just("web"), st.sampled_from(["pause1", "pause2", "resume", "unsubscribe",
                                               "resubscribe"]), st.integers(0, 2)),
    st.tuples(st.just("send"), st.just(""), st.just(0)),
    st.tuples(st.just("clock"), st.just(""), st.integers(1, 72)),
)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp = tmp_path_factory.mktemp("lifecycle")
    url = f"sqlite:///{tmp / 'drip.db'}"
    engine = make_engine(url)
    migrate(engine)
    settings_ = make_settings(tmp, url)
    clock = [MONDAY]
    app = create_app(engine, settings_, clock=lambda: clock[0], token_limit=10_000)
    with serving(app) as base, httpx.Client(base_url=base) as http:
        yield engine, settings_, clock, http
    engine.dispose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(ACTIONS, min_size=1, max_size=12))
def test_replaying_the_events_gives_the_status(world: object, actions: list) -> None:
    engine, settings_, clock, http = world  # type: ignore[misc]
    now = clock[0] = clock[0] + timedelta(days=7)
    name = f"c{now:%Y%m%d%H%M}"
    cohort = create_cohort(
        engine, name=name, course="sample", start=now.date(), timezone="UTC", now=now
    )
    emails = [f"{name}-{p}" for p in PEOPLE]
    enroll_rows(engine, cohort, [Row(i + 2, e, "", None) for i, e in enumerate(emails)], now=now)
    dispatcher = App(settings_, engine).dispatcher()
    for kind, action, n in actions:
        if kind == "clock":
            now = clock[0] = now + timedelta(hours=n)
        elif kind == "send":
            send_due(dispatcher, now)
        elif kind == "cli":
            try:
                change_person(engine, emails[n], action, now=now, cohort_name=name)
            except TransitionError:
                pass  # not allowed from the current status: refused, nothing written
        else:
            with engine.connect() as conn:
                delivery = conn.execute(
                    sa.text(
                        "select d.id from delivery d join enrollment e on e.id = d.enrollment_id"
                        " join person p on p.id = e.person_id where p.email = :e"
                    ),
                    {"e": emails[n]},
                ).scalar()
            if delivery is None:
                continue
            token = make_token(
                SECRET, Purpose.unsubscribe if "subscribe" in action else Purpose.pause, delivery
            )
            route = "u" if "subscribe" in action else "p"
            response = http.post(f"/{route}/{token}", data={"action": action})
            assert response.status_code == 200
    for eid, (status, replay) in replayed(engine).items():
        assert status == replay, f"enrollment {eid}: status {status}, events replay to {replay}"
