"""The tracking web app over real HTTP: a uvicorn server on 127.0.0.1 and httpx."""

from __future__ import annotations

import email
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from support import LESSONS, SECRET, make_settings, serving, utc

from drip.app import App
from drip.config import Settings
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows
from drip.sending.run import send_due
from drip.tokens import Purpose, make_dotted_token, make_token
from drip.web import create_app

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


def test_a_pixel_hit_that_gets_no_gif_gets_the_apps_page(site: Site) -> None:
    # The pixel answers before Starlette's routing; its errors still come back as its pages.
    token = site.url(Purpose.open, site.delivery("ada@example.com"))[3:-4]
    for path in (
        site.url(Purpose.open, 999_999),  # signed, but no such delivery
        "/o/AAAAAAAAAAAA.gif",  # forged
        "/o/.gif",
        f"/o/x/{token}.gif",
    ):
        response = site.http.get(path, headers=BROWSER)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Link not found" in response.text, path
    assert site.events() == []
    ok = site.http.get(f"/o/{token}.gif", headers=BROWSER)
    assert ok.status_code == 200 and ok.headers["content-length"] == str(len(ok.content))


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


# -- pause and resume ----------------------------------------------------------------------


# -- strangers -----------------------------------------------------------------------------


def test_health_unknown_routes_and_methods(site: Site) -> None:
    health = site.http.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    missing = site.http.get("/nothing/here")
    assert missing.status_code == 404 and "Link not found" in missing.text
    assert 'write to <a href="mailto:lessons@example.com">' in missing.text
    assert site.http.post(site.url(Purpose.open, 1)).status_code == 405


# -- tokens of the wrong shape, key rotation --------------------------------------------------
