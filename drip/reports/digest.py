"""The weekly digest: each cohort's figures and the people behind or paused automatically, by name,
mailed to its manager as an HTML e-mail with a text part, the full HTML report attached."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.config import Settings
from drip.db import insert_ignoring_conflicts
from drip.errors import DripError, HeaderError
from drip.mail.dkim import dkim_signer
from drip.mail.message import (
    automatic_headers,
    check_header_value,
    feedback_id,
    new_message_id,
    sender_domain,
)
from drip.mail.render import render_email
from drip.mail.transports import SendResult, Transport
from drip.models import COHORT as C
from drip.models import DIGEST_LOG as DL
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P
from drip.models import DeliveryStatus
from drip.reports.html import render_html
from drip.reports.model import CohortReport
from drip.reports.queries import BEHIND_AFTER, cohort_report
from drip.sending.retry import Verdict, decide
from drip.states import EnrollmentStatus, EventKind

log = logging.getLogger("drip.reports.digest")

BEHIND_NAMED = 25
LEASE = timedelta(minutes=10)  # how long a claimed digest is one worker's to send


@dataclass(frozen=True)
class Named:
    """A person the digest names."""

    name: str
    email: str


@dataclass(frozen=True)
class DigestClaim:
    """One cohort's digest of one week, claimed by this worker: the same Message-ID and Date on
    every attempt, as for a lesson."""

    id: int
    week: str
    message_id: str
    attempts: int
    first_try: datetime


@dataclass(frozen=True)
class DigestResult:
    """What happened to one cohort's digest."""

    cohort: str
    recipient: str
    outcome: str
    detail: str = ""


def _header(name: str, value: str) -> str:
    # EmailMessage decodes encoded words, so "=?...?=" is refused too, not only raw CR/LF.
    check_header_value(name, value)
    if "=?" in value:
        raise HeaderError(
            f"the {name} header {value!r} holds an encoded word; fix the cohort's data"
        )
    return value


def _filename(cohort: str, now: datetime) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", cohort.lower()).strip("-")[:60] or "cohort"
    return f"{slug}-{now:%Y-%m-%d}.html"


def auto_paused(engine: Engine, cohort: str) -> list[Named]:
    """The cohort's people whose lessons are paused because drip paused them, by name."""
    last_pause = (
        sa.select(EV.c.kind)
        .where(
            EV.c.enrollment_id == E.c.id,
            EV.c.kind.in_([EventKind.pause.value, EventKind.autopause.value]),
        )
        .order_by(EV.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(P.c.name, P.c.email)
            .select_from(E.join(P, P.c.id == E.c.person_id).join(C, C.c.id == E.c.cohort_id))
            .where(
                C.c.name == cohort,
                E.c.status == EnrollmentStatus.paused.value,
                last_pause == EventKind.autopause.value,
            )
            .order_by(P.c.name, P.c.email)
        ).all()
    return [Named(name or "", email) for name, email in rows]


def figures(report: CohortReport) -> list[tuple[str, str]]:
    """The digest's headline figures as (label, value) rows."""
    s = report.summary
    gone = [p.email for p in report.people if p.unreachable]
    lost = ", ".join(gone[:BEHIND_NAMED]) + (
        f" and {len(gone) - BEHIND_NAMED} more" if len(gone) > BEHIND_NAMED else ""
    )
    return [
        (
            "Enrolled",
            f"{s.enrolled} ({s.active} active, {s.paused} paused, {s.completed} completed, "
            f"{s.unsubscribed} unsubscribed, {s.bounced} bounced)",
        ),
        ("Lessons sent", f"{s.lessons_sent}"),
        (
            "Opened by a person",
            f"{s.open_rate_human:.0%} ({s.open_rate_all:.0%} counting machine opens)",
        ),
        ('"Got it" confirmations', f"{s.confirmed}"),
        ("Checks answered right", f"{s.answered_right} of {s.answered}"),
        ("Average progress", f"{s.average_progress:.0%} of {s.course_lessons} lessons"),
        ("On track", f"{s.on_track}"),
        ("Behind", f"{s.behind}"),
        (
            "Unreachable (their address bounced)",
            f"{s.unreachable}" + (f" ({lost})" if lost else ""),
        ),
        ("Questions asked (forwarded to the coach)", f"{s.questions}"),
    ]


def digest_parts(
    report: CohortReport, paused: list[Named], templates: Path, filename: str
) -> tuple[str, str]:
    """(html, text) of the digest body."""
    s = report.summary
    return render_email(
        templates,
        "digest",
        report=report,
        s=s,
        figures=figures(report),
        behind=[Named(p.name, p.email) for p in report.behind],
        behind_after=BEHIND_AFTER,
        paused=paused,
        named=BEHIND_NAMED,
        filename=filename,
        subject=f"{s.cohort}: weekly progress",
        preheader=f"{s.open_rate_human:.0%} of lessons opened, {s.behind} behind, "
        f"{len(paused)} paused automatically",
    )


def build_digest(
    engine: Engine,
    settings: Settings,
    cohort_name: str,
    now: datetime,
    recipient: str = "",
    message_id: str = "",
    date: datetime | None = None,
) -> EmailMessage:
    """The digest message of one cohort; raise HeaderError on a line break in any header."""
    report = cohort_report(engine, cohort_name, settings.lessons_path, now)
    s = report.summary
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = _header("From", settings.sender)
    message["Reply-To"] = _header("Reply-To", settings.reply_to)
    if recipient:
        message["To"] = _header("To", recipient)
    subject = (
        f"{s.cohort}: weekly progress, {s.open_rate_human:.0%} of lessons opened, {s.behind} behind"
    )
    message["Subject"] = _header("Subject", subject)
    message["Date"] = format_datetime((date or now).astimezone(UTC))
    message["Message-ID"] = message_id or new_message_id(sender_domain(settings.sender))
    for line in automatic_headers(feedback_id(s.cohort, f"{now:%G-W%V}", "digest")):
        name, _, value = line.partition(": ")
        message[name] = value
    filename = _filename(s.cohort, now)
    html, text = digest_parts(
        report, auto_paused(engine, cohort_name), settings.templates_path, filename
    )
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # An attachment declared as text/html with its charset: gateways quarantine bare HTML files.
    message.add_attachment(
        render_html(report, settings.templates_path),
        subtype="html",
        charset="utf-8",
        filename=filename,
    )
    return message


def send_digests(
    engine: Engine,
    transport: Transport,
    settings: Settings,
    now: datetime,
    cohort_id: int | None = None,
    once_per_week: bool = False,
) -> list[DigestResult]:
    """Mail every cohort's manager (or one cohort's) its digest; a failure never stops the rest.

    With once_per_week, a cohort's digest is claimed for the ISO week in digest_log and its
    outcome recorded there like a lesson's: a temporary failure is retried (retry_digests) with
    the same Message-ID, a permanent one is marked failed, and several workers send it once."""
    query = sa.select(C.c.id, C.c.name, C.c.manager_email).where(
        C.c.manager_email.is_not(None), C.c.manager_email != ""
    )
    if cohort_id is not None:
        query = query.where(C.c.id == cohort_id)
    with engine.connect() as conn:
        cohorts = conn.execute(query.order_by(C.c.name)).all()
    envelope_from = parseaddr(settings.sender)[1]
    lifetime = timedelta(hours=settings.retry_lifetime_hours)
    dkim = dkim_signer(settings)  # signs the digest as it signs the lessons
    results = []
    for cid, name, manager in cohorts:
        claim = None
        if once_per_week:
            claim = claim_week(engine, cid, now, sender_domain(settings.sender))
            if claim is None:
                results.append(DigestResult(name, manager, "skipped", "already sent this week"))
                continue
        try:
            message = build_digest(
                engine,
                settings,
                name,
                now,
                manager,
                message_id=claim.message_id if claim else "",
                date=claim.first_try if claim else None,
            )
            data = message.as_bytes()
            if dkim is not None:
                data = dkim.sign(data, claim.first_try if claim else now)
        except DripError as exc:
            log.error("digest of cohort %r not built: %s", name, exc)
            if claim is not None:
                _finish(engine, claim, DeliveryStatus.failed, now, f"not built: {exc}")
            results.append(DigestResult(name, manager, "not built", str(exc)))
            continue
        sent = transport.send(envelope_from, manager, data)
        if claim is not None:
            record_week(engine, claim, sent, now, lifetime)
        results.append(DigestResult(name, manager, sent.outcome.value, sent.reply))
        log.info("digest of cohort %r to %s: %s", name, manager, sent)
    return results


def _week(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def claim_week(
    engine: Engine, cohort_id: int, now: datetime, domain: str = "drip.localhost"
) -> DigestClaim | None:
    """Claim this cohort's digest of now's ISO week: new, due for a retry, or left by a worker
    whose lease ran out; None when it was sent, failed for good, or another worker holds it."""
    week = _week(now)
    with engine.begin() as conn:
        inserted = conn.execute(
            insert_ignoring_conflicts(conn, DL)
            .values(
                cohort_id=cohort_id,
                week=week,
                sent_at=now,
                status=DeliveryStatus.sending.value,
                attempts=1,
                message_id=new_message_id(domain),
                claimed_until=now + LEASE,
                last_error="",
            )
            .returning(DL.c.id)  # rowcount is not reliable for ON CONFLICT DO NOTHING
        ).first()
        if inserted is None:
            retry = sa.and_(DL.c.status == DeliveryStatus.retry.value, DL.c.next_attempt_at <= now)
            abandoned = sa.and_(
                DL.c.status == DeliveryStatus.sending.value, DL.c.claimed_until < now
            )
            taken = conn.execute(
                DL.update()
                .where(DL.c.cohort_id == cohort_id, DL.c.week == week, sa.or_(retry, abandoned))
                .values(
                    status=DeliveryStatus.sending.value,
                    claimed_until=now + LEASE,
                    attempts=DL.c.attempts + 1,
                )
                .returning(DL.c.id)
            ).first()
            if taken is None:
                return None
        row = conn.execute(
            sa.select(DL.c.id, DL.c.message_id, DL.c.attempts, DL.c.sent_at).where(
                DL.c.cohort_id == cohort_id, DL.c.week == week
            )
        ).one()
    return DigestClaim(row.id, week, row.message_id, row.attempts, row.sent_at)


def record_week(
    engine: Engine, claim: DigestClaim, sent: SendResult, now: datetime, lifetime: timedelta
) -> None:
    """Record a digest's outcome with the lessons' retry policy: sent, retry later, or failed."""
    decision = decide(
        sent,
        lesson="weekly digest",
        attempts=claim.attempts - 1,
        first_try=claim.first_try,
        sent_at=now,
        now=now,
        lifetime=lifetime,
        key=claim.id,
    )
    if decision.verdict is Verdict.sent:
        _finish(engine, claim, DeliveryStatus.sent, now, "")
    elif decision.verdict is Verdict.retry:
        _finish(engine, claim, DeliveryStatus.retry, now, str(sent), decision.retry_at)
    else:
        log.warning("digest %s: %s", claim.week, decision.reason)
        _finish(engine, claim, DeliveryStatus.failed, now, decision.reason)


def _finish(
    engine: Engine,
    claim: DigestClaim,
    status: DeliveryStatus,
    now: datetime,
    error: str,
    retry_at: datetime | None = None,
) -> None:
    values: dict[str, object] = {
        "status": status.value,
        "claimed_until": None,
        "next_attempt_at": retry_at,
        "last_error": error[:1000],
    }
    if status is DeliveryStatus.sent:
        values["sent_at"] = now
    with engine.begin() as conn:
        conn.execute(DL.update().where(DL.c.id == claim.id).values(**values))


def due_retries(engine: Engine, now: datetime) -> list[int]:
    """The cohorts whose digest of this week waits for a retry or was left by a dead worker."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(DL.c.cohort_id)
                .where(
                    DL.c.week == _week(now),
                    sa.or_(
                        sa.and_(
                            DL.c.status == DeliveryStatus.retry.value,
                            DL.c.next_attempt_at <= now,
                        ),
                        sa.and_(
                            DL.c.status == DeliveryStatus.sending.value,
                            DL.c.claimed_until < now,
                        ),
                    ),
                )
                .order_by(DL.c.cohort_id)
            ).scalars()
        )
