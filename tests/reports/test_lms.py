"""`drip report COHORT --format lms` on the hand-counted cohort of test_queries."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from reports.test_queries import COHORT, Scenario
from reports.test_queries import scenario as scenario  # the fixture, re-exported
from reports.test_queries import web_server as web_server  # the fixture, re-exported
from support import cli_env, run_drip, utc

from drip.models import PERSON as P
from drip.sending.run import send_due


def test_the_lms_file_lists_completions_with_dates_and_scores(scenario: Scenario) -> None:
    # The completions go out the morning after the last lesson.
    send_due(scenario.app.dispatcher(), utc(2026, 3, 5, 8))
    result = run_drip(["report", COHORT, "--format", "lms"], cli_env(scenario.settings))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "person_id,email,course_id,completion_date,score"
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    ids = {}
    with scenario.engine.connect() as conn:
        ids = {
            email: str(pid)
            for pid, email in conn.execute(P.select().with_only_columns(P.c.id, P.c.email))
        }
    # ann, bob, eve and fay got every lesson and their completion on 5 March;
    # the sample course has a check in every lesson: ann answered 1 of 3 right, eve's first
    # answer (the one that stands) was wrong, bob and fay answered none.
    assert [(r["email"], r["completion_date"], r["score"]) for r in rows] == [
        ("ann@example.com", "2026-03-05", "33"),
        ("bob@example.com", "2026-03-05", "0"),
        ("eve@example.com", "2026-03-05", "0"),
        ("fay@example.com", "2026-03-05", "0"),
    ]
    assert all(r["course_id"] == "sample" for r in rows)
    assert [r["person_id"] for r in rows] == [ids[r["email"]] for r in rows]


def test_lms_needs_a_cohort(scenario: Scenario, tmp_path: Path) -> None:
    result = run_drip(["report", "--format", "lms"], cli_env(scenario.settings))
    assert result.returncode == 2
    assert "name a COHORT for the LMS report" in result.stderr
