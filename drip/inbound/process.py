"""Act on one message that came back: find the delivery it is about, then bounce, unsubscribe,
pause or record a question, once, in one transaction.

Nothing in the message is trusted until it names a delivery in a way only the mail's real path
knows: a signed return address (VERP) or the lesson's Message-ID. Anything else changes nothing."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, make_msgid, parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip import events, lifecycle
from drip.config import Settings, verifying_keys
from drip.errors import DripError, TokenError
from drip.inbound.classify import Finding, Kind, classify
from drip.lifecycle import Change, Transition
from drip.mail.message import sender_domain
from drip.mail.transports import Outcome, Transport
from drip.models import DELIVERY as D
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import INBOUND as IN
from drip.models import LESSON_VERSION as LV
from drip.models import PERSON as P
from drip.models import EnrollmentStatus, EventKind, Verdict
from drip.people.suppression import stop_mail, suppress
from drip.tokens import read_return_address

log = logging.getLogger("drip.inbound")

# Where a mail server records the envelope recipient of a message it stored.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# Reader events that end a run of soft bounces: the address works.
ALIVE = (EventKind.open, EventKind.click, EventKind.confirm, EventKind.answer, EventKind.question)


class ForwardError(DripError):
    """A reply could not be forwarded to the coach; the message is kept to try again."""


@dataclass(frozen=True)
class Inbound:
    """What reading the way back needs from the settings."""

    # The signing key, then the previous one (return addresses of mail sent before a rotation).
    keys: tuple[str, ...]
    bounce_domain: str
    reply_address: str
    coach_address: str
    sender: str
    soft_bounce_limit: int = 3

    @classmethod
    def of(cls, settings: Settings) -> Inbound:
        return cls(
            verifying_keys(settings),
            settings.bounce_domain,
            settings.reply_to_address,
            settings.coach_address,
            settings.sender,
            settings.soft_bounce_limit,
        )

    def delivery_of(self, address: str) -> int | None:
        """The delivery a return address belongs to, or None for anything forged or foreign."""
        if not self.bounce_domain:
            return None
        try:
            return read_return_address(self.keys, address, self.bounce_domain)
        except TokenError:
            return None

    def accepts(self, address: str) -> bool:
        """Whether drip takes mail for this address: its reply address or a valid return path."""
        address = address.strip().strip("<>").lower()
        return bool(address) and (
            address == self.reply_address or self.delivery_of(address) is not None
        )


@dataclass(frozen=True)
class Result:
    """What drip did with one message."""

    kind: str
    email: str
    action: str
    duplicate: bool = False


@dataclass(frozen=True)
class Target:
    """The delivery a message is about, and whose it is."""

    delivery_id: int
    enrollment_id: int
    email: str
    name: str
    message_id: str
    lesson: str
    found_by: str


def message_key(raw: bytes) -> str:
    """The idempotency key of a message: its Message-ID, else its bytes."""
    msg = message_from_bytes(raw[:65536], policy=policy.compat32)
    value = str(msg.get("Message-ID", "")).strip()
    return hashlib.sha256(value.encode() if value else raw).hexdigest()


def handle(
    engine: Engine,
    raw: bytes,
    *,
    config: Inbound,
    source: str,
    now: datetime,
    recipients: Sequence[str] = (),
    transport: Transport | None = None,
) -> Result:
    """Classify one message and act on it once; a message seen before changes nothing."""
    key = message_key(raw)
    with engine.connect() as conn:
        seen = conn.execute(sa.select(IN.c.kind, IN.c.email).where(IN.c.key == key)).first()
    if seen is not None:
        return Result(seen[0], seen[1], "already processed", duplicate=True)
    finding = classify(raw, now.date())
    with engine.begin() as conn:
        if conn.execute(sa.select(IN.c.id).where(IN.c.key == key)).first() is not None:
            return Result(finding.kind.value, "", "already processed", duplicate=True)
        target = _target(conn, config, raw, finding, recipients)
        if target is None:
            action = "matched no delivery (unsigned or forged return path): changed nothing"
        else:
            action = _act(conn, config, finding, target, raw, now, source, transport)
        conn.execute(
            IN.insert().values(
                key=key,
                received_at=now,
                source=source[:10],
                kind=finding.kind.value,
                delivery_id=target.delivery_id if target else None,
                email=target.email if target else "",
                outcome=action[:1000],
            )
        )
    log.info("%s from %s: %s", finding.kind.value, target.email if target else "?", action)
    return Result(finding.kind.value, target.email if target else "", action)


def handle_report(
    engine: Engine,
    finding: Finding,
    *,
    key: str,
    email: str,
    message_id: str,
    config: Inbound,
    source: str,
    now: datetime,
) -> Result:
    """Act once on a bounce or complaint an e-mail service reported (its webhook verified):
    about the lesson with that Message-ID, else the last lesson sent to that address."""
    key = hashlib.sha256(f"{source}:{key}".encode()).hexdigest()
    with engine.begin() as conn:
        if conn.execute(sa.select(IN.c.id).where(IN.c.key == key)).first() is not None:
            return Result(finding.kind.value, email, "already processed", duplicate=True)
        query = _delivery_query()
        row = None
        if message_id:
            row = conn.execute(query.where(D.c.message_id == message_id)).first()
        if row is None and email:
            row = conn.execute(
                query.where(P.c.email == email.strip().lower()).order_by(D.c.id.desc()).limit(1)
            ).first()
        target = _target_of(row, "webhook") if row is not None else None
        if target is None:
            action = "no lesson was sent to that address: changed nothing"
        else:
            action = _act(conn, config, finding, target, b"", now, source, None)
        conn.execute(
            IN.insert().values(
                key=key,
                received_at=now,
                source=source[:10],
                kind=finding.kind.value,
                delivery_id=target.delivery_id if target else None,
                email=email[:320],
                outcome=action[:1000],
            )
        )
    return Result(finding.kind.value, email, action)


def _target_of(row: Any, found_by: str) -> Target:
    delivery_id, enrollment_id, email, name, message_id, lesson = row
    return Target(delivery_id, enrollment_id, email, name, message_id, lesson, found_by)


def _delivery_query() -> sa.Select[Any]:
    return sa.select(
        D.c.id,
        D.c.enrollment_id,
        P.c.email,
        P.c.name,
        D.c.message_id,
        sa.func.coalesce(LV.c.title, D.c.lesson_slug),
    ).select_from(
        D.join(E, E.c.id == D.c.enrollment_id)
        .join(P, P.c.id == E.c.person_id)
        .outerjoin(LV, LV.c.content_hash == D.c.content_hash)
    )


def _target(
    conn: sa.Connection,
    config: Inbound,
    raw: bytes,
    finding: Finding,
    recipients: Sequence[str],
) -> Target | None:
    msg = message_from_bytes(raw[:65536], policy=policy.compat32)
    addresses = list(recipients)
    for header in ENVELOPE_HEADERS:
        addresses += [a for _, a in getaddresses([str(v) for v in msg.get_all(header, [])])]
    query = _delivery_query()
    for address in addresses:
        delivery_id = config.delivery_of(address)
        if delivery_id is not None:
            row = conn.execute(query.where(D.c.id == delivery_id)).first()
            if row is not None:
                return _target_of(row, "return address")
    for message_id in finding.message_ids:
        row = conn.execute(query.where(D.c.message_id == message_id)).first()
        if row is not None:
            return _target_of(row, "Message-ID")
    return None


def _act(
    conn: sa.Connection,
    config: Inbound,
    finding: Finding,
    target: Target,
    raw: bytes,
    now: datetime,
    source: str,
    transport: Transport | None,
) -> str:
    delivery = (target.enrollment_id, target.delivery_id)
    match finding.kind:
        case Kind.hard_bounce:
            return _bounce(conn, target, f"hard bounce: {finding.reason}", now, source)
        case Kind.soft_bounce:
            events.insert(
                conn,
                [
                    events.row(
                        EventKind.softbounce,
                        target.enrollment_id,
                        now,
                        delivery_id=target.delivery_id,
                        method=source,
                        reason=finding.reason,
                    )
                ],
            )
            run = _soft_bounces_in_a_row(conn, target.enrollment_id)
            if run >= config.soft_bounce_limit:
                reason = f"{run} soft bounces in a row, the last: {finding.reason}"
                return _bounce(conn, target, reason, now, source)
            return f"soft bounce {run} of {config.soft_bounce_limit} in a row counted"
        case Kind.complaint:
            suppress(conn, target.email, reason=finding.reason, source="complaint", now=now)
            n = stop_mail(
                conn,
                target.email,
                Transition.unsubscribe,
                reason=f"complaint: {finding.reason}",
                now=now,
                method=source,
                delivery=delivery,
            )
            return f"complaint: suppressed and {n} enrolment(s) unsubscribed"
        case Kind.auto_reply:
            if finding.until is None:
                return "auto-reply without a return date: nothing changed"
            return _pause(conn, target, finding, now, source)
        case Kind.reply:
            return _question(conn, config, finding, target, raw, now, source, transport)
    return "not a bounce, complaint or reply drip can read: nothing changed"


def _bounce(conn: sa.Connection, target: Target, reason: str, now: datetime, source: str) -> str:
    suppress(conn, target.email, reason=reason, source="bounce", now=now)
    n = stop_mail(
        conn,
        target.email,
        Transition.bounce,
        reason=reason,
        now=now,
        method=source,
        delivery=(target.enrollment_id, target.delivery_id),
    )
    return f"suppressed and {n} enrolment(s) bounced ({reason})"


def _soft_bounces_in_a_row(conn: sa.Connection, enrollment_id: int) -> int:
    last_alive = (
        sa.select(sa.func.coalesce(sa.func.max(EV.c.id), 0))
        .where(EV.c.enrollment_id == enrollment_id, events.is_kind(*ALIVE))
        .scalar_subquery()
    )
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                EV.c.enrollment_id == enrollment_id,
                EV.c.kind == EventKind.softbounce.value,
                EV.c.id > last_alive,
            )
        ).scalar_one()
    )


def _pause(
    conn: sa.Connection, target: Target, finding: Finding, now: datetime, source: str
) -> str:
    assert finding.until is not None
    ids = conn.execute(
        sa.select(E.c.id)
        .join(P, P.c.id == E.c.person_id)
        .where(P.c.email == target.email, E.c.status == EnrollmentStatus.active.value)
    ).scalars()
    reason = f"out of office until {finding.until.isoformat()} (auto-reply)"
    changes = [
        Change(
            eid,
            until=finding.until,
            reason=reason,
            delivery_id=target.delivery_id if eid == target.enrollment_id else None,
        )
        for eid in ids
    ]
    applied = lifecycle.apply(
        conn, Transition.pause, changes, now=now, method=source, verdict=Verdict.machine
    )
    return f"{len(applied)} enrolment(s) paused until {finding.until.isoformat()}"


def _question(
    conn: sa.Connection,
    config: Inbound,
    finding: Finding,
    target: Target,
    raw: bytes,
    now: datetime,
    source: str,
    transport: Transport | None,
) -> str:
    events.insert(
        conn,
        [
            events.row(
                EventKind.question,
                target.enrollment_id,
                now,
                delivery_id=target.delivery_id,
                method=source,
                verdict=Verdict.human,
                reason=finding.subject,
                detail=finding.text,
            )
        ],
    )
    if not config.coach_address:
        return "question recorded; set DRIP_COACH_ADDRESS to have replies forwarded"
    if transport is None:
        return "question recorded; no mail transport to forward it"
    message = forward_message(config, finding, target, raw, now)
    result = transport.send(parseaddr(config.sender)[1], config.coach_address, message.as_bytes())
    if result.outcome is not Outcome.accepted:
        # Raising rolls the question back, so the message is tried again as a whole.
        raise ForwardError(f"cannot forward the reply to {config.coach_address}: {result}")
    return f"question recorded and forwarded to {config.coach_address}"


def forward_message(
    config: Inbound, finding: Finding, target: Target, raw: bytes, now: datetime
) -> EmailMessage:
    """The coach's copy of a reply: who asked, about which lesson, threaded under that lesson."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = config.sender
    message["To"] = config.coach_address
    message["Reply-To"] = formataddr((target.name, target.email))
    message["Subject"] = f"Question from {target.name or target.email} on '{target.lesson}'"
    message["Date"] = now
    message["Message-ID"] = make_msgid("question", domain=sender_domain(config.sender))
    message["In-Reply-To"] = target.message_id
    message["References"] = target.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"{target.name or target.email} <{target.email}> replied to the lesson "
        f"'{target.lesson}':\n\n{finding.text}\n\n"
        "Reply to this message to answer them directly; their original e-mail is attached.\n"
    )
    message.add_attachment(message_from_bytes(raw, policy=policy.default), disposition="attachment")
    return message
