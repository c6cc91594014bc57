"""The pages behind the pause and unsubscribe links, over HTTP: GET changes nothing, the POST does, and a pause or an unsubscribe can be undone."""

from __future__ import annotations

import re
from datetime import date

import pytest
from support import utc
from test_web import BROWSER, Site
from test_web import site as site  # the fixture, re-exported

from drip.tokens import Purpose


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
