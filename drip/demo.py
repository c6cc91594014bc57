"""drip demo: a fresh database, a dozen executives and a simulated fortnight on a fast clock."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from drip.app import App
from drip.config import PACKAGE_DIR, Settings
from drip.db import migrate
from drip.errors import InputError
from drip.models import ENROLLMENT as E
from drip.people.cohorts import create_cohort
from drip.people.directory import list_people
from drip.people.enroll import enroll_csv
from drip.sending.run import send_due

COURSE = "social-media-for-executives"
MARKER = ".drip-demo"


def example_csv() -> Path:
    """The packaged examples/executives.csv (or the checkout's)."""
    for candidate in (
        Path.cwd() / "examples",
        PACKAGE_DIR / "_data" / "examples",
        PACKAGE_DIR.parent / "examples",
    ):
        if (candidate / "executives.csv").is_file():
            return candidate / "executives.csv"
    raise InputError(["examples/executives.csv not found; reinstall drip"])


@dataclass(frozen=True)
class DemoPerson:
    """One executive's state at the end of the demo."""

    email: str
    name: str
    timezone: str
    received: int
    total: int
    next_due: datetime | None


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and where its files are."""

    folder: Path
    outbox: Path
    database: Path
    start: datetime
    end: datetime
    passes: int
    messages: int
    people: list[DemoPerson]


def run_demo(
    folder: Path, base: Settings, *, days: int = 14, start: datetime, people_csv: Path | None = None
) -> DemoResult:
    """Enrol the example executives and fast-forward `days` days of sending into folder/outbox."""
    if folder.exists():
        if not (folder / MARKER).exists() and any(folder.iterdir()):
            raise InputError(
                [f"{folder} exists and is not a drip demo folder; pass --dir with a new folder"]
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by drip demo\n")
    database = folder / "drip.db"
    outbox = folder / "outbox"
    settings = base.replace(
        database_url=f"sqlite:///{database}",
        mail_url=f"outbox:{outbox}",
        secret_key=secrets.token_urlsafe(32),
    )
    # The demo's own settings, so `drip serve` run in the folder answers the links in its emails.
    (folder / "drip.toml").write_text(
        "# written by drip demo\n"
        f'database_url = "sqlite:///{database.resolve()}"\n'
        f'mail_url = "outbox:{outbox.resolve()}"\n'
        f'secret_key = "{settings.secret_key}"\n'
        f'base_url = "{settings.base_url}"\n',
        encoding="utf-8",
    )
    (folder / "drip.toml").chmod(0o600)
    app = App.open(settings, check=False)
    migrate(app.engine)
    create_cohort(
        app.engine,
        name="demo",
        course=COURSE,
        start=start.date(),
        timezone="UTC",
        now=start,
    )
    enroll_csv(app.engine, "demo", people_csv or example_csv(), now=start)
    dispatcher = app.dispatcher()
    end = start + timedelta(days=days)
    clock, passes, messages = start, 0, 0
    while clock <= end:
        result = send_due(dispatcher, clock)
        passes += 1
        messages += result.sent
        with app.engine.connect() as conn:
            upcoming = conn.execute(
                sa.select(sa.func.min(E.c.next_due_at)).where(E.c.status == "active")
            ).scalar()
        if upcoming is None:
            break
        clock = max(upcoming, clock + timedelta(minutes=1))
    dispatcher.transport.close()
    total = len(dispatcher.catalog.get(COURSE).lessons)
    people = [
        DemoPerson(p.email, p.name, p.timezone or c.timezone, e.lessons_sent, total, e.next_due_at)
        for p, e, c in list_people(app.engine, "demo")
    ]
    app.engine.dispose()
    return DemoResult(folder, outbox, database, start, min(clock, end), passes, messages, people)


def demo_start(now: datetime) -> datetime:
    """The simulated start: the top of the current hour, UTC."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
