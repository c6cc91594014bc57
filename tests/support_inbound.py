"""Helpers of the way-back tests: lessons sent with their return paths, and bounces built from the corpus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from support import ROOT, SECRET, make_settings, utc

from drip.config import Settings
from drip.db import make_engine

CORPUS = ROOT / "tests" / "inbound" / "corpus"


CORPUS_ADDRESS = "exec@corp.example"


CORPUS_RETURN_PATH = "b-17-0a1b2c3d4e5f60718293@bounce.example.com"


CORPUS_MESSAGE_ID = "<0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"


BOUNCE_DOMAIN = "bounce.example.com"


@dataclass(frozen=True)
class SentLesson:
    """A lesson drip sent: its delivery, Message-ID and the envelope sender the relay saw."""

    email: str
    delivery_id: int
    message_id: str
    return_path: str


def send_first_lessons(
    tmp_path: Path, db_url: str, smtp_port: int, emails: list[str], **extra: str
) -> tuple[Settings, dict[str, SentLesson]]:
    """A cohort 'board' of these people, each sent the first lesson over SMTP with a bounce
    domain and a coach configured; returns the settings and what was sent to whom."""
    from drip.app import App
    from drip.db import session
    from drip.people.cohorts import create_cohort, get_cohort
    from drip.people.csv import Row
    from drip.people.enroll import enroll_rows
    from drip.sending.run import send_due

    extra = {"bounce_domain": BOUNCE_DOMAIN, "coach_address": "coach@example.com", **extra}
    s = make_settings(tmp_path, db_url, mail_url=f"smtp://127.0.0.1:{smtp_port}", **extra)
    app = App.open(s)
    monday = utc(2026, 11, 30, 0, 0)
    create_cohort(
        app.engine, name="board", course="sample", start=monday.date(), timezone="UTC", now=monday
    )
    with session(app.engine) as db:
        cohort = get_cohort(db, "board")
    rows = [Row(i + 2, e, e.split("@")[0].title(), None) for i, e in enumerate(emails)]
    enroll_rows(app.engine, cohort, rows, now=monday)
    dispatcher = app.dispatcher()
    send_due(dispatcher, utc(2026, 11, 30, 8, 0))
    dispatcher.transport.close()
    with app.engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT p.email, d.id, d.message_id FROM delivery d JOIN enrollment e"
                " ON e.id = d.enrollment_id JOIN person p ON p.id = e.person_id"
            )
        ).all()
    app.engine.dispose()
    from drip.tokens import return_address

    sent = {
        email: SentLesson(email, did, mid, return_address(SECRET, did, BOUNCE_DOMAIN))
        for email, did, mid in found
    }
    return s, sent


def returned_mail(name: str, lesson: SentLesson | None, **replace: str) -> bytes:
    """A corpus message made to be about this lesson: its address, return path and Message-ID."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    if lesson is not None:
        text = (
            text.replace(CORPUS_ADDRESS, lesson.email)
            .replace(CORPUS_RETURN_PATH, lesson.return_path)
            .replace(CORPUS_MESSAGE_ID, lesson.message_id)
        )
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def db_rows(db_url: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query on that database, read now."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query)).all()]
    finally:
        engine.dispose()


# What the four returned e-mails that both inbound paths are tried with leave behind: a hard
# bounce, a complaint, an out-of-office and a person's reply to a lesson.
AFTER_THE_FOUR = {
    "gone@corp.example": "bounced",
    "angry@corp.example": "unsubscribed",
    "away@corp.example": "paused",
    "curious@corp.example": "active",
}


def statuses(db_url: str) -> dict[str, str]:
    """Each person's enrolment status, by address."""
    query = "SELECT p.email, e.status FROM enrollment e JOIN person p ON p.id = e.person_id"
    return dict(db_rows(db_url, query))
