"""Human-or-machine verdicts against real user agents and timings."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drip.models import Verdict
from drip.tracking.verdict import ANDROID_MODEL, SCANNER_MARKS, Hit, counts, judge, scanner_mark

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
    # A hit before its send time (drip demo's simulated clock, a skewed server): never "machine".
    (IOS_MAIL, -360189.7, Verdict.unknown, "before its send time (clock skew)"),
    (OUTLOOK_DESKTOP, -0.5, Verdict.unknown, "clock skew"),
    (BARRACUDA, -60.0, Verdict.machine, "barracuda"),  # a scanner is a scanner at any time
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
    ("click", SAFARI_IPHONE, -3600.0, None, Verdict.unknown, "clock skew"),
    ("confirm", CHROME, -1.0, None, Verdict.unknown, "clock skew"),
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


# Real phones' user agents: none is a machine, whatever its model is called.
PHONES = [
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.5993.111 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; U; Android 4.4.2; en-us; CUBOT X9 Build/KOT49H) AppleWebKit/534.30 "
    "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
    "Mozilla/5.0 (Linux; Android 11; CUBOT NOTE 20 PRO Build/RP1A.200720.011; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.66 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; Redmi Note 11) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.99 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; moto g(30)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.6261.64 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; HRY-LX1T) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.6167.178 Mobile Safari/537.36",
    SAFARI_IPHONE,
    IOS_MAIL,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
]
MACHINES = [
    (GOOGLEBOT, "bot"),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot"),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "bot"),
    ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "bot"),
    ("TelegramBot (like TwitterBot)", "bot"),
    (
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "spider",
    ),  # fmt: skip
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.0.0 Safari/537.36",
        "headless",
    ),  # fmt: skip
    (CURL, "curl"),
    ("Wget/1.21.4", "wget"),
    (PY_REQUESTS, "python-requests"),
    ("Go-http-client/1.1", "go-http-client"),
    ("Java/17.0.2", "java/"),
    (BARRACUDA, "barracuda"),
]


@pytest.mark.parametrize("agent", PHONES)
def test_a_phone_is_never_a_machine_by_its_model_name(agent: str) -> None:
    from drip.tracking.verdict import scanner_mark

    assert scanner_mark(agent) is None
    opened = judge(Hit("open", "GET", agent, 3600.0))
    clicked = judge(Hit("click", "GET", agent, 3600.0))
    assert (opened.verdict, clicked.verdict) == (Verdict.human, Verdict.human)


@pytest.mark.parametrize(("agent", "mark"), MACHINES)
def test_crawlers_and_scripts_are_machines_by_a_whole_word(agent: str, mark: str) -> None:
    from drip.tracking.verdict import scanner_mark

    assert scanner_mark(agent) == mark
    assert judge(Hit("open", "GET", agent, 3600.0)).verdict is Verdict.machine


MARK_WORDS = [mark for mark, _ in SCANNER_MARKS]


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([*MARK_WORDS, "Android 9; ", "Android 13; en-us; ", "; ", ")", " "]),
            st.sampled_from([m.upper() for m in MARK_WORDS] + ["BOT", "Bot/", "bot-", "x"]),
            st.text(string.printable, max_size=6),
            st.text(max_size=3),  # any Unicode: the agents that skip the shortcut
        ),
        max_size=10,
    ).map("".join)
)
def test_the_mark_shortcut_finds_what_every_pattern_finds(agent: str) -> None:
    stripped = ANDROID_MODEL.sub(r"\1", agent)
    slow = next((mark for mark, pattern in SCANNER_MARKS if pattern.search(stripped)), None)
    assert scanner_mark(agent) == slow
