"""The one way a lesson e-mail is built, for the dispatcher, `send-test` and `lessons preview`:
render and inline once per lesson version, fold the MIME once, then fill one recipient's values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from functools import cached_property

from drip.curriculum.model import Course, Lesson
from drip.mail.dkim import DkimSigner
from drip.mail.message import MessageTemplate
from drip.mail.render import NO_EXTRAS, Extras, Renderer, recipient_keys, review_options
from drip.tokens import link_values, return_address


@dataclass(frozen=True)
class Recipient:
    """Who a message goes to and the delivery that fixes its Message-ID and Date."""

    delivery_id: int
    address: str
    name: str
    date: datetime
    message_id: str


@dataclass
class LessonMail:
    """Builds lesson messages from a renderer, a sender and the signing key of the links."""

    renderer: Renderer
    sender: str
    base_url: str
    secret: str
    reply_to: str = ""
    bounce_domain: str = ""  # set: each delivery gets its own signed envelope sender (VERP)
    dkim: DkimSigner | None = None
    _templates: dict[int, MessageTemplate] = field(default_factory=dict)

    def template(
        self, course: Course, lesson: Lesson, extras: Extras = NO_EXTRAS
    ) -> MessageTemplate:
        """The lesson's folded message, built once per rendered variant."""
        rendered = self.renderer.render(course, lesson, extras)
        template = self._templates.get(id(rendered))
        if template is None or template.rendered is not rendered:
            template = MessageTemplate.of(rendered, self.sender, self.reply_to)
            self._templates[id(rendered)] = template
        return template

    @cached_property
    def envelope_from(self) -> str:
        """The SMTP MAIL FROM of every lesson without a bounce domain: the From address."""
        return parseaddr(self.sender)[1]

    def values(self, template: MessageTemplate, recipient: Recipient) -> dict[str, str]:
        """The per-recipient values of a message: signed links and the greeting name."""
        lesson = template.rendered.lesson
        options = len(lesson.check.options) if lesson.check else 0
        values = link_values(
            self.base_url,
            self.secret,
            recipient.delivery_id,
            options,
            len(template.rendered.links),
            review_options(template.rendered.extras),
        )
        values["NAME"] = first_name(recipient.name) or "there"
        return values

    def build(
        self, course: Course, lesson: Lesson, recipient: Recipient, extras: Extras = NO_EXTRAS
    ) -> bytes:
        """The message bytes for one recipient; raises DripError when they cannot be built."""
        template = self.template(course, lesson, extras)
        data = template.build(
            to_name=recipient.name,
            to_address=recipient.address,
            date=recipient.date,
            message_id=recipient.message_id,
            values=self.values(template, recipient),
        )
        return self.dkim.sign(data, recipient.date) if self.dkim else data

    def return_path(self, delivery_id: int, default: str) -> str:
        """The SMTP MAIL FROM of one delivery: its signed return address on the bounce domain,
        or `default` (the From address) when no bounce domain is configured."""
        if self.bounce_domain and delivery_id:
            return return_address(self.secret, delivery_id, self.bounce_domain)
        return default

    def preview(
        self, course: Course, lesson: Lesson, name: str, extras: Extras = NO_EXTRAS
    ) -> tuple[str, str]:
        """(html, text) of a lesson as a reader sees it, with links that point nowhere."""
        rendered = self.renderer.render(course, lesson, extras)
        values = {key: f"{self.base_url}/preview#{key.lower()}" for key in recipient_keys(rendered)}
        values["NAME"] = name
        return rendered.personalize(values)


def first_name(name: str) -> str:
    """The name to greet someone by: "Smith, John" -> "John", "Dr. Ada Lovelace" -> "Ada"."""
    name = " ".join(name.split())
    if "," in name:
        last, _, rest = name.partition(",")
        name = rest.strip() or last.strip()
    words = [w for w in name.split() if w.rstrip(".").lower() not in TITLES]
    return words[0] if words else ""


TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady"}
