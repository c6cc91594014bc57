"""Completion reports on a small cohort sent by the real dispatcher and tracked over real HTTP."""

from __future__ import annotations

import email
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from support import LESSONS, SmtpHandler, free_port, make_settings, utc

from drip.app import App
from drip.config import Settings
from drip.curriculum.load import load_course
from drip.errors import HeaderError, NotFound
from drip.mail.transports import open_transport
from drip.models import DELIVERY as D
from drip.models import EVENT as EV
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.directory import change_person
from drip.people.enroll import enroll_rows
from drip.reports.digest import build_digest, send_digests
from drip.reports.html import render_html
from drip.reports.log import LogFilter, follow_events, log_events, person_timeline
from drip.reports.queries import cohort_report, cohort_summaries
from drip.scheduler import add_digest_jobs
from drip.sending.run import send_due
from drip.tokens import link_values
from drip.web import create_app

HUMAN_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1"
APPLE_PREFETCH = "Mozilla/5.0"  # Apple Mail Privacy Protection: judged a machine
COHORT = "Leaders Q1"
NOW = utc(2026, 3, 4, 18, 0)
PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"]


class Clock:
    """The web app's clock, set by the test before each hit."""

    def __init__(self) -> None:
        self.now = utc(2026, 3, 1)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Scenario:
    """The cohort's database, settings and the web server that tracked it."""

    app: App
    settings: Settings
    engine: sa.Engine
    web: str


@pytest.fixture
def web_server(engine: sa.Engine, tmp_path: Path, db_url: str) -> Iterator[tuple[str, Clock]]:
    """The real tracking app under uvicorn on 127.0.0.1, with a clock the test sets."""
    clock = Clock()
    port = free_port()
    settings = make_settings(tmp_path, db_url)
    app = create_app(engine, settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", clock
    server.should_exit = True
    thread.join(5)


def build_cohort(
    engine: sa.Engine,
    tmp_path: Path,
    db_url: str,
    smtp: tuple[SmtpHandler, int],
    web_server: tuple[str, Clock],
    finish: bool = False,
) -> Scenario:
    """Nine people on the three-lesson sample course, Mon 2 to Wed 4 March 2026 (UTC); with
    `finish`, also Thursday 5 March, when the four with every lesson get their completion.

    ann opens, confirms and answers right; bob's opens are all Apple prefetches (machine);
    cat opens lesson 1 and unsubscribes with its link; dan bounces (550) on lesson 2; eve
    answers lesson 2 wrong, then right; fay never reacts; gus is unsubscribed from the CLI
    after lesson 2; hal pauses from lesson 1's page; ivy joins on Tuesday.
    """
    handler, port = smtp
    web, clock = web_server
    settings = make_settings(tmp_path, db_url, MAIL_URL=f"smtp://127.0.0.1:{port}", BASE_URL=web)
    app = App(settings, engine)
    dispatcher = app.dispatcher()
    cohort = create_cohort(
        engine, name=COHORT, course="sample", start=utc(2026, 3, 2).date(), timezone="UTC",
        manager="boss@example.com", now=utc(2026, 3, 1),
    )  # fmt: skip
    rows = [Row(i + 2, f"{n}@example.com", n.title(), None) for i, n in enumerate(PEOPLE)]
    enroll_rows(engine, cohort, rows, now=utc(2026, 3, 1, 12))
    course = load_course(LESSONS, "sample")
    answers = [lesson.check.answer for lesson in course.lessons if lesson.check]

    def delivery(name: str, position: int) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT d.id FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id"
                        " JOIN person p ON p.id = e.person_id"
                        " WHERE p.email = :email AND d.position = :position"
                    ),
                    {"email": f"{name}@example.com", "position": position},
                ).scalar_one()
            )

    def hit(at: datetime, name: str, position: int, key: str, agent: str = HUMAN_AGENT) -> None:
        clock.now = at
        url = link_values(web, settings.secret_key, delivery(name, position), 3, 0)[key]
        headers = {"User-Agent": agent}
        if key == "UNSUBSCRIBE":
            response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, headers=headers)
        elif key == "PAUSE":
            response = httpx.post(url, data={"action": "pause1"}, headers=headers)
        else:
            response = httpx.get(url, headers=headers, follow_redirects=False)
        assert response.status_code == 200, (key, response.text[:200])

    day1, day2, day3 = (utc(2026, 3, d, 8) for d in (2, 3, 4))
    assert send_due(dispatcher, day1).sent == 8
    hit(utc(2026, 3, 2, 9), "ann", 1, "OPEN")
    hit(utc(2026, 3, 2, 9, 1), "ann", 1, "CONFIRM")
    hit(utc(2026, 3, 2, 8, 0, 2), "bob", 1, "OPEN", APPLE_PREFETCH)
    hit(utc(2026, 3, 2, 10), "cat", 1, "OPEN")
    hit(utc(2026, 3, 2, 10, 5), "cat", 1, "UNSUBSCRIBE")
    hit(utc(2026, 3, 2, 11), "hal", 1, "PAUSE")

    handler.replies[:] = ["250 OK", "250 OK", "550 5.1.1 no such user", "250 OK", "250 OK"]
    result = send_due(dispatcher, day2)
    assert (result.sent, result.failed) == (5, 1)
    enroll_rows(
        engine, cohort, [Row(2, "ivy@example.com", "Ivy", None)], now=utc(2026, 3, 3, 8, 30)
    )
    hit(utc(2026, 3, 3, 9), "ann", 2, "OPEN")
    hit(utc(2026, 3, 3, 9, 1), "ann", 2, "CONFIRM")
    hit(utc(2026, 3, 3, 8, 0, 3), "bob", 2, "OPEN", APPLE_PREFETCH)
    hit(utc(2026, 3, 3, 12), "eve", 2, f"ANSWER-{(answers[1] + 1) % 3}")
    hit(utc(2026, 3, 3, 12, 5), "eve", 2, f"ANSWER-{answers[1]}")
    change_person(engine, "gus@example.com", "unsubscribe", now=utc(2026, 3, 3, 12))

    assert send_due(dispatcher, day3).sent == 5
    hit(utc(2026, 3, 4, 9), "ann", 3, "OPEN")
    hit(utc(2026, 3, 4, 9, 1), "ann", 3, "CONFIRM")
    hit(utc(2026, 3, 4, 9, 2), "ann", 3, f"ANSWER-{answers[2]}")
    hit(utc(2026, 3, 4, 8, 0, 2), "bob", 3, "OPEN", APPLE_PREFETCH)
    if finish:
        assert send_due(dispatcher, utc(2026, 3, 5, 8)).completed == 4
    dispatcher.transport.close()
    return Scenario(app, settings, engine, web)


@pytest.fixture
def scenario(
    engine: sa.Engine,
    tmp_path: Path,
    db_url: str,
    smtp: tuple[SmtpHandler, int],
    web_server: tuple[str, Clock],
) -> Scenario:
    return build_cohort(engine, tmp_path, db_url, smtp, web_server)


def test_summary_matches_the_hand_count(scenario: Scenario) -> None:
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    s = report.summary
    # The four with every lesson get their completion e-mail the next morning: still active.
    assert (s.enrolled, s.active, s.paused, s.completed, s.unsubscribed, s.bounced) == (
        9, 5, 1, 0, 2, 1,
    )  # fmt: skip
    assert s.course_lessons == 3
    assert s.lessons_sent == 18  # 9 first lessons, 5 second (dan's bounced), 4 third
    assert (s.opened_human, s.opened_all) == (5, 8)  # bob's 3 prefetches count only in --all
    assert s.open_rate_human == pytest.approx(5 / 18)
    assert s.open_rate_all == pytest.approx(8 / 18)
    assert (s.confirmed, s.answered, s.answered_right) == (3, 2, 1)  # eve's first answer was wrong
    assert s.average_progress == pytest.approx(18 / 27)
    assert (s.on_track, s.behind) == (4, 2)  # bob and fay; readers are active, paused, completed


def test_all_opens_change_who_is_behind(scenario: Scenario) -> None:
    human = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    everything = cohort_report(scenario.engine, COHORT, LESSONS, NOW, human_only=False)
    assert [p.email for p in human.behind] == ["bob@example.com", "fay@example.com"]
    assert [p.email for p in everything.behind] == ["fay@example.com"]
    assert (everything.summary.on_track, everything.summary.behind) == (5, 1)
    bob = next(p for p in everything.people if p.email == "bob@example.com")
    assert bob.opened == 3
    assert next(p for p in human.people if p.email == "bob@example.com").opened == 0


def test_lesson_funnel(scenario: Scenario) -> None:
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    rows = [
        (r.position, r.sent, r.opened_human, r.opened_all, r.confirmed, r.answered,
         r.answered_right, r.unsubscribed_after)
        for r in report.lessons
    ]  # fmt: skip
    assert rows == [
        (1, 9, 2, 3, 1, 0, 0, 1),  # cat unsubscribed with lesson 1's link
        (2, 5, 2, 3, 1, 1, 0, 1),  # eve's answer implies an open; gus left after lesson 2
        (3, 4, 1, 2, 1, 1, 1, 0),
    ]
    assert report.lessons[0].title == load_course(LESSONS, "sample").lessons[0].title


def test_people(scenario: Scenario) -> None:
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    rows = {p.email.split("@")[0]: p for p in report.people}
    assert list(rows) == [*PEOPLE, "ivy"]
    assert [(rows[n].status, rows[n].progress) for n in ("ann", "dan", "gus", "hal", "ivy")] == [
        ("active", "3 of 3"),
        ("bounced", "1 of 3"),
        ("unsubscribed", "2 of 3"),
        ("paused", "1 of 3"),
        ("active", "1 of 3"),
    ]
    assert (rows["ann"].opened, rows["ann"].confirmed) == (3, 3)
    assert rows["ann"].last_activity == utc(2026, 3, 4, 9, 2)
    assert rows["gus"].last_activity == utc(2026, 3, 3, 12)
    assert rows["fay"].last_activity is None
    assert rows["bob"].last_activity is None  # prefetches are not a person's activity
    assert "550" in rows["dan"].reason
    assert not rows["cat"].behind and not rows["ivy"].behind


def test_progress_and_activity(scenario: Scenario) -> None:
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    assert report.progress == [(0, 0), (1, 4), (2, 1), (3, 4)]
    days = [(d.day, d.sent, d.opened, d.responded, d.other) for d in report.activity]
    assert days == [
        ("2026-03-02", 8, 2, 1, 2),  # cat's unsubscribe, hal's pause
        ("2026-03-03", 5, 2, 3, 2),  # eve's implied open and two answers; dan's bounce, gus
        ("2026-03-04", 5, 1, 2, 0),
    ]
    everything = cohort_report(scenario.engine, COHORT, LESSONS, NOW, human_only=False)
    assert [d.opened for d in everything.activity] == [3, 3, 2]


def test_summaries_of_every_cohort(scenario: Scenario) -> None:
    create_cohort(scenario.engine, name="Empty", course="sample", start=NOW.date(),
                  timezone="UTC", now=NOW)  # fmt: skip
    summaries = cohort_summaries(scenario.engine, LESSONS, NOW)
    assert [(s.cohort, s.enrolled, s.lessons_sent) for s in summaries] == [
        ("Empty", 0, 0),
        (COHORT, 9, 18),
    ]
    assert summaries[0].open_rate_human == 0.0


def test_person_timeline_oldest_first_with_titles(scenario: Scenario) -> None:
    titles = [lesson.title for lesson in load_course(LESSONS, "sample").lessons]
    timeline = person_timeline(scenario.engine, "EVE@example.com")
    # The log opens with the enrolment, like every status change.
    assert timeline[0].kind == "enrol"
    events = timeline[1:]
    assert [(e.kind, e.lesson) for e in events] == [
        ("sent", titles[0]),
        ("sent", titles[1]),
        ("answer", titles[1]),
        ("open", titles[1]),  # implied by the answer
        ("answer", titles[1]),
        ("sent", titles[2]),
    ]
    assert [e.at for e in events] == sorted(e.at for e in events[:2]) + [
        utc(2026, 3, 3, 12), utc(2026, 3, 3, 12), utc(2026, 3, 3, 12, 5), utc(2026, 3, 4, 8),
    ]  # fmt: skip
    with pytest.raises(NotFound, match="no person with e-mail 'zed@example.com'"):
        person_timeline(scenario.engine, "zed@example.com")


def test_log_filters_and_follow(scenario: Scenario) -> None:
    engine = scenario.engine
    unsubscribes = log_events(engine, LogFilter(cohort=COHORT, kinds=("unsubscribe",)))
    assert [(e.email, e.method) for e in unsubscribes] == [
        ("cat@example.com", "POST"),
        ("gus@example.com", "cli"),
    ]
    since = log_events(engine, LogFilter(since=utc(2026, 3, 4, 8, 30)))
    assert {e.email for e in since} == {"ann@example.com"}  # bob's prefetch was at 08:00:02
    everything = log_events(engine, LogFilter())
    last = everything[-1].id

    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            with engine.begin() as conn:
                enrollment, delivery = conn.execute(
                    sa.select(D.c.enrollment_id, D.c.id).order_by(D.c.id).limit(1)
                ).one()
                conn.execute(
                    EV.insert(),
                    {"enrollment_id": enrollment, "delivery_id": delivery, "kind": "open",
                     "at": utc(2026, 3, 5, 9), "method": "GET", "verdict": "human",
                     "reason": "mail client", "detail": ""},
                )  # fmt: skip

    followed = follow_events(
        engine, LogFilter(), after_id=last, interval=1.0, sleep=sleep,
        should_stop=lambda: len(polls) >= 2,
    )  # fmt: skip
    new = list(followed)
    assert [(e.kind, e.at) for e in new] == [("open", utc(2026, 3, 5, 9))]
    assert polls == [1.0, 1.0]


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_with_charts(scenario: Scenario) -> None:
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    html = render_html(report, scenario.settings.templates_path)
    parsed = _Html()
    parsed.feed(html)
    assert parsed.tags.count("svg") == 4  # progress, funnel, activity
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert parsed.links == []  # nothing fetched from the network
    text = " ".join(parsed.text)
    assert "Leaders Q1" in text and "fay@example.com" in text
    assert "@media print" in html


def test_html_escapes_names(scenario: Scenario) -> None:
    with scenario.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE person SET name = '<script>x</script>' WHERE email LIKE 'fay%'")
        )
    report = cohort_report(scenario.engine, COHORT, LESSONS, NOW)
    html = render_html(report, scenario.settings.templates_path)
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_unknown_cohort(engine: sa.Engine) -> None:
    create_cohort(engine, name="Alpha", course="sample", start=NOW.date(), timezone="UTC", now=NOW)
    with pytest.raises(NotFound, match="no cohort 'Nope'; cohorts: Alpha"):
        cohort_report(engine, "Nope", LESSONS, NOW)


def test_weekly_digest_goes_to_the_manager(
    scenario: Scenario, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, _ = smtp
    handler.messages.clear()
    transport = open_transport(scenario.settings.mail_url)
    try:
        results = send_digests(scenario.engine, transport, scenario.settings, NOW)
    finally:
        transport.close()
    assert [(r.cohort, r.recipient, r.outcome) for r in results] == [
        (COHORT, "boss@example.com", "accepted")
    ]
    (received,) = handler.messages
    assert received.rcpt_tos == ["boss@example.com"]
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert message["Subject"] == "Leaders Q1: weekly progress, 28% of lessons opened, 2 behind"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Reply-To"] == "Drip Lessons <lessons@example.com>"
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (body, html.replace("&lt;", "<").replace("&gt;", ">")):
        assert "Bob <bob@example.com>" in part and "Fay <fay@example.com>" in part
        assert "Ann <ann@example.com>" not in part
    assert "Lessons sent: 18" in body and "BEHIND (2)" in body
    assert "<o:OfficeDocumentSettings>" in html and 'role="presentation"' in html
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "leaders-q1-2026-03-04.html"
    assert attachment.get_content_type() == "text/html"
    assert attachment.get_content_charset() == "utf-8"
    assert "<svg" in attachment.get_content()


def test_digest_refuses_line_breaks_in_headers(scenario: Scenario) -> None:
    with scenario.engine.begin() as conn:
        conn.execute(sa.text("UPDATE cohort SET name = 'Evil\r\nBcc: x@example.com'"))
    with pytest.raises(HeaderError, match="line break"):
        build_digest(scenario.engine, scenario.settings, "Evil\r\nBcc: x@example.com", NOW)


def test_digest_jobs_run_monday_8_in_the_cohort_timezone(engine: sa.Engine, tmp_path: Path) -> None:
    create_cohort(engine, name="Paris", course="sample", start=NOW.date(), timezone="Europe/Paris",
                  manager="m@example.com", now=NOW)  # fmt: skip
    create_cohort(engine, name="Silent", course="sample", start=NOW.date(), timezone="UTC", now=NOW)
    with engine.connect() as conn:
        cohort_id = conn.execute(sa.text("SELECT id FROM cohort WHERE name = 'Paris'")).scalar()
    scheduler = BackgroundScheduler(timezone="UTC")
    app = App(make_settings(tmp_path), engine)
    add_digest_jobs(scheduler, app)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == [f"digest-{cohort_id}", "digest-retry", "digest-sync"]  # Silent: none
    trigger = jobs[f"digest-{cohort_id}"].trigger
    fire = trigger.get_next_fire_time(None, utc(2026, 3, 4, 12))
    assert fire.isoformat() == "2026-03-09T08:00:00+01:00"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cohort SET manager_email = NULL"))
    add_digest_jobs(scheduler, app)
    assert sorted(job.id for job in scheduler.get_jobs()) == ["digest-retry", "digest-sync"]


def test_json_round_trip(scenario: Scenario) -> None:
    from drip.reports.sections import report_json

    data = json.loads(report_json(cohort_report(scenario.engine, COHORT, LESSONS, NOW)))
    assert data["summary"]["lessons_sent"] == 18
    assert data["mode"] == "human"
    assert data["people"][0]["email"] == "ann@example.com"
    assert data["people"][0]["last_activity"] == "2026-03-04T09:02:00+00:00"
