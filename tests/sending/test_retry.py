"""The retry policy's delays: doubling, capped, and spread so one outage's deferrals come back apart."""

from datetime import timedelta

from drip.sending.retry import backoff


def test_backoff_doubles_from_five_minutes_to_an_hour_without_a_key() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4, 5, 9)] == [
        timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)
    ]


def test_deliveries_deferred_together_come_back_spread_over_half_the_delay() -> None:
    delays = [backoff(1, key).total_seconds() for key in range(1, 501)]
    assert min(delays) >= 225 and max(delays) <= 375  # 5 min +-25 %
    assert len(set(delays)) > 100  # not one thundering second
    assert backoff(1, 42) == backoff(1, 42)  # the same delivery, the same delay
    late = [backoff(9, key) for key in range(1, 200)]
    assert max(late) <= timedelta(minutes=75) and min(late) >= timedelta(minutes=45)
