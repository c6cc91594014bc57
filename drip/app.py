"""Wire settings to real collaborators (engine, transport, renderer, catalog) for the entry points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from drip.config import Settings, require_secret
from drip.curriculum.load import Catalog
from drip.db import check_schema, make_engine
from drip.mail.build import LessonMail
from drip.mail.limits import SharedRateLimit, SharedRateLimited
from drip.mail.render import Renderer
from drip.mail.transports import Transport, open_transport
from drip.sending.run import Dispatcher


@dataclass
class App:
    """The settings and the long-lived objects built from them."""

    settings: Settings
    engine: Engine

    @classmethod
    def open(cls, settings: Settings, *, check: bool = True) -> App:
        engine = make_engine(settings.database_url)
        if check:
            check_schema(engine)
        return cls(settings, engine)

    def transport(self) -> Transport:
        s = self.settings
        transport = open_transport(s.mail_url, s.smtp_timeout, s.smtp_max_per_second)
        if s.smtp_max_per_second_total > 0:
            limit = SharedRateLimit(self.engine, s.smtp_max_per_second_total)
            transport = SharedRateLimited(transport, limit)
        return transport

    def renderer(self) -> Renderer:
        return Renderer(self.settings.templates_path)

    def lesson_mail(self, secret: str | None = None) -> LessonMail:
        s = self.settings
        return LessonMail(
            self.renderer(), s.sender, s.base_url, secret or require_secret(s), s.reply_to
        )

    def dispatcher(self, transport: Transport | None = None) -> Dispatcher:
        s = self.settings
        return Dispatcher(
            engine=self.engine,
            transport=transport or self.transport(),
            mail=self.lesson_mail(),
            catalog=Catalog(s.lessons_path),
            batch_size=s.batch_size,
            lease=timedelta(seconds=s.lease_seconds),
            retry_lifetime=timedelta(hours=s.retry_lifetime_hours),
        )
