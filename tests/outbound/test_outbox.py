"""The outbox stays out of the way when nothing leaves drip."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from reports.test_queries import Clock, build_cohort
from reports.test_queries import web_server as web_server  # the fixture, re-exported
from support import SmtpHandler

from drip.models import EVENT as EV
from drip.models import OUTBOX as O


def test_nothing_is_queued_when_no_target_is_configured(
    engine: sa.Engine,
    db_url: str,
    tmp_path: Path,
    smtp: tuple[SmtpHandler, int],
    web_server: tuple[str, Clock],
) -> None:
    build_cohort(engine, tmp_path, db_url, smtp, web_server)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EV)).scalar() > 40
        assert conn.execute(sa.select(sa.func.count()).select_from(O)).scalar() == 0
