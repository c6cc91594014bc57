"""Human-or-machine verdicts against real user agents and timings."""

from __future__ import annotations

import pytest

from drip.models import Verdict
from drip.tracking.verdict import Hit, counts, judge

APPLE_MPP = "Mozilla/5.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
OUTLOOK_DESKTOP = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
IOS_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
PROOFPOINT = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"
MIMECAST = "Mimecast-URL-Protect/1.0"
PY_REQUESTS = "python-requests/2.31.0"
CURL = "curl/8.5.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

OPENS = [
    # user agent, seconds since send, verdict, words in the reason
    (APPLE_MPP, 3600.0, Verdict.machine, "Apple Mail Privacy Protection"),
    (APPLE_MPP, 2.0, Verdict.machine, "Apple Mail Privacy Protection"),
    (GMAIL_PROXY, 1800.0, Verdict.human, "Gmail image proxy"),
    (GMAIL_PROXY, 1.5, Verdict.machine, "prefetch"),
    (OUTLOOK_DESKTOP, 900.0, Verdict.human, "mail client"),
    (OUTLOOK_DESKTOP, 0.8, Verdict.machine, "prefetch"),
    (IOS_MAIL, 7200.0, Verdict.human, "mail client"),
    (IOS_MAIL, None, Verdict.human, "mail client"),
    (BARRACUDA, 3600.0, Verdict.machine, "barracuda"),
    (PY_REQUESTS, 3600.0, Verdict.machine, "python-requests"),
    ("", 3600.0, Verdict.unknown, "no user agent"),
    ("SomeMailer/1.0", 3600.0, Verdict.unknown, "unrecognised"),
]

LINKS = [
    # kind, user agent, seconds since send, seconds since another link, verdict, reason words
    ("click", CHROME, 3.0, None, Verdict.machine, "link scanner"),  # Safe Links-style pre-click
    ("click", CHROME, 9.9, None, Verdict.machine, "link scanner"),
    ("click", CHROME, 10.0, None, Verdict.human, "browser"),
    ("click", SAFARI_IPHONE, 5400.0, None, Verdict.human, "browser"),
    ("click", SAFARI_IPHONE, 5400.0, 0.4, Verdict.machine, "several links"),
    ("click", SAFARI_IPHONE, 5400.0, 2.5, Verdict.human, "browser"),
    ("click", PROOFPOINT, 5400.0, None, Verdict.machine, "proofpoint"),
    ("click", MIMECAST, 5400.0, None, Verdict.machine, "mimecast"),
    ("click", CURL, 5400.0, None, Verdict.machine, "curl"),
    ("click", GOOGLEBOT, 5400.0, None, Verdict.machine, "bot"),
    ("click", "", 5400.0, None, Verdict.unknown, "no user agent"),
    ("confirm", IOS_MAIL, 600.0, None, Verdict.human, "confirm"),
    ("confirm", CHROME, 2.0, None, Verdict.machine, "link scanner"),
    ("answer", CHROME, 600.0, None, Verdict.human, "answer"),
    ("answer", CHROME, 600.0, 0.1, Verdict.machine, "several links"),
]


@pytest.mark.parametrize(("agent", "seconds", "verdict", "reason"), OPENS)
def test_open_verdicts(agent: str, seconds: float | None, verdict: Verdict, reason: str) -> None:
    judgement = judge(Hit("open", "GET", agent, seconds))
    assert judgement.verdict is verdict
    assert reason.lower() in judgement.reason.lower()


@pytest.mark.parametrize(("kind", "agent", "seconds", "other", "verdict", "reason"), LINKS)
def test_link_verdicts(
    kind: str, agent: str, seconds: float, other: float | None, verdict: Verdict, reason: str
) -> None:
    judgement = judge(Hit(kind, "GET", agent, seconds, other))
    assert judgement.verdict is verdict
    assert reason.lower() in judgement.reason.lower()


@pytest.mark.parametrize("kind", ["pause", "resume", "unsubscribe"])
def test_page_actions_are_human(kind: str) -> None:
    assert judge(Hit(kind, "POST", CURL, 1.0)).verdict is Verdict.human


def test_head_never_counts() -> None:
    assert not counts("HEAD")
    assert not counts("head")
    assert counts("GET")
    assert counts("POST")
