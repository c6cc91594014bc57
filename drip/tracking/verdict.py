"""Judge one tracking hit human, machine or unknown from its user agent and timing; pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from drip.models import Verdict

PREFETCH_SECONDS = 5.0  # an open this soon after sending is a server fetching images on receipt
SCANNER_CLICK_SECONDS = 10.0  # a click this soon is a link scanner (Safe Links and the like)
BURST_SECONDS = 2.0  # several links of one email hit this close together is a scanner
APPLE_MPP_AGENT = "Mozilla/5.0"  # Apple Mail Privacy Protection fetches with exactly this
# Marks of scanners, scripts and crawlers, matched as words (a phone is not a bot because its
# model name holds "bot"): each is (the mark shown in the reason, its pattern).
SCANNER_MARKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (mark, re.compile(pattern, re.IGNORECASE))
    for mark, pattern in (
        ("barracuda", r"\bbarracuda\b"),
        ("proofpoint", r"\bproofpoint\b"),
        ("mimecast", r"\bmimecast\b"),
        ("python-requests", r"\bpython-requests\b"),
        ("python-urllib", r"\bpython-urllib\b"),
        ("python-httpx", r"\bpython-httpx\b"),
        ("libwww-perl", r"\blibwww-perl\b"),
        ("java/", r"\bjava/"),
        ("aiohttp", r"\baiohttp\b"),
        ("go-http-client", r"\bgo-http-client\b"),
        ("curl", r"\bcurl\b"),
        ("wget", r"\bwget\b"),
        # Googlebot/2.1, bingbot/2.0, AhrefsBot/7.0, Slackbot-LinkExpanding, TelegramBot (...)
        ("bot", r"\b\w*bot(?=[/\-\s;)+,]|$)"),
        ("spider", r"\b\w*spider\b"),
        ("crawler", r"\b\w*crawler\b"),
        ("preview", r"\b\w*preview\b"),
        ("scanner", r"\b\w*scanner\b"),
        ("headless", r"\bheadless\w*"),
    )
)
# The device model of an Android user agent ("Android 9; CUBOT P30 Build/PPR1"): a name its
# maker chose, never a sign of a machine, so it is left out before the marks are matched.
ANDROID_MODEL = re.compile(r"(Android[ \d._]*;(?:\s*[a-z]{2}[-_][a-z]{2};)?)[^;)]*", re.IGNORECASE)
LINK_KINDS = frozenset({"click", "confirm", "answer"})


@dataclass(frozen=True)
class Hit:
    """What a request tells about itself: kind, HTTP method, user agent and timing."""

    kind: str
    method: str
    user_agent: str
    seconds_since_send: float | None
    seconds_since_other_link: float | None = None


@dataclass(frozen=True)
class Judgement:
    """A verdict and the reason for it, as stored on the event."""

    verdict: Verdict
    reason: str


def counts(method: str) -> bool:
    """Whether a request with this method is an event at all (HEAD never is)."""
    return method.upper() != "HEAD"


@lru_cache(maxsize=1024)  # a pure function of the agent, and most hits repeat a few agents
def scanner_mark(user_agent: str) -> str | None:
    """The known-scanner mark in a user agent, matched as a word outside any device model name,
    or None."""
    marks = SCANNER_MARKS
    if user_agent.isascii():
        # Each pattern's match holds its mark's letters, so in an ASCII agent (where lower() and
        # IGNORECASE agree) only the marks found by a substring test can match; most agents
        # hold none and skip the regular expressions. Leaving out a model name cannot make a
        # mark: it joins ";" to ";" or ")".
        lowered = user_agent.lower()
        marks = tuple(item for item in SCANNER_MARKS if item[0] in lowered)
        if not marks:
            return None
    agent = ANDROID_MODEL.sub(r"\1", user_agent)
    return next((mark for mark, pattern in marks if pattern.search(agent)), None)


def judge(hit: Hit) -> Judgement:
    """Decide whether a person or a machine made this hit, with the reason."""
    if hit.kind == "open":
        return _judge_open(hit)
    if hit.kind in LINK_KINDS:
        return _judge_link(hit)
    return Judgement(Verdict.human, f"{hit.kind} via a page")


def _judge_open(hit: Hit) -> Judgement:
    agent = hit.user_agent.strip()
    machine = _machine_agent(agent)
    if machine is not None:
        return machine
    seconds = hit.seconds_since_send
    if seconds is not None and seconds < 0:
        return _clock_skew(hit.kind, seconds)
    if seconds is not None and seconds < PREFETCH_SECONDS:
        return Judgement(Verdict.machine, f"opened {seconds:.1f} s after sending (prefetch)")
    return _open_by_agent(agent)


# Both pure functions of the agent, and most hits repeat a few agents.
@lru_cache(maxsize=1024)
def _machine_agent(agent: str) -> Judgement | None:
    mark = scanner_mark(agent)
    if mark:
        return Judgement(Verdict.machine, f"scanner user agent ({mark})")
    if agent == APPLE_MPP_AGENT:
        return Judgement(Verdict.machine, "Apple Mail Privacy Protection prefetch")
    return None


@lru_cache(maxsize=1024)
def _open_by_agent(agent: str) -> Judgement:
    if "GoogleImageProxy" in agent:
        return Judgement(Verdict.human, "Gmail image proxy (fetches when the reader opens)")
    if not agent:
        return Judgement(Verdict.unknown, "no user agent")
    if _looks_like_client(agent):
        return Judgement(Verdict.human, "mail client")
    return Judgement(Verdict.unknown, "unrecognised user agent")


def _judge_link(hit: Hit) -> Judgement:
    agent = hit.user_agent.strip()
    mark = scanner_mark(agent)
    if mark:
        return Judgement(Verdict.machine, f"scanner user agent ({mark})")
    seconds = hit.seconds_since_send
    if seconds is not None and seconds < 0:
        return _clock_skew(hit.kind, seconds)
    if seconds is not None and seconds < SCANNER_CLICK_SECONDS:
        reason = f"{hit.kind} {seconds:.1f} s after sending (link scanner)"
        return Judgement(Verdict.machine, reason)
    other = hit.seconds_since_other_link
    if other is not None and other < BURST_SECONDS:
        return Judgement(Verdict.machine, "several links of one email within 2 s (link scanner)")
    if not agent:
        return Judgement(Verdict.unknown, "no user agent")
    if agent == APPLE_MPP_AGENT:
        return Judgement(Verdict.unknown, "bare user agent")
    return Judgement(Verdict.human, f"{hit.kind} in a browser")


def _clock_skew(kind: str, seconds: float) -> Judgement:
    # A hit before its own send time says the clocks disagree (a simulated or skewed sending
    # clock), not that a machine was fast: timing cannot judge it.
    return Judgement(Verdict.unknown, f"{kind} {-seconds:.0f} s before its send time (clock skew)")


def _looks_like_client(agent: str) -> bool:
    return agent.startswith("Mozilla/5.0 (") or "Outlook" in agent or "Thunderbird" in agent
