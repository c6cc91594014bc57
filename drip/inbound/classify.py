"""What a message that came back is: a hard or soft bounce, a complaint, an auto-reply or a person.

RFC 5965 feedback reports and RFC 3464 delivery reports are read with the stdlib `email` parser;
the many older bounce formats (qmail, Exim, Yahoo...) with flufl.bounce, Mailman's detectors.
Pure: bytes and today's date in, a Finding out."""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from datetime import date
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from drip.inbound.dates import return_date

log = logging.getLogger("drip.inbound")


class Kind(enum.StrEnum):
    hard_bounce = "hard_bounce"
    soft_bounce = "soft_bounce"
    complaint = "complaint"
    auto_reply = "auto_reply"
    reply = "reply"
    unknown = "unknown"


@dataclass(frozen=True)
class Finding:
    """What classify made of one message."""

    kind: Kind
    reason: str = ""
    status: str = ""  # the enhanced status code of a bounce, like 5.1.1
    recipients: tuple[str, ...] = ()  # the failed or complaining addresses the message names
    message_ids: tuple[str, ...] = ()  # Message-IDs of the mail it answers or returns
    until: date | None = None  # an out-of-office's return date
    sender: str = ""  # the From address
    subject: str = ""
    text: str = ""  # a reply's words, for the coach


MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")
QUOTED_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s@]+@[^<>\s]+>)", re.I | re.M)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE = re.compile(r"\b([45])\d\d[ -]")
DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|mdaemon)@", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed)|"
    r"failure notice|mail delivery (failed|failure|system|subsystem)|returned mail|"
    r"could not be delivered|unzustellbar|non remis|non distribuable",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|out of (the )?office|"
    r"away from (the )?office|on vacation|abwesenheit|automatische antwort|"
    r"r[ée]ponse automatique|absence|respuesta autom[áa]tica|risposta automatica|"
    r"automatisch antwoord|afwezig)",
    re.I,
)
AUTO_BODY = re.compile(
    r"out of (the )?office|away from (the |my )?(office|desk)|on (annual )?leave|on vacation|"
    r"limited access to (my )?e-?mail|abwesend|nicht im b[üu]ro|urlaub|"
    r"absente?|en cong[ée]s?|hors du bureau",
    re.I,
)
# Hard failures a relay reports with a 4.x.x code or none: mailbox gone, domain gone.
PERMANENT_WORDS = re.compile(
    r"user unknown|no such user|mailbox unavailable|does not exist|address rejected|"
    r"no mailbox here|unknown user|recipient not found|account (has been )?disabled",
    re.I,
)


def classify(raw: bytes, today: date) -> Finding:
    """Classify one message that came back; `today` dates an out-of-office's return."""
    msg = message_from_bytes(raw, policy=policy.compat32)
    sender = parseaddr(_header(msg, "From"))[1].lower()
    subject = _header(msg, "Subject")
    report = _report_type(msg)
    if report == "feedback-report":
        return _feedback(msg, sender, subject)
    if report == "delivery-status":
        found = _delivery_status(msg, sender, subject)
        if found is not None:
            return found
    if _is_auto_reply(msg, sender, subject):
        text = _body_text(msg)
        until = return_date(f"{subject}\n{text}", today)
        return Finding(
            Kind.auto_reply,
            reason=f"auto-reply: {subject}"[:300],
            message_ids=_answered_ids(msg),
            until=until,
            sender=sender,
            subject=subject,
        )
    if _looks_like_bounce(msg, sender, subject):
        return _legacy_bounce(msg, sender, subject)
    return Finding(
        Kind.reply,
        reason=subject[:300],
        message_ids=_answered_ids(msg),
        sender=sender,
        subject=subject,
        text=_body_text(msg),
    )


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value)))).replace("\n", " ").strip()
    except (UnicodeDecodeError, LookupError, ValueError):
        return str(value).strip()


def _report_type(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "multipart/report":
            return str(part.get_param("report-type", "")).lower()
    # Some gateways send the report parts without the multipart/report wrapper.
    types = {p.get_content_type() for p in msg.walk()}
    if "message/feedback-report" in types:
        return "feedback-report"
    if "message/delivery-status" in types:
        return "delivery-status"
    return ""


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else text
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return [
        message_from_bytes(b.encode("utf-8", "replace"), policy=policy.compat32) for b in blocks
    ]


def _address(value: str) -> str:
    """The address of a DSN or ARF field like `rfc822; Someone@Example.com`."""
    value = value.partition(";")[2] if ";" in value else value
    return parseaddr(value.strip())[1].lower() or value.strip().strip("<>").lower()


def _returned_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the returned message: its headers part, or quoted in the text."""
    found: list[str] = []
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                value = inner[0].get("Message-ID", "")
                found.extend(MESSAGE_ID.findall(str(value)))
        elif kind in ("text/rfc822-headers", "text/plain", "message/rfc822-headers"):
            found.extend(QUOTED_MESSAGE_ID.findall(_decoded(part)))
    return tuple(dict.fromkeys(found))


def _answered_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs a reply answers: In-Reply-To first, then References, newest first."""
    ids = MESSAGE_ID.findall(str(msg.get("In-Reply-To", "")))
    ids += reversed(MESSAGE_ID.findall(str(msg.get("References", ""))))
    return tuple(dict.fromkeys(ids))


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _body_text(msg: Message) -> str:
    """The first text/plain part (or the HTML one with its tags dropped), as a person wrote it."""
    html = ""
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() == "message/rfc822":
            break  # an attached original is not what the person wrote
        if part.get_content_type() == "text/plain" and not part.get_filename():
            return _decoded(part).strip()
        if part.get_content_type() == "text/html" and not html:
            html = re.sub(r"<[^>]+>", " ", _decoded(part))
    return re.sub(r"[ \t]+", " ", html).strip()


def _feedback(msg: Message, sender: str, subject: str) -> Finding:
    part = _part(msg, "message/feedback-report")
    fields = _field_blocks(part)[0] if part is not None and _field_blocks(part) else Message()
    feedback = str(fields.get("Feedback-Type", "abuse")).strip().lower()
    recipients = [_address(str(v)) for v in fields.get_all("Original-Rcpt-To", [])]
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(headers, Message) and not recipients and headers.get("To"):
                recipients.append(parseaddr(str(headers["To"]))[1].lower())
    return Finding(
        Kind.complaint,
        reason=f"complaint ({feedback}) reported by {sender or 'a feedback loop'}",
        recipients=tuple(r for r in recipients if r),
        message_ids=_returned_ids(msg),
        sender=sender,
        subject=subject,
    )


def _delivery_status(msg: Message, sender: str, subject: str) -> Finding | None:
    part = _part(msg, "message/delivery-status")
    if part is None:
        return None
    blocks = _field_blocks(part)
    failed: list[tuple[str, str, str, str]] = []  # (address, action, status, diagnostic)
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip()
        recipient = _address(
            str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
        )
        diagnostic = re.sub(r"\s+", " ", str(block.get("Diagnostic-Code", ""))).strip()
        diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        if action in ("failed", "delayed") or status[:1] in ("4", "5"):
            failed.append((recipient, action, status, diagnostic))
    if not failed:
        return None  # a "delivered" or "relayed" report: nothing to act on
    ids = _returned_ids(msg)
    hard = [f for f in failed if f[1] == "failed" and _is_permanent(f[2], f[3])]
    chosen = hard or failed
    address, action, status, diagnostic = chosen[0]
    code = STATUS.search(status)
    status = code.group(0) if code else status
    kind = Kind.hard_bounce if hard else Kind.soft_bounce
    word = "failed" if hard else ("delayed" if action == "delayed" else "failed for now")
    return Finding(
        kind,
        reason=f"{status} {diagnostic}".strip()[:300] or f"delivery {word}",
        status=status,
        recipients=tuple(f[0] for f in chosen if f[0]),
        message_ids=ids,
        sender=sender,
        subject=subject,
    )


def _is_permanent(status: str, diagnostic: str) -> bool:
    code = STATUS.search(status) or STATUS.search(diagnostic)
    if code:
        return code.group(1) == "5"
    smtp = SMTP_CODE.search(diagnostic)
    return smtp.group(1) == "5" if smtp else True


def _is_auto_reply(msg: Message, sender: str, subject: str) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        # Auto-generated bounces carry it too; they come back as reports or from a daemon.
        return not DAEMONS.match(sender)
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    if str(msg.get("X-Auto-Response-Suppress", "")).strip() and AUTO_SUBJECT.search(subject):
        return True  # Exchange's out-of-office form
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if AUTO_SUBJECT.search(subject):
        return True
    return not DAEMONS.match(sender) and bool(
        AUTO_BODY.search(_body_text(msg)[:600]) and not subject.lower().startswith(("re:", "aw:"))
    )


def _looks_like_bounce(msg: Message, sender: str, subject: str) -> bool:
    return_path = str(msg.get("Return-Path", "")).strip()
    return (
        bool(DAEMONS.match(sender))
        or return_path == "<>"
        or bool(BOUNCE_SUBJECT.search(subject))
        or bool(msg.get("X-Failed-Recipients"))
    )


def _legacy_bounce(msg: Message, sender: str, subject: str) -> Finding:
    """A bounce without a delivery report: ask flufl.bounce, then read the code in the text."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on a strange message must not stop the reader
        log.exception("flufl.bounce could not read a bounce from %s", sender)
        temporary, permanent = frozenset(), frozenset()
    text = _body_text(msg)
    failed = [_text(x) for x in permanent]
    failed += [a.strip().lower() for a in str(msg.get("X-Failed-Recipients", "")).split(",")]
    failed = [f.lower() for f in dict.fromkeys(failed) if f]
    delayed = [_text(x).lower() for x in temporary]
    code = STATUS.search(text)
    smtp = SMTP_CODE.search(text)
    status = code.group(0) if code else (f"{smtp.group(1)}.0.0" if smtp else "")
    if code:  # the enhanced status code, when there is one, decides
        hard = code.group(1) == "5" or bool(PERMANENT_WORDS.search(text))
    elif failed or PERMANENT_WORDS.search(text) or (smtp and smtp.group(1) == "5"):
        hard = True
    elif delayed or smtp:
        hard = False
    else:
        return Finding(Kind.unknown, reason=f"unreadable bounce: {subject}"[:300], sender=sender)
    line = _diagnostic_line(text)
    return Finding(
        Kind.hard_bounce if hard else Kind.soft_bounce,
        reason=(f"{status} {line}".strip() or "delivery failed")[:300],
        status=status or ("5.0.0" if hard else "4.0.0"),
        recipients=tuple(failed if hard else delayed),
        message_ids=_returned_ids(msg),
        sender=sender,
        subject=subject,
    )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _diagnostic_line(text: str) -> str:
    """The line of a bounce that says why, for the reason shown in reports."""
    for line in text.splitlines():
        if STATUS.search(line) or SMTP_CODE.search(line) or PERMANENT_WORDS.search(line):
            return re.sub(r"\s+", " ", line).strip()[:200]
    return ""
