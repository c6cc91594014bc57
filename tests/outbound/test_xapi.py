"""xAPI statements of a hand-counted cohort, sent through the outbox to a real Ralph LRS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from reports.test_queries import Clock, build_cohort
from reports.test_queries import web_server as web_server  # the fixture, re-exported
from support import SmtpHandler, cli_env, make_settings, run_drip
from support_peers import RALPH_PASSWORD, RALPH_USER, Ralph

from drip.config import Settings
from drip.db import make_engine
from drip.models import OUTBOX as O
from drip.models import PERSON as P
from drip.outgoing import OutboxConfig, enable, namespace_for

ACTIVITY_BASE = "https://learn.example.com/xapi"
AFTER = "2026-03-06T00:00:00Z"  # the day after the completions
ADL = "http://adlnet.gov/expapi/verbs/"
# The hand count of build_cohort: what leaves drip as learning, per person.
EXPECTED = {
    # Three lessons read and confirmed, one answer, the course completed the next morning.
    "ann": ["experienced", "completed", "experienced", "completed", "experienced", "completed",
            "answered", "completed"],
    "bob": ["completed"],  # his opens were Apple prefetches: machine, never sent; the course
    "cat": ["experienced", "exited"],
    "eve": ["answered", "experienced", "answered", "completed"],  # an answer implies the open
    "fay": ["completed"],
    "gus": ["exited"],
    "hal": ["suspended"],
}  # fmt: skip


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """The database with the xAPI outbox on, as `drip run` and `drip serve` open it."""
    eng = enable(make_engine(db_url), OutboxConfig(("xapi",), namespace_for(ACTIVITY_BASE)))
    yield eng
    eng.dispose()


def xapi_settings(tmp_path: Path, db_url: str, ralph: Ralph, **extra: str) -> Settings:
    return make_settings(
        tmp_path, db_url, XAPI_ENDPOINT=ralph.endpoint, XAPI_USERNAME=RALPH_USER,
        XAPI_PASSWORD=RALPH_PASSWORD, XAPI_ACTIVITY_BASE=ACTIVITY_BASE, **extra,
    )  # fmt: skip


@pytest.fixture
def cohort(
    engine: sa.Engine,
    tmp_path: Path,
    db_url: str,
    smtp: tuple[SmtpHandler, int],
    web_server: tuple[str, Clock],
) -> sa.Engine:
    build_cohort(engine, tmp_path, db_url, smtp, web_server, finish=True)
    return engine


def keys(engine: sa.Engine) -> dict[str, int]:
    """The statement ids drip queued, with their event ids."""
    with engine.connect() as conn:
        return dict(
            conn.execute(sa.select(O.c.key, O.c.event_id).where(O.c.target == "xapi")).all()
        )


def by_person(statements: list[dict], order: dict[str, int]) -> dict[str, list[str]]:
    """Each person's verbs in the order drip recorded the events."""
    found: dict[str, list[str]] = {}
    for s in sorted(statements, key=lambda s: order[s["id"]]):
        who = s["actor"]["mbox"].removeprefix("mailto:").split("@")[0]
        found.setdefault(who, []).append(s["verb"]["id"].removeprefix(ADL))
    return found


def test_a_cohorts_statements_reach_the_lrs_once_each(
    cohort: sa.Engine, ralph: Ralph, tmp_path: Path, db_url: str
) -> None:
    env = cli_env(xapi_settings(tmp_path, db_url, ralph))
    pushed = run_drip(["xapi", "push", "--now", AFTER], env)
    assert pushed.returncode == 0, pushed.stderr
    assert "xapi: 18 sent, 0 rejected" in pushed.stdout

    stored = ralph.stored()
    assert len(stored) == 18 == sum(len(v) for v in EXPECTED.values())
    assert {s["id"] for s in stored} == set(keys(cohort))  # each once, under drip's own ids
    assert by_person(stored, keys(cohort)) == EXPECTED

    # What the LRS serves back (its file backend ignores a verb filter, so all 18 come back):
    # ann's answer right, eve's first wrong then right.
    served = httpx.get(
        f"{ralph.endpoint}/statements", params={"limit": 100},
        auth=(RALPH_USER, RALPH_PASSWORD), headers={"X-Experience-API-Version": "1.0.3"},
    ).json()["statements"]  # fmt: skip
    assert len(served) == 18
    answered = sorted(
        (s["actor"]["name"], s["timestamp"], s["result"]["success"])
        for s in served
        if s["verb"]["id"] == ADL + "answered"
    )
    assert [(name, ok) for name, _, ok in answered] == [
        ("Ann", True),
        ("Eve", False),
        ("Eve", True),
    ]
    lesson = next(s for s in stored if s["verb"]["id"] == ADL + "experienced")
    assert lesson["object"]["id"].startswith(f"{ACTIVITY_BASE}/courses/sample/lessons/")
    assert lesson["context"]["contextActivities"]["parent"][0]["id"] == (
        f"{ACTIVITY_BASE}/courses/sample"
    )

    again = run_drip(["xapi", "push", "--now", AFTER], env)
    assert "xapi: 0 sent" in again.stdout
    assert len(ralph.stored()) == 18


def test_the_lrs_stopped_mid_run_and_restarted_loses_none_and_duplicates_none(
    cohort: sa.Engine, ralph: Ralph, tmp_path: Path, db_url: str
) -> None:
    env = cli_env(xapi_settings(tmp_path, db_url, ralph))
    first = run_drip(["xapi", "push", "--now", AFTER, "--limit", "7"], env)
    assert "xapi: 7 sent" in first.stdout
    ralph.stop()

    down = run_drip(["xapi", "push", "--now", AFTER], env)
    assert down.returncode == 1
    assert "xapi unreachable" in down.stderr
    status = json.loads(run_drip(["xapi", "status", "--format", "json"], env).stdout)
    assert status["targets"][0]["pending"] == 11
    assert status["targets"][0]["sent"] == 7
    assert "unreachable" in status["targets"][0]["last_error"]

    # The window a crash leaves: the LRS stored three statements but drip never recorded it.
    with cohort.begin() as conn:
        lost = list(conn.execute(sa.select(O.c.id).where(O.c.status == "sent").limit(3)).scalars())
        conn.execute(O.update().where(O.c.id.in_(lost)).values(status="pending"))

    ralph.start()
    back = run_drip(["xapi", "push", "--now", AFTER], env)
    # The 10 never tried and the 3 re-sent (the LRS has them: 204, not stored again); the
    # statement that met the stopped LRS waits its backoff (30 s).
    assert "xapi: 13 sent" in back.stdout
    later = run_drip(["xapi", "push", "--now", "2026-03-06T00:01:00Z"], env)
    assert later.returncode == 0, later.stderr
    assert "xapi: 1 sent" in later.stdout

    stored = ralph.stored()
    assert len(stored) == 18
    assert {s["id"] for s in stored} == set(keys(cohort))
    assert by_person(stored, keys(cohort)) == EXPECTED
    status = json.loads(run_drip(["xapi", "status", "--format", "json"], env).stdout)
    assert (status["targets"][0]["sent"], status["targets"][0]["pending"]) == (18, 0)


def test_a_statement_the_lrs_rejects_is_shown_with_its_reason(
    cohort: sa.Engine, ralph: Ralph, tmp_path: Path, db_url: str
) -> None:
    # An address from before drip checked them, on an on-premises domain the LRS refuses.
    with cohort.begin() as conn:
        conn.execute(P.update().where(P.c.email == "fay@example.com").values(email="fay@hq.local"))
    env = cli_env(xapi_settings(tmp_path, db_url, ralph))

    pushed = run_drip(["xapi", "push", "--now", AFTER], env)
    assert pushed.returncode == 1
    assert "xapi: 17 sent, 1 rejected" in pushed.stdout
    assert "1 rejected; see drip xapi status" in pushed.stderr
    assert len(ralph.stored()) == 17

    shown = run_drip(["xapi", "status", "--format", "json"], env)
    status = json.loads(shown.stdout)
    assert status["targets"][0]["rejected"] == 1
    [rejected] = status["rejected"]
    assert rejected["email"] == "fay@hq.local"
    assert rejected["event"] == "complete"
    assert rejected["code"] == 422
    assert "mbox: value is not a valid email address" in rejected["reason"]
    assert "special-use or reserved name" in rejected["reason"]
    table = run_drip(["xapi", "status"], env)
    assert "fay@hq.local" in table.stdout and "Unprocessable" in table.stdout

    # A rejected statement is never retried on its own; replay sends it again once fixed.
    assert "xapi: 0 sent" in run_drip(["xapi", "push", "--now", AFTER], env).stdout
    with cohort.begin() as conn:
        conn.execute(P.update().where(P.c.email == "fay@hq.local").values(email="fay@example.com"))
    replayed = run_drip(["xapi", "replay", "--since", "2026-03-01", "--now", AFTER], env)
    assert "xapi: 18 events queued again" in replayed.stdout
    assert "xapi: 18 sent" in run_drip(["xapi", "push", "--now", AFTER], env).stdout
    assert len(ralph.stored()) == 18  # the 17 the LRS had came back 204, not stored twice


def test_account_actors_carry_the_hr_id_and_no_email(
    cohort: sa.Engine, ralph: Ralph, tmp_path: Path, db_url: str
) -> None:
    settings = xapi_settings(tmp_path, db_url, ralph, XAPI_ACTOR="account")
    pushed = run_drip(["xapi", "push", "--now", AFTER], cli_env(settings))
    assert "xapi: 18 sent" in pushed.stdout
    actors = [s["actor"] for s in ralph.stored()]
    assert all("mbox" not in a and "name" not in a for a in actors)
    assert all(a["account"]["homePage"] == ACTIVITY_BASE for a in actors)
    # No person has an employee_id attribute here: drip's own person id stands in for it.
    assert {a["account"]["name"].split("-")[0] for a in actors} == {"drip"}
    assert "@example.com" not in json.dumps(actors)
