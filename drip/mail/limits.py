"""The overall SMTP rate limit shared by every worker, kept in the database (no other server)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from drip.db import insert_ignoring_conflicts
from drip.mail.transports import Paced, Transport
from drip.models import SEND_BUDGET as SB

KEEP_WINDOWS = 120  # old windows are deleted once they are this far behind


class SharedRateLimit:
    """At most `rate` sends a second across all processes using one database.

    Time is cut into windows of max(1 s, 1/rate); each send takes one unit of its window's budget
    with a conditional UPDATE, which the database makes atomic across workers. A worker that
    finds the window spent sleeps until the next one."""

    def __init__(
        self,
        engine: Engine,
        rate: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.window = max(1.0, 1.0 / rate)
        self.per_window = max(1, math.floor(rate * self.window))
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> None:
        """Wait until a send fits in the shared budget, and take it."""
        while True:
            now = self.clock()
            window = int(now // self.window)
            with self.engine.begin() as conn:
                conn.execute(insert_ignoring_conflicts(conn, SB).values(window_no=window, used=0))
                taken = conn.execute(
                    SB.update()
                    .where(SB.c.window_no == window, SB.c.used < self.per_window)
                    .values(used=SB.c.used + 1)
                ).rowcount
                if window % KEEP_WINDOWS == 0:
                    conn.execute(SB.delete().where(SB.c.window_no < window - KEEP_WINDOWS))
            if taken:
                return
            self.sleep(max(0.001, (window + 1) * self.window - now))


class SharedRateLimited(Paced):
    """A transport that takes a unit of the shared budget before each message goes out."""

    def __init__(self, inner: Transport, limit: SharedRateLimit) -> None:
        super().__init__(inner)
        self.limit = limit

    def wait(self) -> None:
        self.limit.acquire()

    def describe(self) -> str:
        per_second = self.limit.per_window / self.limit.window
        return f"{self.inner.describe()}, at most {per_second:g} msg/s across all workers"
