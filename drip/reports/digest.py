"""The weekly digest: each cohort's figures mailed to its manager with the HTML report attached."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from drip.config import Settings
from drip.db import insert_ignoring_conflicts
from drip.errors import DripError, HeaderError
from drip.mail.message import check_header_value, sender_domain
from drip.mail.transports import Transport
from drip.models import COHORT as C
from drip.models import DIGEST_LOG as DL
from drip.reports.html import render_html
from drip.reports.queries import CohortReport, cohort_report

log = logging.getLogger("drip.reports.digest")

BEHIND_NAMED = 10


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


def digest_text(report: CohortReport) -> str:
    """The plain-text figures at the top of the digest."""
    s = report.summary
    behind = [p.email for p in report.behind]
    named = ", ".join(behind[:BEHIND_NAMED]) + (
        f" and {len(behind) - BEHIND_NAMED} more" if len(behind) > BEHIND_NAMED else ""
    )
    return "\n".join(
        [
            f"Weekly progress of {s.cohort} ({s.course_title}), {report.generated_at:%d %B %Y}.",
            "",
            f"Enrolled: {s.enrolled} ({s.active} active, {s.paused} paused, {s.completed} completed,"
            f" {s.unsubscribed} unsubscribed, {s.bounced} bounced)",
            f"Lessons sent: {s.lessons_sent}",
            f"Opened by a person: {s.open_rate_human:.0%}"
            f" ({s.open_rate_all:.0%} counting machine opens)",
            f'"Got it" confirmations: {s.confirmed}',
            f"Checks answered right: {s.answered_right} of {s.answered}",
            f"Average progress: {s.average_progress:.0%} of {s.course_lessons} lessons",
            f"On track: {s.on_track}",
            f"Behind: {s.behind}" + (f" ({named})" if behind else ""),
            "",
            "The attached report has the charts, the lesson funnel and everyone's progress.",
            "",
        ]
    )


def build_digest(
    engine: Engine, settings: Settings, cohort_name: str, now: datetime, recipient: str = ""
) -> EmailMessage:
    """The digest message of one cohort; raise HeaderError on a line break in any header."""
    report = cohort_report(engine, cohort_name, settings.lessons_path, now)
    s = report.summary
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = _header("From", settings.sender)
    if recipient:
        message["To"] = _header("To", recipient)
    subject = (
        f"{s.cohort}: weekly progress, {s.open_rate_human:.0%} of lessons opened, {s.behind} behind"
    )
    message["Subject"] = _header("Subject", subject)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid("digest", domain=sender_domain(settings.sender))
    message.set_content(digest_text(report))
    message.add_attachment(
        render_html(report, settings.templates_path).encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=_filename(s.cohort, now),
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
