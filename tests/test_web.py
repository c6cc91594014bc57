"""The tracking web app over real HTTP: a uvicorn server on 127.0.0.1 and httpx."""

from __future__ import annotations

import email
import re
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import LESSONS, SECRET, cli_env, free_port, make_settings, serving, utc

from drip.app import App
from drip.config import Settings
from drip.db import make_engine
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.sending.run import send_due
from drip.tokens import Purpose, make_dotted_token, make_token
from drip.web import RateLimiter, create_app

START = utc(2026, 11, 30, 6, 0)  # a Monday
SEND = utc(2026, 11, 30, 7, 30)  # 07:30 UTC and 08:30 in Berlin: both people are due
LATER = SEND + timedelta(hours=2)
PEW = "https://www.pewresearch.org/"
OFCOM = "https://www.ofcom.org.uk/"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BROWSER = {"User-Agent": IPHONE}


@dataclass
class Site:
    """A running app over a cohort that got its first lesson at SEND."""

    engine: sa.Engine
    settings: Settings
    http: httpx.Client
    outbox: Path
    clock: list[datetime] = field(default_factory=lambda: [LATER])

    def delivery(self, email_address: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "select d.id from delivery d join enrollment e on e.id = d.enrollment_id "
                        "join person p on p.id = e.person_id where p.email = :e order by d.id desc"
                    ),
                    {"e": email_address},
                ).scalar_one()
            )

    def enrollment(self, delivery_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(E).join(D, D.c.enrollment_id == E.c.id).where(D.c.id == delivery_id)
            )
            return dict(row.mappings().one())

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(EV).where(EV.c.kind.not_in(["sent", "enrol"])).order_by(EV.c.id)
        if kind:
            query = query.where(EV.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def url(self, purpose: Purpose, *ids: int) -> str:
        token = make_token(SECRET, purpose, *ids)
        return f"/{purpose.value}/{token}" + (".gif" if purpose is Purpose.open else "")

    def send(self, now: datetime) -> list[str]:
        """Run a dispatcher pass; return the lesson slugs sent, as 'email:slug'."""
        result = send_due(App(self.settings, self.engine).dispatcher(), now)
        return sorted(f"{i.email}:{i.lesson}" for i in result.items if i.outcome == "sent")


def course_with_links(tmp_path: Path) -> Path:
    """The sample course with two links in the first lesson's body."""
    root = tmp_path / "lessons"
    shutil.copytree(LESSONS / "sample", root / "sample")
    first = root / "sample" / "01-what-a-drip-course-is.md"
    first.write_text(
        first.read_text(encoding="utf-8")
        + f"\nSee [Pew]({PEW}) and [Ofcom]({OFCOM}) for how people use media.\n",
        encoding="utf-8",
    )
    return root


def start_site(tmp_path: Path, db_url: str, engine: sa.Engine, **limits: Any) -> Site:
    settings = make_settings(tmp_path, db_url, lessons_dir=str(course_with_links(tmp_path)))
    cohort = create_cohort(
        engine, name="board", course="sample", start=date(2026, 11, 30), timezone="UTC", now=START
    )
    people = [
        Row(2, "ada@example.com", "Ada", None),
        Row(3, "bo@example.com", "Bo", "Europe/Berlin"),
    ]
    enroll_rows(engine, cohort, people, now=START)
    site = Site(engine, settings, httpx.Client(), tmp_path / "outbox")
    assert site.send(SEND) == [
        "ada@example.com:what-a-drip-course-is",
        "bo@example.com:what-a-drip-course-is",
    ]
    return site


@pytest.fixture
def site(tmp_path: Path, db_url: str, engine: sa.Engine) -> Iterator[Site]:
    made = start_site(tmp_path, db_url, engine)
    app = create_app(engine, made.settings, clock=lambda: made.clock[0], ip_limit=100_000)
    with serving(app) as base:
        made.http = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
        yield made
        made.http.close()


# -- each route's effect -------------------------------------------------------------------


def test_the_links_in_the_email_reach_the_app(site: Site) -> None:
    message = email.message_from_bytes(sorted(site.outbox.glob("*.eml"))[0].read_bytes())
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    paths = re.findall(r"https://learn\.example\.com(/[ocrapu]/[^\"'\s<>]+)", body)
    kinds = {p[1] for p in paths}
    assert kinds == set("ocrapu")
    for path in paths:
        response = site.http.get(path, headers=BROWSER)
        assert response.status_code in (200, 302), path
    assert site.http.get(next(p for p in paths if p[1] == "c")).headers["location"] == PEW


def test_open_returns_a_gif_and_records_an_open(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.open, delivery), headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    assert response.content.startswith(b"GIF89a") and len(response.content) < 100
    [event] = site.events()
    assert event["kind"] == "open" and event["method"] == "GET"
    assert event["delivery_id"] == delivery and event["verdict"] == "human"
    assert event["seconds_since_send"] == pytest.approx(7200)
    assert "set-cookie" not in response.headers


def test_opens_are_judged(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.http.get(site.url(Purpose.open, delivery), headers={"User-Agent": "Mozilla/5.0"})
    site.http.get(site.url(Purpose.open, delivery), headers={"User-Agent": GMAIL_PROXY})
    site.clock[0] = SEND + timedelta(seconds=2)
    site.http.get(site.url(Purpose.open, delivery), headers=BROWSER)
    verdicts = [(e["verdict"], e["reason"]) for e in site.events()]
    assert verdicts[0] == ("machine", "Apple Mail Privacy Protection prefetch")
    assert verdicts[1][0] == "human" and "Gmail" in verdicts[1][1]
    assert verdicts[2][0] == "machine" and "prefetch" in verdicts[2][1]


def test_head_never_counts(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    assert site.http.head(site.url(Purpose.open, delivery)).status_code == 200
    assert site.http.head(site.url(Purpose.click, delivery, 0)).status_code == 302
    assert site.http.head(site.url(Purpose.confirm, delivery)).status_code == 200
    assert site.http.head(site.url(Purpose.answer, delivery, 1)).status_code == 200
    assert site.events() == []


def test_click_redirects_to_the_recorded_link_and_implies_an_open(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.click, delivery, 0), headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == PEW
    click, implied = site.events()
    assert (click["kind"], click["verdict"], click["link"]) == ("click", "human", 0)
    assert (implied["kind"], implied["verdict"], implied["reason"]) == (
        "open",
        "human",
        "implied by click",
    )
    site.clock[0] = LATER + timedelta(minutes=5)
    assert (
        site.http.get(site.url(Purpose.click, delivery, 1), headers=BROWSER).headers["location"]
        == OFCOM
    )
    assert [e["kind"] for e in site.events()] == ["click", "open", "click"]


def test_an_early_click_is_a_scanner_and_implies_nothing(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.clock[0] = SEND + timedelta(seconds=4)
    response = site.http.get(site.url(Purpose.click, delivery, 0), headers=BROWSER)
    assert response.headers["location"] == PEW
    [event] = site.events()
    assert event["verdict"] == "machine" and "link scanner" in event["reason"]


def test_several_links_in_two_seconds_are_a_scanner(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.http.get(site.url(Purpose.click, delivery, 0), headers=BROWSER)
    site.clock[0] = LATER + timedelta(seconds=1)
    site.http.get(site.url(Purpose.click, delivery, 1), headers=BROWSER)
    events = site.events()
    assert [e["kind"] for e in events] == ["click", "open", "click"]
    assert {e["verdict"] for e in events} == {"machine"}


def test_no_open_redirect(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(
        site.url(Purpose.click, delivery, 0) + "?url=https://evil.example", headers=BROWSER
    )
    assert response.headers["location"] == PEW
    token = make_dotted_token(SECRET, Purpose.click, delivery, 0)
    payload, signature = token.split(".")
    altered = f"/c/{delivery}-1.{signature}"
    assert site.http.get(altered).status_code == 404
    assert site.http.get(f"/c/{delivery}-1").status_code == 404
    before = len(site.events())
    out_of_range = site.http.get(site.url(Purpose.click, delivery, 7))
    assert out_of_range.status_code == 404 and "location" not in out_of_range.headers
    assert len(site.events()) == before


def test_confirm_shows_the_takeaway_and_the_next_lesson_in_local_time(site: Site) -> None:
    delivery = site.delivery("bo@example.com")
    response = site.http.get(site.url(Purpose.confirm, delivery), headers=BROWSER)
    assert response.status_code == 200
    assert "so learning fits around your work" in response.text
    # Tuesday 07:30 in Berlin is 06:30 UTC.
    assert "Tuesday 1 December at 07:30 (Europe/Berlin)" in response.text
    assert "src=" not in response.text and "href=" not in response.text  # nothing external
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert [(e["kind"], e["verdict"]) for e in site.events()] == [
        ("confirm", "human"),
        ("open", "human"),
    ]
    assert site.events("open")[0]["reason"] == "implied by confirm"


def test_the_first_answer_stands(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    right = site.http.get(site.url(Purpose.answer, delivery, 1), headers=BROWSER)
    assert right.status_code == 200
    assert "Right" in right.text and "remembered" in right.text
    site.clock[0] = LATER + timedelta(minutes=1)
    again = site.http.get(site.url(Purpose.answer, delivery, 0), headers=BROWSER)
    assert "your first answer stands" in again.text
    assert re.search(
        r'class="chosen correct"><span class="letter">B.</span> One lesson each weekday \(your answer\)',
        again.text,
    )
    answers = site.events("answer")
    assert [(a["option"], a["correct"]) for a in answers] == [(1, True), (0, False)]
    assert len(site.events("open")) == 1


def test_a_wrong_answer_shows_the_right_one(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.answer, delivery, 2), headers=BROWSER)
    assert (
        "Not quite" in response.text
        and "The answer is: B. One lesson each weekday" in response.text
    )


def test_the_answer_page_speaks_the_emails_letters_and_shows_progress(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.answer, delivery, 0), headers=BROWSER)
    letters = re.findall(r'<span class="letter">([A-Z])\.</span>', response.text)
    assert letters == ["A", "B", "C"]
    assert re.search(
        r'class=" correct"><span class="letter">B.</span>[^<]*<span class="mark">', response.text
    )
    assert "(your answer)" in response.text and "not this one" in response.text
    assert "The answer is: B. One lesson each weekday" in response.text
    assert "Progress: 1 of 3 lessons received." in response.text
    assert "Your next lesson arrives on <strong>Tuesday 1 December at 07:30 (UTC)" in response.text


def test_a_scanner_answer_does_not_take_the_persons_answer(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.clock[0] = SEND + timedelta(seconds=3)
    site.http.get(site.url(Purpose.answer, delivery, 0), headers=BROWSER)
    site.clock[0] = LATER
    response = site.http.get(site.url(Purpose.answer, delivery, 1), headers=BROWSER)
    assert "Right" in response.text and "first answer stands" not in response.text


def test_an_answer_outside_the_options_is_404(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    assert site.http.get(site.url(Purpose.answer, delivery, 3)).status_code == 404
    assert site.events() == []


# -- unsubscribe ---------------------------------------------------------------------------


def test_get_unsubscribe_changes_nothing(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.unsubscribe, delivery), headers=BROWSER)
    assert response.status_code == 200 and "<form" in response.text
    assert site.enrollment(delivery)["status"] == "active"
    assert site.events() == []


def test_one_click_unsubscribe_urlencoded(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    url = site.url(Purpose.unsubscribe, delivery)
    for _ in range(2):
        response = site.http.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
        assert "set-cookie" not in response.headers
    assert site.enrollment(delivery)["status"] == "unsubscribed"
    [event] = site.events()
    assert (event["kind"], event["method"], event["verdict"]) == ("unsubscribe", "POST", "human")
    assert event["seconds_since_send"] == pytest.approx(7200)
    assert event["reason"] == "one-click unsubscribe (RFC 8058)"
    assert site.send(utc(2026, 12, 1, 7, 30)) == ["bo@example.com:reading-a-lesson-in-two-minutes"]


def test_one_click_unsubscribe_multipart(site: Site) -> None:
    delivery = site.delivery("bo@example.com")
    boundary = "drip-test-boundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    )
    response = site.http.post(
        site.url(Purpose.unsubscribe, delivery),
        content=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert site.enrollment(delivery)["status"] == "unsubscribed"
    assert site.events("unsubscribe")[0]["reason"] == "one-click unsubscribe (RFC 8058)"
    assert site.send(utc(2026, 12, 1, 7, 30)) == ["ada@example.com:reading-a-lesson-in-two-minutes"]


def test_the_unsubscribe_page_offers_a_pause_and_a_way_back(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    page = site.http.get(site.url(Purpose.unsubscribe, delivery))
    pause = re.search(r'<a class="button secondary" href="(/p/[^"]+)">Pause instead</a>', page.text)
    assert pause and pause.group(1) == site.url(Purpose.pause, delivery)
    assert 'value="pause1"' in site.http.get(pause.group(1)).text
    done = site.http.post(site.url(Purpose.unsubscribe, delivery), data={"confirm": "yes"})
    assert "You are unsubscribed" in done.text
    assert re.search(r'<button type="submit" name="action" value="resubscribe"', done.text)
    back = site.http.post(site.url(Purpose.unsubscribe, delivery), data={"action": "resubscribe"})
    assert "Welcome back" in back.text and "Your next lesson arrives on" in back.text
    assert site.enrollment(delivery)["status"] == "active"
    assert [e["kind"] for e in site.events()] == ["unsubscribe", "resubscribe"]


def test_the_unsubscribe_form_works(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    page = site.http.get(site.url(Purpose.unsubscribe, delivery))
    field_name, value = re.findall(r'name="([^"]+)" value="([^"]+)"', page.text)[0]
    site.http.post(site.url(Purpose.unsubscribe, delivery), data={field_name: value})
    assert site.enrollment(delivery)["status"] == "unsubscribed"
    assert site.events("unsubscribe")[0]["reason"] == "unsubscribed via the page"


# -- pause and resume ----------------------------------------------------------------------


def test_pause_page_offers_one_or_two_weeks(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.get(site.url(Purpose.pause, delivery))
    assert 'value="pause1"' in response.text and 'value="pause2"' in response.text
    assert site.events() == [] and site.enrollment(delivery)["status"] == "active"


def test_a_pause_skips_days_and_no_lesson_is_lost(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.post(site.url(Purpose.pause, delivery), data={"action": "pause1"})
    assert response.status_code == 200 and "Lessons paused" in response.text
    enrollment = site.enrollment(delivery)
    assert (enrollment["status"], enrollment["paused_until"]) == ("paused", date(2026, 12, 7))
    assert [(e["kind"], e["verdict"]) for e in site.events()] == [("pause", "human")]
    for day in range(1, 5):  # Tuesday to Friday
        sent = site.send(utc(2026, 12, day, 7, 30))
        assert not any(s.startswith("ada@") for s in sent)
    # Bo finished the three lessons meanwhile; Ada goes on with her second.
    assert site.send(utc(2026, 12, 7, 7, 30)) == ["ada@example.com:reading-a-lesson-in-two-minutes"]


def test_a_pause_names_the_next_lesson_on_a_send_day(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.clock[0] = utc(2026, 12, 5, 10, 0)  # a Saturday: two weeks end on Saturday 19 December
    response = site.http.post(site.url(Purpose.pause, delivery), data={"action": "pause2"})
    assert site.enrollment(delivery)["paused_until"] == date(2026, 12, 19)
    assert "Saturday" not in response.text
    assert "The next one arrives on <strong>Monday 21 December at 07:30 (UTC)" in response.text


def test_resume_continues_with_the_next_lesson(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    site.http.post(site.url(Purpose.pause, delivery), data={"action": "pause2"})
    assert site.enrollment(delivery)["paused_until"] == date(2026, 12, 14)
    assert site.send(utc(2026, 12, 1, 7, 30)) == ["bo@example.com:reading-a-lesson-in-two-minutes"]
    site.clock[0] = utc(2026, 12, 2, 9, 0)
    response = site.http.post(site.url(Purpose.pause, delivery), data={"action": "resume"})
    assert "Welcome back" in response.text
    assert site.enrollment(delivery)["status"] == "active"
    assert site.send(utc(2026, 12, 2, 9, 1)) == [
        "ada@example.com:reading-a-lesson-in-two-minutes",
        "bo@example.com:answering-the-check",
    ]
    assert [e["kind"] for e in site.events()] == ["pause", "resume"]


def test_a_bad_pause_action_changes_nothing(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    response = site.http.post(site.url(Purpose.pause, delivery), data={"action": "forever"})
    assert response.status_code == 400
    assert site.enrollment(delivery)["status"] == "active" and site.events() == []


# -- strangers -----------------------------------------------------------------------------


def test_health_unknown_routes_and_methods(site: Site) -> None:
    health = site.http.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    missing = site.http.get("/nothing/here")
    assert missing.status_code == 404 and "Link not found" in missing.text
    assert 'write to <a href="mailto:lessons@example.com">' in missing.text
    assert site.http.post(site.url(Purpose.open, 1)).status_code == 405


TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~"


def test_forged_and_mutated_tokens_get_404_and_write_nothing(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    valid = {
        purpose: make_token(SECRET, purpose, delivery, *([0] if two else []))
        for purpose, two in [
            (Purpose.open, False),
            (Purpose.click, True),
            (Purpose.confirm, False),
            (Purpose.answer, True),
            (Purpose.pause, False),
            (Purpose.unsubscribe, False),
        ]
    }
    states = [
        site.enrollment(site.delivery(a))["status"] for a in ("ada@example.com", "bo@example.com")
    ]
    before = len(site.events())
    tested = []

    def mutate(token: str, position: int, char: str, how: str) -> str:
        position %= len(token)
        if how == "replace":
            return (
                token[:position] + char + token[position + 1 :]
                if token[position] != char
                else token[:position]
            )
        if how == "insert":
            return token[:position] + char + token[position:]
        return token[:position]  # truncate

    @hsettings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        purpose=st.sampled_from(sorted(valid, key=lambda p: p.value)),
        target=st.sampled_from(list(Purpose)),
        random=st.one_of(st.none(), st.text(TOKEN_CHARS, min_size=1, max_size=80)),
        position=st.integers(0, 200),
        char=st.sampled_from(TOKEN_CHARS),
        how=st.sampled_from(["replace", "insert", "truncate"]),
        post=st.booleans(),
    )
    def attempt(
        purpose: Purpose, target: Purpose, random: str | None, position: int, char: str,
        how: str, post: bool,
    ) -> None:  # fmt: skip
        token = random if random is not None else mutate(valid[purpose], position, char, how)
        if token == valid.get(target) or not token:
            return
        path = f"/{target.value}/{token}" + (".gif" if target is Purpose.open else "")
        if post and target in (Purpose.pause, Purpose.unsubscribe):
            response = site.http.post(
                path, data={"action": "pause1", "List-Unsubscribe": "One-Click"}
            )
        else:
            response = site.http.get(path, headers=BROWSER)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text
        tested.append(path)

    attempt()
    assert len(tested) > 900
    assert len(site.events()) == before
    assert states == [
        site.enrollment(site.delivery(a))["status"] for a in ("ada@example.com", "bo@example.com")
    ]


def test_rate_limit_per_token_and_per_client(
    tmp_path: Path, db_url: str, engine: sa.Engine
) -> None:
    made = start_site(tmp_path, db_url, engine)
    app = create_app(engine, made.settings, clock=lambda: LATER, token_limit=3, ip_limit=5)
    delivery = made.delivery("ada@example.com")
    with serving(app) as base, httpx.Client(base_url=base) as http:
        url = made.url(Purpose.open, delivery)
        assert [http.get(url).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert http.get(made.url(Purpose.confirm, delivery)).status_code == 200
        assert http.get(made.url(Purpose.pause, delivery)).status_code == 429
    assert [(e["kind"], e["verdict"]) for e in made.events()] == [("open", "machine")] * 3 + [
        ("confirm", "machine")  # httpx's own user agent is a script, so no open is implied
    ]


def test_the_limiter_forgets_each_window_and_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=60, max_keys=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    for key in "bcdefg":
        assert limiter.allow(key)
    assert len(limiter._counts) == 3
    now[0] = 61
    assert limiter.allow("a") and len(limiter._counts) == 1


def test_no_traceback_reaches_a_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    with serving(create_app(broken, settings)) as base, httpx.Client(base_url=base) as http:
        response = http.get(f"/o/{make_token(SECRET, Purpose.open, 1)}.gif")
        assert response.status_code == 500
        assert "Something went wrong" in response.text
        assert "Traceback" not in response.text and "no such table" not in response.text
        assert http.get("/healthz").text == "ok"
    broken.dispose()


def test_the_factory_serves_from_the_environment(site: Site) -> None:
    port = free_port()
    env = cli_env(site.settings)
    command = [sys.executable, "-m", "uvicorn", "drip.web:asgi", "--factory", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        assert response.text == "ok"
        delivery = site.delivery("ada@example.com")
        url = f"http://127.0.0.1:{port}" + site.url(Purpose.click, delivery, 0)
        assert httpx.get(url).headers["location"] == PEW
    finally:
        server.terminate()
        server.wait(10)


# -- tokens of the wrong shape, key rotation --------------------------------------------------


def test_a_signed_token_of_another_shape_is_404_on_every_route(site: Site) -> None:
    delivery = site.delivery("ada@example.com")
    before = len(site.events())
    for purpose in Purpose:
        two = purpose in (Purpose.click, Purpose.answer)
        for ids in ((delivery,), (delivery, 0), (delivery, 0, 1)):
            if len(ids) == (2 if two else 1):
                continue
            path = site.url(purpose, *ids)
            response = site.http.get(path, headers=BROWSER)
            assert response.status_code == 404, path
            assert "Link not found" in response.text
    assert len(site.events()) == before


def test_a_rotated_key_still_reads_old_links_and_never_signs(site: Site, engine: sa.Engine) -> None:
    new_key = "a-brand-new-secret-key-0987654321"
    rotated = site.settings.replace(secret_key=new_key, secret_key_previous=SECRET)
    delivery = site.delivery("ada@example.com")
    old_link = site.url(Purpose.confirm, delivery)  # signed with the previous key
    new_link = f"/r/{make_token(new_key, Purpose.confirm, delivery)}"
    other = f"/r/{make_token('some-other-key-0123456789abcdef', Purpose.confirm, delivery)}"
    app = create_app(engine, rotated, clock=lambda: LATER, ip_limit=100_000)
    with serving(app) as base, httpx.Client(base_url=base) as http:
        assert http.get(old_link, headers=BROWSER).status_code == 200
        assert http.get(new_link, headers=BROWSER).status_code == 200
        assert http.get(other, headers=BROWSER).status_code == 404
    # The next lesson is signed with the new key only.
    site.settings = rotated
    for old in site.outbox.glob("*.eml"):
        old.unlink()
    assert site.send(SEND + timedelta(days=1)) != []
    body = b"".join(p.read_bytes() for p in site.outbox.glob("*.eml")).decode("ascii", "replace")
    tokens = re.findall(r"/r/([A-Za-z0-9_-]{16,})", body.replace("=\r\n", ""))
    assert tokens
    from drip.tokens import read_token

    for token in tokens:
        assert read_token(new_key, Purpose.confirm, token)
        with pytest.raises(Exception, match="bad signature"):
            read_token(SECRET, Purpose.confirm, token)


def test_a_short_previous_key_is_refused(tmp_path: Path) -> None:
    from drip.errors import ConfigError

    with pytest.raises(ConfigError, match="DRIP_SECRET_KEY_PREVIOUS has value"):
        make_settings(tmp_path, secret_key_previous="short")
