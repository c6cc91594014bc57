"""The weekly digest: each cohort's figures and the people behind or paused automatically, by name,
mailed to its manager as an HTML e-mail with a text part, the full HTML report attached."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.config import Settings
from drip.db import insert_ignoring_conflicts
from drip.errors import DripError, HeaderError
from drip.mail.message import automatic_headers, check_header_value, feedback_id, sender_domain
from drip.mail.render import render_email
from drip.mail.transports import Transport
from drip.models import COHORT as C
from drip.models import DIGEST_LOG as DL
from drip.models import ENROLLMENT as E
from drip.models import EVENT as EV
from drip.models import PERSON as P
from drip.reports.html import render_html
from drip.reports.queries import BEHIND_AFTER, CohortReport, cohort_report
from drip.states import EnrollmentStatus, EventKind

log = logging.getLogger("drip.reports.digest")

BEHIND_NAMED = 25


@dataclass(frozen=True)
class Named:
    """A person the digest names."""

    name: str
    email: str


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
    engine: Engine, settings: Settings, cohort_name: str, now: datetime, recipient: str = ""
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
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid("digest", domain=sender_domain(settings.sender))
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

    With once_per_week, a cohort's digest is first claimed for the ISO week in digest_log, so
    several workers running the same cron job send it once."""
    query = sa.select(C.c.id, C.c.name, C.c.manager_email).where(
        C.c.manager_email.is_not(None), C.c.manager_email != ""
    )
    if cohort_id is not None:
        query = query.where(C.c.id == cohort_id)
    with engine.connect() as conn:
        cohorts = conn.execute(query.order_by(C.c.name)).all()
    envelope_from = parseaddr(settings.sender)[1]
    results = []
    for cid, name, manager in cohorts:
        if once_per_week and not claim_week(engine, cid, now):
            results.append(DigestResult(name, manager, "skipped", "already sent this week"))
            continue
        try:
            data = build_digest(engine, settings, name, now, manager).as_bytes()
        except DripError as exc:
            log.error("digest of cohort %r not built: %s", name, exc)
            results.append(DigestResult(name, manager, "not built", str(exc)))
            continue
        sent = transport.send(envelope_from, manager, data)
        results.append(DigestResult(name, manager, sent.outcome.value, sent.reply))
        log.info("digest of cohort %r to %s: %s", name, manager, sent)
    return results


def claim_week(engine: Engine, cohort_id: int, now: datetime) -> bool:
    """Record that this cohort's digest for now's ISO week is being sent; False if it already was."""
    year, week, _ = now.isocalendar()
    with engine.begin() as conn:
        result = conn.execute(
            insert_ignoring_conflicts(conn, DL).values(
                cohort_id=cohort_id, week=f"{year}-W{week:02d}", sent_at=now
            )
        )
        return bool(result.rowcount)
