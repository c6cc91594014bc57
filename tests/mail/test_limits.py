"""The overall SMTP rate limit: workers sharing one database never exceed it together."""

from pathlib import Path

import sqlalchemy as sa
from support import SmtpHandler, make_settings

from drip.app import App
from drip.mail.limits import SharedRateLimit, SharedRateLimited
from drip.models import SEND_BUDGET


class FakeClock:
    """A clock that only moves when someone sleeps, shared by the 'workers' of a test."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_two_workers_share_one_budget(engine: sa.Engine) -> None:
    clock = FakeClock(1_000_000.25)
    a = SharedRateLimit(engine, 3, clock=clock.time, sleep=clock.sleep)
    b = SharedRateLimit(engine, 3, clock=clock.time, sleep=clock.sleep)
    for worker in (a, b, a, b, a, b, a):  # seven sends, three a second at most
        worker.acquire()
    with engine.connect() as conn:
        used = dict(conn.execute(sa.select(SEND_BUDGET.c.window_no, SEND_BUDGET.c.used)).all())
    assert used == {1_000_000: 3, 1_000_001: 3, 1_000_002: 1}
    assert len(clock.slept) == 2 and abs(clock.slept[0] - 0.75) < 1e-6


def test_slow_rates_use_longer_windows(engine: sa.Engine) -> None:
    clock = FakeClock(100.0)
    limit = SharedRateLimit(engine, 0.5, clock=clock.time, sleep=clock.sleep)
    limit.acquire()
    limit.acquire()
    assert clock.now == 102.0  # one send per two seconds


def test_the_transport_takes_the_budget_before_sending(
    tmp_path: Path, db_url: str, smtp: tuple[SmtpHandler, int]
) -> None:
    handler, port = smtp
    app = App.open(
        make_settings(
            tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{port}", smtp_max_per_second_total="50"
        )
    )
    transport = app.transport()
    assert isinstance(transport, SharedRateLimited)
    assert "at most 50 msg/s across all workers" in transport.describe()
    for i in range(3):
        transport.send("a@example.com", f"b{i}@example.com", b"Subject: x\r\n\r\nx\r\n")
    transport.close()
    assert len(handler.messages) == 3
    with app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(SEND_BUDGET.c.used))).scalar_one() == 3
