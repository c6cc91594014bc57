"""The weekly digest names the people drip paused by itself, not those who paused themselves."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from support import make_settings, spam_score, utc

from drip import lifecycle
from drip.lifecycle import Change, Transition
from drip.models import ENROLLMENT as E
from drip.models import PERSON as P
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.reports.digest import Named, auto_paused, build_digest

NOW = utc(2026, 3, 2, 9)


def test_the_digest_names_who_drip_paused_automatically(engine: sa.Engine) -> None:
    cohort = create_cohort(
        engine, name="Leaders", course="sample", start=NOW.date(), timezone="UTC", now=NOW
    )
    people = [Row(2, "ann@example.com", "Ann", None), Row(3, "bob@example.com", "Bob", None)]
    people.append(Row(4, "cy@example.com", "", None))
    enroll_rows(engine, cohort, people, now=NOW)
    with engine.begin() as conn:
        ids = dict(
            conn.execute(sa.select(P.c.email, E.c.id).join(E, E.c.person_id == P.c.id)).all()
        )
        auto = [Change(ids["bob@example.com"], reason="5 lessons unopened")]
        lifecycle.apply(conn, Transition.autopause, auto, now=NOW, method="schedule")
        lifecycle.apply(
            conn, Transition.autopause, [Change(ids["cy@example.com"])], now=NOW, method="schedule"
        )
        mine = [Change(ids["ann@example.com"], until=NOW.date())]
        lifecycle.apply(conn, Transition.pause, mine, now=NOW, method="GET")
    assert auto_paused(engine, "Leaders") == [
        Named("", "cy@example.com"),
        Named("Bob", "bob@example.com"),
    ]


def test_spamassassin_local_rules_score_the_digest_below_1(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, FROM="Drip Lessons <lessons@example.org>")
    cohort = create_cohort(
        engine, name="Leaders", course="sample", start=NOW.date(), timezone="UTC",
        manager="boss@example.org", now=NOW,
    )  # fmt: skip
    people = [Row(i + 2, f"p{i}@example.org", f"Person {i}", None) for i in range(30)]
    enroll_rows(engine, cohort, people, now=NOW)
    message = build_digest(engine, settings, "Leaders", NOW, "boss@example.org")
    score, report = spam_score(message.as_bytes())
    assert score < 1.0, report
