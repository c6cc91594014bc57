"""`drip report` and `drip log` on the hand-counted cohort of test_reports."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from queue import Empty, Queue

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from reports.test_queries import COHORT, Scenario
from reports.test_queries import scenario as scenario  # the fixture, re-exported
from reports.test_queries import web_server as web_server  # the fixture, re-exported
from support import cli_env, utc

from drip.cli import main
from drip.config import Settings
from drip.models import DELIVERY as D
from drip.models import EVENT as EV


def run(scenario: Scenario, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=cli_env(scenario.settings))


def test_table_report(scenario: Scenario) -> None:
    result = run(scenario, "report", COHORT)
    assert result.exit_code == 0, result.output
    assert "Leaders Q1: Sample: three quick lessons (opens by people)" in result.stdout
    lines = result.stdout.splitlines()
    assert [line.split("│")[2].strip() for line in lines if "open rate" in line] == [
        "27.8%",
        "44.4%",
    ]
    assert "fay@example.com" in result.stdout


def test_csv_people_and_lessons(scenario: Scenario) -> None:
    result = run(scenario, "report", COHORT, "--format", "csv")
    assert result.exit_code == 0, result.output
    people = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [p["email"] for p in people][:2] == ["ann@example.com", "bob@example.com"]
    assert [p["email"] for p in people if p["behind"] == "yes"] == [
        "bob@example.com",
        "fay@example.com",
    ]
    assert people[0]["progress"] == "3 of 3" and people[0]["last_activity"].startswith("2026-03-04")
    result = run(scenario, "report", COHORT, "--format", "csv", "--section", "lessons", "--all")
    lessons = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [
        (r["position"], r["sent"], r["opened_all"], r["unsubscribed_after"]) for r in lessons
    ] == [
        ("1", "9", "3", "1"),
        ("2", "5", "3", "1"),
        ("3", "4", "2", "0"),
    ]


def test_json_human_and_all(scenario: Scenario) -> None:
    human = json.loads(run(scenario, "report", COHORT, "--format", "json").stdout)
    everything = json.loads(run(scenario, "report", COHORT, "--format", "json", "--all").stdout)
    assert (human["mode"], everything["mode"]) == ("human", "all")
    assert (human["summary"]["behind"], everything["summary"]["behind"]) == (2, 1)
    assert human["summary"]["open_rate_all"] == pytest.approx(8 / 18)
    assert human["progress"] == [
        {"lessons_sent": 0, "people": 0},
        {"lessons_sent": 1, "people": 4},
        {"lessons_sent": 2, "people": 1},
        {"lessons_sent": 3, "people": 4},
    ]


def test_html_to_a_file(scenario: Scenario, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    result = run(scenario, "report", COHORT, "--format", "html", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout
    html = target.read_text(encoding="utf-8")
    assert (
        html.count("<svg") == 4 and "<script" not in html
    )  # progress, funnel, activity, retention


def test_html_lists_the_first_people_and_everyone_behind(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large cohort's page reads only the first people; the behind list is read on its own.
    monkeypatch.setattr("drip.reports.html.MAX_ROWS", 1)
    target = tmp_path / "report.html"
    result = run(scenario, "report", COHORT, "--format", "html", "--output", str(target))
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    enrolled = len(
        list(csv.DictReader(io.StringIO(run(scenario, "report", COHORT, "--format", "csv").stdout)))
    )
    assert f"… and {enrolled - 1} more" in html
    assert "ann@example.com" in html and "cat@example.com" not in html
    assert "bob@example.com" in html  # behind: first of the behind list, past the first page
    assert "… and 1 more" in html  # fay, the other one behind


def test_every_cohort_and_one_person(scenario: Scenario) -> None:
    rows = list(csv.DictReader(io.StringIO(run(scenario, "report", "--format", "csv").stdout)))
    assert [(r["cohort"], r["enrolled"], r["behind"]) for r in rows] == [(COHORT, "9", "2")]
    events = json.loads(
        run(scenario, "report", "--person", "cat@example.com", "--format", "json").stdout
    )
    assert [(e["kind"], e["verdict"]) for e in events] == [
        ("enrol", "unknown"),
        ("sent", "unknown"),
        ("open", "human"),
        ("unsubscribe", "human"),
    ]
    assert events[3]["reason"] == "one-click unsubscribe (RFC 8058)"


def test_unknown_cohort_and_person(scenario: Scenario) -> None:
    result = run(scenario, "report", "Nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no cohort 'Nope'; cohorts: {COHORT}"
    result = run(scenario, "log", "--person", "zed@example.com")
    assert result.exit_code == 1
    assert "error: no person with e-mail 'zed@example.com'; see drip people list" in result.stderr
    result = run(scenario, "report", "--format", "html")
    assert result.exit_code == 2 and "name a COHORT for the HTML report" in result.stderr
    result = run(scenario, "log", "--since", "last tuesday")
    assert result.exit_code == 1  # a bad value, not bad usage
    assert "error: --since 'last tuesday' is not an ISO time" in result.stderr


def test_log_filters(scenario: Scenario) -> None:
    result = run(scenario, "log", "--cohort", COHORT, "--kind", "unsubscribe", "--kind", "pause",
                 "--format", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["kind"], e["email"], e["method"]) for e in events] == [
        ("unsubscribe", "cat@example.com", "POST"),
        ("pause", "hal@example.com", "POST"),
        ("unsubscribe", "gus@example.com", "cli"),
    ]
    lines = run(scenario, "log", "--person", "ann@example.com", "--since", "2026-03-04").stdout
    assert lines.splitlines()[0].startswith(
        "2026-03-04 08:00:00  sent        unknown ann@example.com"
    )
    assert len(lines.splitlines()) == 4  # sent, open, confirm, answer


def test_follow_streams_new_events_until_ctrl_c(scenario: Scenario) -> None:
    env = cli_env(scenario.settings)
    # As from a terminal: a suite started in the background (no job control) has SIGINT
    # ignored, which a child keeps, and Python then never turns Ctrl-C into KeyboardInterrupt.
    # A handler of ours is reset to the default in the child (no preexec_fn: threads run here).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "drip.cli", "log", "--follow", "--format", "jsonl",
             "--kind", "open", "--person", "fay@example.com"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, before)
    lines: Queue[str] = Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        with pytest.raises(Empty):
            lines.get(timeout=2.5)  # fay never opened anything
        with scenario.engine.begin() as conn:
            enrollment, delivery = conn.execute(
                sa.select(D.c.enrollment_id, D.c.id)
                .where(D.c.enrollment_id == sa.text("(SELECT e.id FROM enrollment e JOIN person p"
                                                    " ON p.id = e.person_id"
                                                    " WHERE p.email = 'fay@example.com')"))
                .limit(1)
            ).one()  # fmt: skip
            conn.execute(
                EV.insert(),
                {"enrollment_id": enrollment, "delivery_id": delivery, "kind": "open",
                 "at": utc(2026, 3, 5, 7), "method": "GET", "verdict": "human",
                 "reason": "mail client", "detail": ""},
            )  # fmt: skip
        event = json.loads(lines.get(timeout=10))
        assert (event["email"], event["kind"], event["at"]) == (
            "fay@example.com", "open", "2026-03-05T07:00:00+00:00",
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(10)
    assert code == 0
    assert "Traceback" not in process.stderr.read()  # type: ignore[union-attr]


def test_empty_lists_say_so_in_a_line(settings: Settings) -> None:
    env = cli_env(settings)
    for args, said in (
        (["report"], "cohorts: none"),
        (["cohort", "list"], "cohorts: none"),
        (["suppress", "list"], "suppressed addresses: none"),
    ):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == said, args


@pytest.mark.parametrize("width", [60, 200])
def test_a_list_too_wide_for_the_terminal_shows_each_row_as_lines(
    scenario: Scenario, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 columns the cohort list's ten columns would fold every value into pieces; it is
    shown a field a line instead, each value whole. Wide enough, it is a table."""
    from drip.cli.base import console

    monkeypatch.setattr(console, "width", width)
    result = run(scenario, "cohort", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    if width == 60:
        assert "-[ 1 of 1 ]" in lines[1]
        assert f"cohort        {COHORT}" in lines
        assert "course        sample" in lines
        assert all(len(line) <= width for line in lines)
    else:
        assert "┃ cohort" in result.stdout and f"│ {COHORT}" in result.stdout
