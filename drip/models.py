"""All tables and enums of drip; no business logic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from drip.states import (
    RECEIVING,
    DeliveryStatus,
    EnrollmentStatus,
    EventKind,
    OutboxStatus,
    Verdict,
)

__all__ = ["DeliveryStatus", "EnrollmentStatus", "EventKind", "OutboxStatus", "Verdict"]


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as naive UTC, so SQLite and PostgreSQL compare alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    """A Field backed by a UTCDateTime column."""
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, sa_column_kwargs={"unique": True, "nullable": False})
    name: str = Field(default="", max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    # Columns of the HR file drip has no field for (department, employee id...), kept for exports.
    attributes: dict[str, str] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False, server_default="{}")
    )
    created_at: datetime | None = utc_column(nullable=False)


class Cohort(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, sa_column_kwargs={"unique": True, "nullable": False})
    course: str = Field(max_length=200)
    start_date: date
    timezone: str = Field(default="UTC", max_length=64)
    send_time: str = Field(default="07:30", max_length=5)
    send_days: str = Field(default="mon,tue,wed,thu,fri", max_length=40)
    window_end: str = Field(default="18:00", max_length=5)
    skip_dates: str = Field(default="")
    paused: bool = Field(default=False)
    welcome: bool = Field(default=True)  # a welcome e-mail before the first lesson
    sponsor: str = Field(default="", max_length=300)  # who asks people to take the course, why
    archived: bool = Field(default=False)  # finished or abandoned: never sends, hidden from lists
    manager_email: str | None = Field(default=None, max_length=320)
    created_at: datetime | None = utc_column(nullable=False)


# The statuses that still receive e-mail, as SQL with literal values: a partial index serves
# only a query that repeats them literally.
RECEIVING_SQL = "status IN (" + ", ".join(f"'{status}'" for status in RECEIVING) + ")"


class Enrollment(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("person_id", "cohort_id", name="uq_enrollment_person_cohort"),
        # What a claim reads, in the order it reads it: the due rows of those still receiving.
        sa.Index(
            "ix_enrollment_receiving_due",
            "next_due_at",
            sqlite_where=sa.text(RECEIVING_SQL),
            postgresql_where=sa.text(RECEIVING_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    cohort_id: int = Field(foreign_key="cohort.id", index=True)
    status: str = Field(default=EnrollmentStatus.active.value, max_length=20)
    status_reason: str = Field(default="")
    lessons_sent: int = Field(default=0)
    last_sent_on: date | None = Field(default=None)
    next_due_at: datetime | None = utc_column()
    paused_until: date | None = Field(default=None)
    # The reader's own choices from the "change time" page; empty means the cohort's.
    send_time: str = Field(default="", max_length=5)
    send_days: str = Field(default="", max_length=40)
    # Lessons a late joiner skipped to start where the cohort is (never sent; done for planning).
    skipped: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False, server_default="[]")
    )
    claimed_until: datetime | None = utc_column()
    claimed_by: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = utc_column(nullable=False)


class Delivery(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "lesson_slug", name="uq_delivery_enrollment_lesson"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Looked up through uq_delivery_enrollment_lesson, which starts with it.
    enrollment_id: int = Field(foreign_key="enrollment.id")
    lesson_slug: str = Field(max_length=200)  # a lesson's slug, or "_welcome", "_complete", ...
    kind: str = Field(default="lesson", max_length=20)  # lesson, welcome, review, completion, note
    review_slug: str | None = Field(default=None, max_length=200)  # the review it carries
    review_hash: str | None = Field(default=None, max_length=64)
    position: int
    content_hash: str = Field(max_length=64)
    message_id: str = Field(max_length=255, sa_column_kwargs={"unique": True, "nullable": False})
    created_at: datetime | None = utc_column(nullable=False)
    status: str = Field(default=DeliveryStatus.sending.value, max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = utc_column()
    sent_at: datetime | None = utc_column()
    last_error: str = Field(default="")


class LessonVersion(SQLModel, table=True):
    """The links of one lesson version, recorded at send time so clicks redirect only there."""

    __tablename__ = "lesson_version"

    content_hash: str = Field(primary_key=True, max_length=64)
    course: str = Field(max_length=200)
    slug: str = Field(max_length=200)
    title: str = Field(default="")
    links: str = Field(default="[]")
    takeaway: str = Field(default="")
    check: str = Field(default="")
    review: str = Field(default="")  # the check's review wording, as JSON


class Event(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_event_delivery_kind", "delivery_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id", index=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id")
    kind: str = Field(max_length=20)
    at: datetime | None = utc_column(nullable=False, index=True)
    method: str = Field(default="", max_length=10)
    seconds_since_send: float | None = Field(default=None)
    verdict: str = Field(default=Verdict.unknown.value, max_length=10)
    reason: str = Field(default="")
    detail: str = Field(default="")
    option: int | None = Field(default=None)  # an answer's chosen option (0-based)
    correct: bool | None = Field(default=None)  # whether that option was the right one
    link: int | None = Field(default=None)  # a click's link index


class Review(SQLModel, table=True):
    """One lesson's check in a person's spaced review: when it comes back, and how it went."""

    __table_args__ = (
        # It also serves a batch's read of its people's reviews (a few rows each).
        sa.UniqueConstraint("enrollment_id", "lesson_slug", name="uq_review_enrollment_lesson"),
    )

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="enrollment.id")
    lesson_slug: str = Field(max_length=200)
    due_on: date  # the person's local date it is due back
    streak: int = Field(default=0)  # right answers in a row
    rounds: int = Field(default=0)  # times it came back as a review
    retired: bool = Field(default=False)
    first_right: bool | None = Field(default=None)  # the lesson's own check, first try
    updated_at: datetime | None = utc_column(nullable=False)


class OutboxItem(SQLModel, table=True):
    """One event waiting to leave drip for one target (an LRS, a webhook), written in the same
    transaction as the event; `key` is the id the target sees, the same on every retry."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("target", "event_id", name="uq_outbox_target_event"),
        sa.Index("ix_outbox_due", "target", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(max_length=10)
    event_id: int = Field(foreign_key="event.id")
    key: str = Field(max_length=36)
    status: str = Field(default=OutboxStatus.pending.value, max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = utc_column(nullable=False)
    sent_at: datetime | None = utc_column()
    code: int | None = Field(default=None)  # the target's last HTTP status
    last_error: str = Field(default="")


class DigestLog(SQLModel, table=True):
    """One row per cohort and ISO week: the claim that makes a weekly digest go out once."""

    __tablename__ = "digest_log"
    __table_args__ = (sa.UniqueConstraint("cohort_id", "week", name="uq_digest_cohort_week"),)

    id: int | None = Field(default=None, primary_key=True)
    cohort_id: int = Field(foreign_key="cohort.id")
    week: str = Field(max_length=10)
    sent_at: datetime | None = utc_column(nullable=False)  # first claimed; sent when status is
    # Claimed and recorded like a lesson's delivery: one Message-ID for every attempt, a lease
    # for the worker sending it, retried with backoff after a temporary failure.
    status: str = Field(default=DeliveryStatus.sent.value, max_length=20)
    attempts: int = Field(default=1)
    message_id: str = Field(default="", max_length=255)
    claimed_until: datetime | None = utc_column()
    next_attempt_at: datetime | None = utc_column()
    last_error: str = Field(default="", max_length=1000)


class SendBudget(SQLModel, table=True):
    """Sends used in one window of time by all workers, for the overall SMTP rate limit."""

    __tablename__ = "send_budget"

    window_no: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    used: int = Field(default=0)


class Suppression(SQLModel, table=True):
    """An address no cohort may mail: a hard bounce, a complaint, or a manager's entry."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, sa_column_kwargs={"unique": True, "nullable": False})
    reason: str = Field(default="")
    source: str = Field(default="", max_length=20)  # bounce, complaint, manual, import
    created_at: datetime | None = utc_column(nullable=False)


class InboundMessage(SQLModel, table=True):
    """One message that came back (bounce, complaint, reply), kept so it is processed once."""

    __tablename__ = "inbound_message"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, sa_column_kwargs={"unique": True, "nullable": False})
    received_at: datetime | None = utc_column(nullable=False)
    source: str = Field(default="", max_length=10)  # smtp, imap, ses, postmark, sendgrid, mailgun
    kind: str = Field(default="", max_length=20)  # what classify made of it
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id")
    email: str = Field(default="", max_length=320)
    outcome: str = Field(default="")  # what drip did about it


class TallyState(SQLModel, table=True):
    """How far the report's tallies have read the event log: every event up to `last_event_id`
    is counted in them, once."""

    __tablename__ = "tally_state"

    name: str = Field(primary_key=True, max_length=20)
    last_event_id: int = Field(default=0, sa_type=sa.BigInteger)


class DeliveryTally(SQLModel, table=True):
    """What one delivery's events add up to for the report, both counting only people's hits
    (`_h`) and counting every hit (`_a`). No foreign keys: it is a cache of the event log."""

    __tablename__ = "delivery_tally"

    delivery_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    enrollment_id: int = Field(index=True)
    cohort_id: int  # the cohort it is counted in (a move recounts it in the new one)
    slug: str = Field(max_length=200)
    position: int = Field(default=0)
    sent_at: datetime | None = utc_column()  # None until sent
    counted: bool = Field(default=False)  # a lesson that was sent: the funnel counts it
    opened_h: bool = Field(default=False)
    opened_a: bool = Field(default=False)
    confirmed_h: bool = Field(default=False)
    confirmed_a: bool = Field(default=False)
    answered: bool = Field(default=False)  # an answer of record (not a machine's)
    right: bool = Field(default=False)  # and it was right
    last_at_h: datetime | None = utc_column()
    last_at_a: datetime | None = utc_column()
    unsubscribed: bool = Field(default=False)  # an unsubscribe used this e-mail's link
    unsubscribed_after: bool = Field(default=False)  # one without a link came after it


class EnrollmentTally(SQLModel, table=True):
    """One enrolment's report figures, added up from its delivery tallies and loose events."""

    __tablename__ = "enrollment_tally"

    enrollment_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    sent: int = Field(default=0)
    opened_h: int = Field(default=0)
    opened_a: int = Field(default=0)
    confirmed_h: int = Field(default=0)
    confirmed_a: int = Field(default=0)
    answered: int = Field(default=0)
    right: int = Field(default=0)
    behind_h: bool = Field(default=False)
    behind_a: bool = Field(default=False)
    last_at_h: datetime | None = utc_column()
    last_at_a: datetime | None = utc_column()
    loose_at: datetime | None = utc_column()  # the last reader event with no delivery
    questions: int = Field(default=0)


class LessonTally(SQLModel, table=True):
    """One lesson's funnel in one cohort: the sum of its delivery tallies."""

    __tablename__ = "lesson_tally"

    cohort_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    slug: str = Field(primary_key=True, max_length=200)
    position: int = Field(default=0)  # the lowest place it was sent at
    sent: int = Field(default=0)
    opened_h: int = Field(default=0)
    opened_a: int = Field(default=0)
    confirmed_h: int = Field(default=0)
    confirmed_a: int = Field(default=0)
    answered: int = Field(default=0)
    right: int = Field(default=0)
    unsubscribed: int = Field(default=0)  # people who unsubscribed from it or right after it


class DayTally(SQLModel, table=True):
    """Events of one cohort on one UTC day for the activity chart: all, and people's only."""

    __tablename__ = "day_tally"

    cohort_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    day: str = Field(primary_key=True, max_length=10)
    what: str = Field(primary_key=True, max_length=10)  # sent, opened, responded, other
    count_a: int = Field(default=0)
    count_h: int = Field(default=0)


# SQLAlchemy core handles of the tables, for the hot paths (per recipient, per hit) and the
# aggregate queries; SQLModel objects serve everywhere else.
PERSON: sa.Table = Person.__table__  # type: ignore[attr-defined]
COHORT: sa.Table = Cohort.__table__  # type: ignore[attr-defined]
ENROLLMENT: sa.Table = Enrollment.__table__  # type: ignore[attr-defined]
DELIVERY: sa.Table = Delivery.__table__  # type: ignore[attr-defined]
EVENT: sa.Table = Event.__table__  # type: ignore[attr-defined]
LESSON_VERSION: sa.Table = LessonVersion.__table__  # type: ignore[attr-defined]
DIGEST_LOG: sa.Table = DigestLog.__table__  # type: ignore[attr-defined]
REVIEW: sa.Table = Review.__table__  # type: ignore[attr-defined]
SEND_BUDGET: sa.Table = SendBudget.__table__  # type: ignore[attr-defined]
OUTBOX: sa.Table = OutboxItem.__table__  # type: ignore[attr-defined]
SUPPRESSION: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
INBOUND: sa.Table = InboundMessage.__table__  # type: ignore[attr-defined]
TALLY_STATE: sa.Table = TallyState.__table__  # type: ignore[attr-defined]
DELIVERY_TALLY: sa.Table = DeliveryTally.__table__  # type: ignore[attr-defined]
ENROLLMENT_TALLY: sa.Table = EnrollmentTally.__table__  # type: ignore[attr-defined]
LESSON_TALLY: sa.Table = LessonTally.__table__  # type: ignore[attr-defined]
DAY_TALLY: sa.Table = DayTally.__table__  # type: ignore[attr-defined]
