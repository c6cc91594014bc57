"""The vocabulary of the tables: enrollment and delivery statuses, event kinds, verdicts.

Kept apart from the models so the CLI can offer them as choices without loading SQLAlchemy."""

from __future__ import annotations

import enum


class EnrollmentStatus(enum.StrEnum):
    active = "active"
    paused = "paused"
    completed = "completed"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    held = "held"  # a row drip cannot process (bad stored data) waits here with its reason
    removed = "removed"  # taken out of the cohort by a manager; history kept


# Who still gets e-mail: completed people stay due while their spaced review goes on.
RECEIVING = (EnrollmentStatus.active.value, EnrollmentStatus.completed.value)


class DeliveryKind(enum.StrEnum):
    lesson = "lesson"
    welcome = "welcome"
    review = "review"  # a review e-mail of its own, after the last lesson
    completion = "completion"
    note = "note"  # the one short note after an automatic pause


class DeliveryStatus(enum.StrEnum):
    sending = "sending"
    sent = "sent"
    retry = "retry"
    failed = "failed"


class EventKind(enum.StrEnum):
    # What the dispatcher records of a delivery.
    sent = "sent"
    retry = "retry"
    # What a reader does (the web endpoint).
    open = "open"
    click = "click"
    confirm = "confirm"
    answer = "answer"
    # The learning loop: a welcome, a review carried or answered, a certificate issued.
    welcome = "welcome"
    review = "review"
    review_answer = "review_answer"
    certificate = "certificate"
    note = "note"
    schedule = "schedule"  # the reader chose another send time or days
    # What comes back by mail (drip.inbound).
    question = "question"  # a person's reply, forwarded to the coach
    softbounce = "softbounce"  # a temporary failure reported after the relay accepted the lesson
    # Status changes (drip.lifecycle writes exactly these).
    enrol = "enrol"
    pause = "pause"
    resume = "resume"
    wake = "wake"
    autopause = "autopause"
    complete = "complete"
    unsubscribe = "unsubscribe"
    resubscribe = "resubscribe"
    bounce = "bounce"
    hold = "hold"
    release = "release"
    remove = "remove"
    # Changes a manager makes that keep the status: a move to another cohort, new personal details.
    move = "move"
    change = "change"


class Verdict(enum.StrEnum):
    human = "human"
    machine = "machine"
    unknown = "unknown"


class OutboxStatus(enum.StrEnum):
    pending = "pending"  # waiting for its first or next attempt
    sent = "sent"  # the target took it (or already had it: 409)
    rejected = "rejected"  # the target refused it (4xx); kept with the reason, never retried
    skipped = "skipped"  # judged a machine after it was queued: never sent as learning
