"""Which events leave drip (xAPI, webhooks) and the outbox rows written with them.

A connection carries the outbox configuration as an execution option (`enable`), so
`drip.events.insert` and the open pixel's group commit add outbox rows in the event's own
transaction, and do no extra work at all when nothing is configured. `drip.outbound.outbox`
sends them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.models import OUTBOX as O
from drip.states import EventKind, OutboxStatus, Verdict

OPTION = "drip_outbox"  # the execution option that carries an OutboxConfig

# What a learning record wants to hear about: reading, confirming and answering a lesson (by a
# person), and the course's status changes. Clicks, sends and drip's bookkeeping stay inside.
READER_KINDS = frozenset(
    {EventKind.open, EventKind.confirm, EventKind.answer, EventKind.review_answer}
)
STATUS_KINDS = frozenset(
    {
        EventKind.complete,
        EventKind.pause,
        EventKind.autopause,
        EventKind.resume,
        EventKind.wake,
        EventKind.unsubscribe,
    }
)
KINDS = frozenset(k.value for k in READER_KINDS | STATUS_KINDS)
READER = frozenset(k.value for k in READER_KINDS)

# A link scanner is recognised by a burst of hits within 2 s, after which its earlier hits are
# re-judged as machine: an event leaves only once that window is over.
SETTLE = timedelta(seconds=5)


@dataclass(frozen=True)
class OutboxConfig:
    """The targets events are queued for and the namespace of their ids."""

    targets: tuple[str, ...]
    namespace: uuid.UUID

    def wanted(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Indexes of the event rows that leave drip: no machine hit, reader events by people."""
        return [
            i
            for i, row in enumerate(rows)
            if row["kind"] in KINDS
            and row["verdict"] != Verdict.machine.value
            and (row["kind"] not in READER or row["verdict"] == Verdict.human.value)
        ]


def namespace_for(activity_base: str) -> uuid.UUID:
    """The UUID namespace of one drip installation's event ids, from its activity base IRI."""
    return uuid.uuid5(uuid.NAMESPACE_URL, activity_base)


def event_key(namespace: uuid.UUID, event_id: int) -> str:
    """The id an event has outside drip (xAPI statementId, webhook id): the same on every retry."""
    return str(uuid.uuid5(namespace, f"event/{event_id}"))


def enable(engine: Engine, config: OutboxConfig | None) -> Engine:
    """The engine whose connections queue outbox rows with every event they write."""
    if config is None or not config.targets:
        return engine
    return engine.execution_options(**{OPTION: config})


def config_of(conn: sa.Connection) -> OutboxConfig | None:
    """The outbox configuration a connection carries, if any."""
    config = conn.get_execution_options().get(OPTION)
    return config if isinstance(config, OutboxConfig) else None


def add(
    conn: sa.Connection, config: OutboxConfig, events: Iterable[tuple[int, dict[str, Any]]]
) -> None:
    """Queue (event id, event row) pairs for every target, in the caller's transaction."""
    rows = [
        {
            "target": target,
            "event_id": event_id,
            "key": event_key(config.namespace, event_id),
            "status": OutboxStatus.pending.value,
            "attempts": 0,
            "next_attempt_at": row["at"] + SETTLE,
            "last_error": "",
        }
        for event_id, row in events
        for target in config.targets
    ]
    if rows:
        conn.execute(O.insert(), rows)
