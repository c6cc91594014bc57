"""The learning loop through the real dispatcher and the real web endpoint over HTTP, on a
fast-forward clock: welcome, spaced review on Kerfoot's schedule, catch-up and automatic pause,
completion with its certificate, and an unsubscribe undone."""

from __future__ import annotations

import email
import email.policy
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pypdf
import pytest
import sqlalchemy as sa
from support import LESSONS, cli_env, make_settings, run_drip, serving, utc

from drip.app import App
from drip.curriculum.load import load_course
from drip.curriculum.model import Course
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.reports.queries import cohort_report
from drip.sending.run import send_due
from drip.web import create_app

COURSE = "social-media-for-executives"
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"
FRIDAY = utc(2026, 11, 27, 10, 0)  # enrolment; the course starts on Monday 30 November
URL = re.compile(r"https?://\S+/(a|v|r|u|p|t)/([A-Za-z0-9_.-]+)")


@dataclass
class Inbox:
    """One person's e-mails by day, with the links they carry."""

    outbox: Path
    seen: set[str] = field(default_factory=set)
    days: dict[date, list[EmailMessage]] = field(default_factory=dict)

    def collect(self, day: date) -> list[EmailMessage]:
        new = []
        for path in sorted(self.outbox.glob("*.eml")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            new.append(message)  # type: ignore[arg-type]
        if new:
            self.days.setdefault(day, []).extend(new)
        return new


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def links(message: EmailMessage, route: str) -> list[str]:
    """The links of one kind (a: answer, v: review answer, ...) in the order the text lists them."""
    return [m.group(0) for m in URL.finditer(text_of(message)) if m.group(1) == route]


def review_title(message: EmailMessage) -> str | None:
    """The lesson a review question comes from, in a lesson e-mail or a review e-mail."""
    text = text_of(message)
    found = re.search(r"^REVIEW \((.+?); open one answer's link\)", text, re.M)
    if found:
        return found.group(1)
    subject = str(message["Subject"]).strip()
    return subject.removeprefix("Review: ") if subject.startswith("Review: ") else None


def wrong(index: int, options: int) -> int:
    return (index + 1) % options


@pytest.fixture
def world(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> tuple[App, httpx.Client, list[datetime]]:
    settings = make_settings(tmp_path, db_url)
    clock = [FRIDAY]
    app = create_app(engine, settings, clock=lambda: clock[0], token_limit=10_000)
    with serving(app) as base:
        settings = settings.replace(base_url=base)
        with httpx.Client(headers={"User-Agent": BROWSER}) as http:
            yield App(settings, engine), http, clock


def test_a_wrong_answer_comes_back_on_kerfoots_schedule_and_retires(
    world: tuple[App, httpx.Client, list[datetime]],
) -> None:
    app, http, clock = world
    course: Course = load_course(LESSONS, COURSE)
    lesson3 = course.lessons[2]
    assert lesson3.check is not None and lesson3.check.review is not None
    cohort = create_cohort(app.engine, name="board", course=COURSE, start=date(2026, 11, 30),
                           timezone="UTC", sponsor="Our CEO asked for this course.", now=FRIDAY)  # fmt: skip
    enroll_rows(app.engine, cohort, [Row(2, "ada@example.com", "Lovelace, Ada", None)], now=FRIDAY)
    inbox = Inbox(Path(app.settings.mail_url.removeprefix("outbox:")))
    dispatcher = app.dispatcher()
    reviews_of_3: list[tuple[date, bool]] = []  # the day lesson 3 came back, and the answer given
    wrong_on: date | None = None
    for offset in range(0, 100):
        now = FRIDAY + timedelta(days=offset, minutes=30)  # each day at 10:30
        send_due(dispatcher, now)
        messages = inbox.collect(now.date())
        assert len(messages) <= 1, f"{len(messages)} e-mails on {now.date()}"
        if not messages:
            continue
        message = messages[0]
        clock[0] = now + timedelta(hours=2)  # read two hours later, in a phone browser
        subject = str(message["Subject"]).strip()
        if offset == 0:
            assert subject == f"Welcome to {course.title}"
            text = text_of(message)
            assert "Hi Ada," in text or "Welcome, Ada" in text  # first name, not "Lovelace, Ada"
            assert "Our CEO asked for this course." in text
            assert "Monday 30 November at 07:30 (UTC)" in text
            continue
        lesson = next((x for x in course.lessons if x.title == subject), None)
        if lesson is not None and lesson.check is not None:
            answers = links(message, "a")
            assert len(answers) == len(lesson.check.options)
            choice = lesson.check.answer
            if lesson is lesson3:
                choice, wrong_on = wrong(choice, len(answers)), now.date()
            assert http.get(answers[choice]).status_code == 200
        title = review_title(message)
        reviews = links(message, "v")
        if title is None:
            assert reviews == []
            continue
        reviewed = next(x for x in course.lessons if x.title == title)
        assert reviewed.check is not None
        question = reviewed.check.review or reviewed.check
        assert len(reviews) == len(question.options)  # one review per e-mail, never more
        clock[0] += timedelta(minutes=3)
        assert http.get(reviews[question.answer]).status_code == 200
        if reviewed is lesson3:
            reviews_of_3.append((now.date(), True))
    assert wrong_on is not None
    # Wrong on day W: back about 12 days later (the next send day); right then: back about 24
    # days later (a few days' queue of other reviews allowed); right again: retired for good.
    assert len(reviews_of_3) == 2, reviews_of_3
    first, second = reviews_of_3[0][0], reviews_of_3[1][0]
    assert 12 <= (first - wrong_on).days <= 14
    assert 24 <= (second - first).days <= 31
    # Every e-mail went out alone on its day (checked above) and the course ended well.
    with app.engine.connect() as conn:
        kinds = [k for (k,) in conn.execute(sa.text("select kind from event order by id"))]
    for kind in ("welcome", "sent", "review", "review_answer", "certificate", "complete"):
        assert kind in kinds, kind
    # The report learns it: first try against review, by lesson and by days since the lesson.
    report = cohort_report(app.engine, "board", LESSONS, now)
    first = report.retention[0]
    assert (first.label, first.answered, first.right) == ("first try", 20, 19)
    three = next(r for r in report.reviews if r.slug == lesson3.slug)
    assert (three.first_answered, three.first_right) == (1, 0)
    assert (three.review_answered, three.review_right) == (2, 2)
    assert sum(r.answered for r in report.retention[1:]) == sum(
        r.review_answered for r in report.reviews
    )


def test_unopened_lessons_bring_a_catch_up_line_then_an_automatic_pause(
    world: tuple[App, httpx.Client, list[datetime]], tmp_path: Path
) -> None:
    app, http, clock = world
    cohort = create_cohort(app.engine, name="board", course=COURSE, start=date(2026, 11, 30),
                           timezone="UTC", welcome=False, now=FRIDAY)  # fmt: skip
    enroll_rows(app.engine, cohort, [Row(2, "bo@example.com", "Bo", None)], now=FRIDAY)
    inbox = Inbox(Path(app.settings.mail_url.removeprefix("outbox:")))
    dispatcher = app.dispatcher()
    subjects: list[str] = []
    catch_up: list[int] = []
    note: EmailMessage | None = None
    for offset in range(3, 17):
        now = FRIDAY.replace(hour=8) + timedelta(days=offset)
        send_due(dispatcher, now)
        for message in inbox.collect(now.date()):
            subjects.append(str(message["Subject"]).strip())
            if "You have not opened the last" in text_of(message):
                catch_up.append(len(subjects))
            if subjects[-1].startswith("Your lessons are paused"):
                note = message
    # Lessons 4 and 5 say so; after 5 unopened the sixth e-mail is the note, then nothing.
    assert catch_up == [4, 5]
    assert len(subjects) == 6 and note is not None
    env = cli_env(app.settings)
    log = run_drip(["log", "--kind", "autopause", "--kind", "note"], env).stdout
    assert "autopause" in log and "note" in log and "bo@example.com" in log
    # One click on the note's link (the pause page) resumes.
    pause = links(note, "p")[0]
    clock[0] = utc(2026, 12, 8, 12)
    page = http.post(pause, data={"action": "resume"})
    assert page.status_code == 200 and "Welcome back" in page.text
    send_due(dispatcher, utc(2026, 12, 9, 8))
    resumed = inbox.collect(date(2026, 12, 9))
    assert [str(m["Subject"]).strip() for m in resumed] == [
        load_course(LESSONS, COURSE).lessons[5].title
    ]


def test_resubscribe_undoes_an_unsubscribe_from_the_page_that_confirmed_it(
    world: tuple[App, httpx.Client, list[datetime]],
) -> None:
    app, http, clock = world
    cohort = create_cohort(app.engine, name="board", course=COURSE, start=date(2026, 11, 30),
                           timezone="UTC", welcome=False, now=FRIDAY)  # fmt: skip
    enroll_rows(app.engine, cohort, [Row(2, "cy@example.com", "Cy", None)], now=FRIDAY)
    inbox = Inbox(Path(app.settings.mail_url.removeprefix("outbox:")))
    send_due(app.dispatcher(), utc(2026, 11, 30, 8))
    (lesson,) = inbox.collect(date(2026, 11, 30))
    unsubscribe = links(lesson, "u")[0]
    clock[0] = utc(2026, 11, 30, 9)
    assert "You are unsubscribed" in http.post(unsubscribe).text
    back = http.post(unsubscribe, data={"action": "resubscribe"})
    assert back.status_code == 200 and "subscribed again" in back.text
    send_due(app.dispatcher(), utc(2026, 12, 1, 8))
    assert len(inbox.collect(date(2026, 12, 1))) == 1
    log = run_drip(["log", "--person", "cy@example.com"], cli_env(app.settings)).stdout
    assert "unsubscribe" in log and "resubscribe" in log


def test_the_certificate_can_be_made_again_by_the_manager(
    world: tuple[App, httpx.Client, list[datetime]], tmp_path: Path
) -> None:
    app, _http, _clock = world
    cohort = create_cohort(app.engine, name="quick", course="sample", start=date(2026, 11, 30),
                           timezone="UTC", welcome=False, now=FRIDAY)  # fmt: skip
    enroll_rows(app.engine, cohort, [Row(2, "di@example.com", "Di Prince", None)], now=FRIDAY)
    dispatcher = app.dispatcher()
    for day in (30,):
        send_due(dispatcher, utc(2026, 11, day, 8))
    for day in (1, 2, 3):
        send_due(dispatcher, utc(2026, 12, day, 8))
    out = tmp_path / "di.pdf"
    env = cli_env(app.settings)
    result = run_drip(["people", "certificate", "di@example.com", "-o", str(out)], env)
    assert result.returncode == 0, result.stderr
    text = pypdf.PdfReader(io.BytesIO(out.read_bytes())).pages[0].extract_text()
    assert "Di Prince" in text and "Sample: three quick lessons" in text
    missing = run_drip(["people", "certificate", "zed@example.com", "-o", str(out)], env)
    assert missing.returncode == 1 and "no person with e-mail 'zed@example.com'" in missing.stderr
