"""The e-mails around the lessons: the welcome, a review on its own after the last lesson, the
completion with its summary and certificate, and the note of an automatic pause.

Each goes to a person once, so each is rendered for its reader (Jinja, then premailer) and built
with the standard library; the lesson e-mail's once-per-lesson splicing is not needed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import jinja2

from drip.curriculum.model import Check, Course, Lesson
from drip.errors import HeaderError, RenderError
from drip.mail.build import Recipient, first_name
from drip.mail.certificate import Certificate, certificate_pdf
from drip.mail.dkim import DkimSigner
from drip.mail.message import check_header_value, format_address
from drip.mail.render import inline_css
from drip.tokens import link_values


@dataclass(frozen=True)
class LessonResult:
    """One lesson in the completion summary: its takeaway and how the person's check went."""

    title: str
    takeaway: str
    result: str  # "right", "wrong" or "not answered"


@dataclass(frozen=True)
class Summary:
    """What the completion e-mail and the certificate say about one person."""

    cohort: str
    started: date
    finished: date
    confirmed: int
    lessons: list[LessonResult]
    open_reviews: list[str]  # the review questions still to come

    @property
    def right(self) -> int:
        return sum(1 for x in self.lessons if x.result == "right")

    @property
    def checks(self) -> int:
        return sum(1 for x in self.lessons if x.result != "no check")


@dataclass
class NoteMail:
    """Builds the welcome, review, completion and note e-mails from the templates folder."""

    templates: Path
    sender: str
    base_url: str
    secret: str
    dkim: DkimSigner | None = None  # signs every note as it signs the lessons
    _env: jinja2.Environment | None = field(default=None, repr=False)

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(self.templates)),
                autoescape=jinja2.select_autoescape(
                    enabled_extensions=("html", "html.j2"), default=False
                ),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
        return self._env

    @property
    def envelope_from(self) -> str:
        return parseaddr(self.sender)[1]

    def urls(self, recipient: Recipient, reviews: int = 0) -> dict[str, Any]:
        values = link_values(self.base_url, self.secret, recipient.delivery_id, 0, 0, reviews)
        return {
            "open": values["OPEN"],
            "pause": values["PAUSE"],
            "unsubscribe": values["UNSUBSCRIBE"],
            "schedule": values["SCHEDULE"],
            "reviews": [values[f"REVIEW-{i}"] for i in range(reviews)],
        }

    def welcome(
        self,
        course: Course,
        recipient: Recipient,
        *,
        cohort: str,
        sponsor: str,
        first_lesson: datetime,
        timezone: str,
        days: str,
    ) -> bytes:
        """The welcome: who sends it and why, when lesson 1 comes, and how to change or stop."""
        minutes = max((lesson.minutes for lesson in course.lessons), default=2)
        context = {
            "course": course,
            "cohort": cohort,
            "sponsor": sponsor,
            "first": first_lesson,
            "timezone": timezone,
            "days": days,
            "minutes": minutes,
        }
        subject = f"Welcome to {course.title}"
        return self._build("welcome", subject, recipient, context)

    def review(self, course: Course, lesson: Lesson, recipient: Recipient) -> bytes:
        """A review question of its own, after the last lesson."""
        check = _review_check(lesson)
        context = {"course": course, "lesson": lesson, "review": check}
        subject = f"Review: {lesson.title}"
        return self._build("review", subject, recipient, context, reviews=len(check.options))

    def completion(self, course: Course, recipient: Recipient, summary: Summary) -> bytes:
        """The completion: every takeaway, the person's results, what is still to review, and
        the certificate attached as a PDF."""
        context = {"course": course, "summary": summary}
        subject = f"You completed {course.title}"
        pdf = certificate_pdf(self.certificate(course, recipient, summary))
        return self._build("completion", subject, recipient, context, attachment=pdf)

    def certificate(self, course: Course, recipient: Recipient, summary: Summary) -> Certificate:
        """The certificate's facts for one person."""
        return Certificate(
            name=recipient.name,
            email=recipient.address,
            course=course.title,
            cohort=summary.cohort,
            started=summary.started,
            finished=summary.finished,
            lessons=len(summary.lessons),
            confirmed=summary.confirmed,
            checks_right=summary.right,
            checks=summary.checks,
        )

    def note(self, course: Course, recipient: Recipient, unopened: int) -> bytes:
        """The one short note after an automatic pause, with the link that resumes."""
        context = {"course": course, "unopened": unopened}
        subject = f"Your lessons are paused: {course.title}"
        return self._build("note", subject, recipient, context)

    def _build(
        self,
        name: str,
        subject: str,
        recipient: Recipient,
        context: dict[str, Any],
        *,
        reviews: int = 0,
        attachment: bytes | None = None,
    ) -> bytes:
        urls = self.urls(recipient, reviews)
        greeting = first_name(recipient.name) or "there"
        full = {**context, "urls": urls, "name": greeting, "subject": subject, "preheader": ""}
        try:
            html = inline_css(self.env.get_template(f"email/{name}.html.j2").render(**full))
            text = self.env.get_template(f"email/{name}.txt.j2").render(**full)
        except jinja2.TemplateError as exc:
            raise RenderError(f"{self.templates}/email/{name}: template error: {exc}") from None
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = check_header_value("From", self.sender)
        message["To"] = format_address(recipient.name, recipient.address)
        message["Subject"] = _plain_header("Subject", subject)
        message["Date"] = format_datetime(recipient.date)
        message["Message-ID"] = check_header_value("Message-ID", recipient.message_id)
        message["List-Unsubscribe"] = (
            f"<{check_header_value('List-Unsubscribe', urls['unsubscribe'])}>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        if attachment is not None:
            message.add_attachment(
                attachment,
                maintype="application",
                subtype="pdf",
                filename="certificate.pdf",
            )
        data = message.as_bytes()
        return self.dkim.sign(data, recipient.date) if self.dkim else data


def _plain_header(name: str, value: str) -> str:
    check_header_value(name, value)
    if "=?" in value:
        raise HeaderError(
            f"the {name} header {value!r} holds an encoded word; fix the course title"
        )
    return value


def _review_check(lesson: Lesson) -> Check:
    if lesson.check is None:
        raise RenderError(f"lesson '{lesson.slug}' has no check to review")
    return lesson.check.review or lesson.check
