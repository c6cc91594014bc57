"""Pure time math: when a person's next lesson is due. No database, no clock: `now` is passed in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from drip.errors import InputError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS_AHEAD = 800
# Dates drip accepts as input: a year outside this range is a typo (or an attack on the
# schedule: --now 2300 would move everyone's next lesson there), and the date math near
# year 9999 overflows.
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)


def check_date(day: date, what: str) -> date:
    """Refuse a date outside 2000-2099 with InputError naming it."""
    if not EARLIEST <= day <= LATEST:
        raise InputError(
            [f"{what} {day.isoformat()} is outside {EARLIEST.year}-{LATEST.year}; check the year"]
        )
    return day


@dataclass(frozen=True)
class Cadence:
    """When one person may receive lessons: their zone, send time, days, window end, skipped dates."""

    timezone: str
    send_time: time = time(7, 30)
    window_end: time = time(18, 0)
    days: frozenset[int] = frozenset(range(5))
    skip: frozenset[date] = frozenset()
    start: date | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def of(
        cls,
        timezone: str,
        send_time: str = "07:30",
        window_end: str = "18:00",
        days: str = "mon-fri",
        skip: str = "",
        start: date | None = None,
    ) -> Cadence:
        """Build a cadence from the text forms stored on a cohort."""
        return cls(
            timezone=timezone,
            send_time=parse_clock(send_time, "send time"),
            window_end=parse_clock(window_end, "window end"),
            days=parse_days(days),
            skip=parse_dates(skip),
            start=start,
        )


@lru_cache(maxsize=4096)
def unstarted(cadence: Cadence) -> Cadence:
    """The cadence without its start date: a welcome or a review may go out before it."""
    return replace(cadence, start=None)


@lru_cache(maxsize=4096)
def cadence_for(
    timezone: str, send_time: str, window_end: str, days: str, skip: str, start: date | None
) -> Cadence:
    """The cadence of one person in one cohort (cached: cohorts are few, people many)."""
    return Cadence.of(timezone, send_time, window_end, days, skip, start)


def parse_timezone(value: str) -> str:
    """Return a valid IANA zone name or raise InputError saying how to fix it."""
    value = value.strip()
    try:
        if not value or value.startswith(("/", ".")):
            raise ValueError
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _zone_hint(value)
        raise InputError(
            [f"unknown timezone '{value}'; use an IANA name like Europe/London{hint}"]
        ) from None
    return value


def _zone_hint(value: str) -> str:
    lowered = value.lower().replace(" ", "_")
    for zone in sorted(available_timezones()):
        if zone.lower().endswith("/" + lowered):
            return f" (did you mean {zone}?)"
    return ""


def parse_clock(value: str, what: str = "time") -> time:
    """Parse HH:MM (24-hour)."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise InputError([f"{what} '{value}' is not a 24-hour time like 07:30"]) from None


def parse_days(value: str) -> frozenset[int]:
    """Parse 'mon-fri', 'mon,wed,fri' or 'sat-sun' into weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in value.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if last else a
        except ValueError:
            raise InputError(
                [
                    f"days '{value}' is not like mon-fri or mon,wed,fri (names: {', '.join(DAY_NAMES)})"
                ]
            ) from None
        day = a
        while True:
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    if not days:
        raise InputError([f"days '{value}' names no day; use mon-fri"])
    return frozenset(days)


def format_days(days: frozenset[int]) -> str:
    """Weekday numbers as 'mon,tue,...'."""
    return ",".join(DAY_NAMES[d] for d in sorted(days))


FULL_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def days_text(days: frozenset[int]) -> str:
    """Send days in words: "weekday", "day", or "Monday, Wednesday and Friday"."""
    if days == frozenset(range(5)):
        return "weekday"
    if days == frozenset(range(7)):
        return "day"
    names = [FULL_DAY_NAMES[d] for d in sorted(days)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def parse_dates(value: str) -> frozenset[date]:
    """Parse a comma-separated list of ISO dates."""
    result = set()
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            day = date.fromisoformat(part)
        except ValueError:
            raise InputError([f"date '{part}' is not like 2026-12-24"]) from None
        result.add(check_date(day, "date"))
    return frozenset(result)


def local_moment(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local day; a time in a DST gap moves to the gap's end."""
    naive = datetime.combine(day, clock)
    before = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if before.astimezone(zone).replace(tzinfo=None) == naive:
        return before
    # The wall time does not exist (spring forward): the first valid moment is the transition.
    after = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(before, after), max(before, after)
    offset_before = (low - timedelta(seconds=1)).astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def local_date(moment: datetime, timezone: str) -> date:
    """The person's local calendar date at a UTC instant."""
    return moment.astimezone(ZoneInfo(timezone)).date()


@lru_cache(maxsize=8192)  # a pass asks the same few questions for many people
def next_slot(cadence: Cadence, now: datetime, last_sent_on: date | None = None) -> datetime:
    """The next moment a lesson may go out: today's send time if still ahead, now if inside a
    window whose send time has passed (a missed slot), else the next send day's send time.
    Never on the local day of the last lesson, a skipped date or a non-send day."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    zone = cadence.zone
    day = now.astimezone(zone).date()
    if cadence.start is not None and cadence.start > day:
        day = cadence.start
    if last_sent_on is not None and last_sent_on >= day:
        day = last_sent_on + timedelta(days=1)
    for _ in range(MAX_DAYS_AHEAD):
        if day.weekday() in cadence.days and day not in cadence.skip:
            opens = local_moment(day, cadence.send_time, zone)
            closes = local_moment(day, cadence.window_end, zone)
            if now <= opens:
                return opens
            if now < closes:
                return now.astimezone(UTC)
        day += timedelta(days=1)
    raise InputError(
        [f"no send day in the next {MAX_DAYS_AHEAD} days; check the send days and skipped dates"]
    )


def in_window(cadence: Cadence, moment: datetime) -> bool:
    """Whether a lesson may go out at this moment (a send day, inside the window). The window
    always holds its opening moment, even when a spring-forward gap swallows the rest of it
    (next_slot sends then, rather than skip the day)."""
    zone = cadence.zone
    day = moment.astimezone(zone).date()
    if day.weekday() not in cadence.days or day in cadence.skip:
        return False
    opens = local_moment(day, cadence.send_time, zone)
    closes = local_moment(day, cadence.window_end, zone)
    return moment == opens or opens <= moment < closes


def unreadable(zone: str, send: str, end: str, days: str, exc: Exception) -> str:
    """Why a stored schedule cannot be used, and how to fix it."""
    detail = str(exc).strip("'\"") or type(exc).__name__
    return (
        f"cannot schedule: timezone '{zone}', send time '{send}', window end '{end}', "
        f"days '{days}' ({detail}); fix the timezone with drip people set-timezone EMAIL ZONE "
        "(that releases it)"
    )[:1000]
