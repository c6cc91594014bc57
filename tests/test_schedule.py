from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from drip.errors import InputError
from drip.schedule import Cadence, in_window, local_date, local_moment, next_slot, parse_days

ZONES = [
    "Asia/Kolkata",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Europe/London",
    "America/New_York",
    "UTC",
    "Asia/Tokyo",
    "America/Sao_Paulo",
]


@st.composite
def cadences(draw: st.DrawFn) -> Cadence:
    zone = draw(st.sampled_from(ZONES))
    opens = time(draw(st.integers(0, 20)), draw(st.sampled_from([0, 15, 30, 45])))
    hours_open = draw(st.integers(1, 23 - opens.hour))
    closes = time(
        min(23, opens.hour + hours_open), 59 if opens.hour + hours_open >= 23 else opens.minute
    )
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1, max_size=7)))
    skip = frozenset(draw(st.sets(st.dates(date(2026, 1, 1), date(2028, 12, 31)), max_size=10)))
    return Cadence(zone, opens, closes, days, skip)


@given(
    cadence=cadences(),
    start=st.datetimes(datetime(2026, 1, 1), datetime(2028, 6, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    delays=st.lists(st.integers(0, 4 * 24 * 60), min_size=12, max_size=12),
)
@hsettings(max_examples=300, deadline=None)
def test_lessons_go_out_once_a_local_day_inside_the_window(
    cadence: Cadence, start: datetime, delays: list[int]
) -> None:
    """A dispatcher that wakes late (delays, downtime) still sends every lesson, in order,
    never two on one local day, never outside the window, a non-send day or a skipped date."""
    sends: list[datetime] = []
    last: date | None = None
    due = next_slot(cadence, start)
    clock = start
    for delay in delays:
        clock = max(clock, due) + timedelta(minutes=delay)
        for _ in range(50):
            slot = next_slot(cadence, clock, last)
            if slot <= clock:
                break
            clock = slot  # the dispatcher sleeps until the slot
        sends.append(clock)
        last = local_date(clock, cadence.timezone)
        due = next_slot(cadence, clock, last)
        assert due > clock
    assert len(sends) == len(delays)  # every lesson eventually sent, in order
    days = [local_date(s, cadence.timezone) for s in sends]
    assert days == sorted(days) and len(set(days)) == len(days)
    for moment, day in zip(sends, days, strict=True):
        assert in_window(cadence, moment), (moment, cadence)
        assert day.weekday() in cadence.days and day not in cadence.skip


def test_spring_forward_gap_sends_at_the_gap_end() -> None:
    cadence = Cadence("America/New_York", time(2, 30), time(18, 0), frozenset(range(7)))
    # 2027-03-14: clocks jump from 02:00 to 03:00 in New York.
    slot = next_slot(cadence, datetime(2027, 3, 14, 5, 0, tzinfo=UTC))
    assert slot == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert slot.astimezone(cadence.zone).strftime("%H:%M") == "03:00"


def test_lord_howe_half_hour_gap() -> None:
    # 2026-10-04: Lord Howe moves from 02:00 to 02:30.
    moment = local_moment(date(2026, 10, 4), time(2, 15), Cadence("Australia/Lord_Howe").zone)
    assert moment.astimezone(Cadence("Australia/Lord_Howe").zone).strftime("%H:%M") == "02:30"


def test_fall_back_fold_uses_the_first_occurrence() -> None:
    zone = Cadence("Europe/London").zone
    moment = local_moment(date(2026, 10, 25), time(1, 30), zone)
    assert moment == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_missed_slot_goes_out_now_inside_the_window_then_cadence_resumes() -> None:
    cadence = Cadence("Asia/Kolkata")  # 07:30-18:00, Mon-Fri
    wednesday_noon = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # 12:00 IST
    assert next_slot(cadence, wednesday_noon) == wednesday_noon
    after = next_slot(cadence, wednesday_noon, local_date(wednesday_noon, "Asia/Kolkata"))
    assert after == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # Thursday 07:30 IST


def test_after_window_waits_for_next_send_day() -> None:
    cadence = Cadence("UTC")
    friday_night = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert next_slot(cadence, friday_night) == datetime(2026, 12, 7, 7, 30, tzinfo=UTC)


def test_skipped_dates_and_start_date() -> None:
    cadence = Cadence("UTC", skip=frozenset({date(2026, 12, 24)}), start=date(2026, 12, 24))
    assert next_slot(cadence, datetime(2026, 12, 1, tzinfo=UTC)) == datetime(
        2026, 12, 25, 7, 30, tzinfo=UTC
    )


def test_day_lists() -> None:
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("Mon, Wed,fri") == frozenset({0, 2, 4})
    with pytest.raises(InputError, match="not like mon-fri"):
        parse_days("weekdays")


def test_no_send_day_is_a_clear_error() -> None:
    cadence = Cadence(
        "UTC",
        days=frozenset({0}),
        skip=frozenset(date(2026, 1, 1) + timedelta(days=i) for i in range(900)),
    )
    with pytest.raises(InputError, match="no send day"):
        next_slot(cadence, datetime(2026, 1, 1, tzinfo=UTC))


def test_a_window_swallowed_by_the_spring_forward_gap_still_sends_once() -> None:
    # 2026-03-08: St. John's jumps from 02:00 to 03:00; the window 02:00-03:00 is all gap.
    cadence = Cadence("America/St_Johns", time(2, 0), time(3, 0), frozenset({6}))
    slot = next_slot(cadence, datetime(2026, 3, 8, 0, 0, tzinfo=UTC))
    assert slot == datetime(2026, 3, 8, 5, 30, tzinfo=UTC)  # 03:00 NDT, the gap's end
    assert in_window(cadence, slot)
    assert not in_window(cadence, slot + timedelta(minutes=1))
