"""drip demo: a fresh database, a dozen executives, and the past five weeks replayed on a fast
clock with simulated readers."""

from __future__ import annotations

import email
import email.policy
import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from drip.app import App
from drip.config import PACKAGE_DIR, Settings
from drip.db import migrate
from drip.errors import InputError
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.people.cohorts import create_cohort
from drip.people.csv import read_people_csv
from drip.people.directory import list_people
from drip.people.enroll import enroll_csv
from drip.sending.run import send_due
from drip.tracking.hits import Request, record_answer, record_confirm, record_review_answer

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


# How the simulated readers behave, by their place in the example file: most read and answer,
# some skim, two let it drift (catch-up line, then the automatic pause).
ENGAGED, SKIMMING, DRIFTING = "engaged", "skimming", "drifting"
PERSONAS = (ENGAGED, ENGAGED, ENGAGED, ENGAGED, SKIMMING, SKIMMING, DRIFTING, DRIFTING)
READER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def persona(index: int) -> str:
    return PERSONAS[index] if index < len(PERSONAS) else ENGAGED


def run_demo(
    folder: Path, base: Settings, *, days: int = 35, start: datetime, people_csv: Path | None = None
) -> DemoResult:
    """Enrol the example executives, then fast-forward `days` days of sending into
    folder/outbox, with simulated readers opening, answering and drifting."""
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
    sponsor = "Your chief executive asked us to run this course for the leadership team."
    create_cohort(app.engine, name="demo", course=COURSE, start=second_weekday_after(start.date()),
                  timezone="UTC", sponsor=sponsor, now=start)  # fmt: skip
    enroll_csv(app.engine, "demo", people_csv or example_csv(), now=start)
    order = {p.email: i for i, p in enumerate(read_people_csv(people_csv or example_csv()))}
    dispatcher = app.dispatcher()
    end = start + timedelta(days=days)
    clock, passes, messages, seen = start, 0, 0, 0
    while clock <= end:
        result = send_due(dispatcher, clock)
        passes += 1
        messages += result.sent
        seen = _read(app, seen, order)
        with app.engine.connect() as conn:
            upcoming = conn.execute(
                sa.select(sa.func.min(E.c.next_due_at)).where(E.c.next_due_at.is_not(None))
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


def _read(app: App, seen: int, order: dict[str, int]) -> int:
    """The simulated readers act on what they got in this pass, two hours later, in a phone
    browser: the engaged confirm and answer (one check wrong, so it comes back in review), the
    skimming open every other lesson, the drifting never open."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(D.c.id, D.c.kind, D.c.position, D.c.review_slug, D.c.sent_at, P.c.email)
            .select_from(D.join(E, E.c.id == D.c.enrollment_id).join(P, P.c.id == E.c.person_id))
            .where(D.c.id > seen, D.c.status == "sent")
            .order_by(D.c.id)
        ).all()
    for delivery_id, kind, position, review_slug, sent_at, address in rows:
        seen = max(seen, delivery_id)
        later = Request("GET", READER, sent_at + timedelta(hours=2))
        who = persona(order[address]) if address in order else ENGAGED
        if kind != "lesson" and kind != "review":
            continue
        if who == DRIFTING or (who == SKIMMING and position % 2 == 0):
            continue
        if kind == "lesson":
            record_confirm(app.engine, delivery_id, later)
            if who == ENGAGED:
                # Everyone misses lesson 2's check the first time; the review brings it back.
                missed = 2
                answer = Request("GET", READER, later.now + timedelta(minutes=1))
                record_answer(
                    app.engine, delivery_id, _right(app, delivery_id, position != missed), answer
                )
        if review_slug is not None and who == ENGAGED:
            review = Request("GET", READER, later.now + timedelta(minutes=2))
            record_review_answer(
                app.engine, delivery_id, _right(app, delivery_id, True, review=True), review
            )
    return seen


def _right(app: App, delivery_id: int, right: bool, review: bool = False) -> int:
    """The option a simulated reader picks: the right one, or the first wrong one."""
    column = LV.c.review if review else LV.c.check
    key = D.c.review_hash if review else D.c.content_hash
    with app.engine.connect() as conn:
        check = conn.execute(
            sa.select(column)
            .select_from(D.join(LV, LV.c.content_hash == key))
            .where(D.c.id == delivery_id)
        ).scalar()
    data = json.loads(check or "null") or {"answer": 0, "options": ["", ""]}
    answer = int(data["answer"])
    return answer if right else (answer + 1) % len(data["options"])


def highlights(outbox: Path) -> dict[str, Path]:
    """One example file of each kind of e-mail the demo wrote, for the reader to open."""
    kinds: list[tuple[str, Callable[[str, str], bool]]] = [
        ("welcome", lambda subject, text: subject.startswith("Welcome to")),
        ("lesson with a review question", lambda subject, text: "\nREVIEW (" in text),
        ("lesson with a catch-up line", lambda subject, text: "You have not opened the" in text),
        ("automatic pause note", lambda subject, text: subject.startswith("Your lessons are")),
        ("completion with certificate", lambda subject, text: subject.startswith("You completed")),
        ("review e-mail after the course", lambda subject, text: subject.startswith("Review:")),
    ]
    found: dict[str, Path] = {}
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        for label, matches in kinds:
            if label not in found and matches(str(message["Subject"]).strip(), text):
                found[label] = path
    return {label: found[label] for label, _ in kinds if label in found}


def second_weekday_after(day: date) -> date:
    """The course's first day: the second weekday after `day`, so that the welcome has a weekday
    of its own before lesson 1 in every timezone, whatever day the demo runs (run on a Friday,
    "two days in" was a Sunday, and east of UTC the welcome rode inside lesson 1)."""
    found = 0
    while found < 2:
        day += timedelta(days=1)
        found += day.weekday() < 5
    return day


def demo_start(now: datetime, days: int = 35) -> datetime:
    """The simulated start: `days` ago at the top of the hour (UTC), so that the links in the
    e-mails work in `drip serve` today and no click looks like it came before its e-mail."""
    return (now - timedelta(days=days)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
