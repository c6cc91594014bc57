"""Wire settings to real collaborators (engine, transport, renderer, catalog) for the entry points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from drip.config import Settings, require_secret
from drip.curriculum.load import Catalog
from drip.db import check_schema, make_engine
from drip.errors import ConfigError
from drip.mail.build import LessonMail
from drip.mail.dkim import dkim_signer
from drip.mail.limits import SharedRateLimit, SharedRateLimited
from drip.mail.notes import NoteMail
from drip.mail.render import Renderer
from drip.mail.transports import Transport, open_transport
from drip.outbound.outbox import Target
from drip.outgoing import OutboxConfig, enable, namespace_for
from drip.sending.run import Dispatcher


def outbox_config(settings: Settings) -> OutboxConfig | None:
    """The outbox targets the settings turn on (xAPI, webhooks), or None."""
    targets = tuple(
        name
        for name, on in (("xapi", settings.xapi_endpoint), ("webhook", settings.webhook_url))
        if on
    )
    if not targets:
        return None
    if settings.webhook_url and not settings.webhook_secret:
        raise ConfigError(
            "DRIP_WEBHOOK_URL is set but DRIP_WEBHOOK_SECRET is empty; set 16+ random characters "
            "and give the receiver the same"
        )
    return OutboxConfig(targets, namespace_for(settings.activity_base))


@dataclass
class App:
    """The settings and the long-lived objects built from them."""

    settings: Settings
    engine: Engine

    @classmethod
    def open(cls, settings: Settings, *, check: bool = True) -> App:
        engine = enable(make_engine(settings.database_url), outbox_config(settings))
        if check:
            check_schema(engine)
        return cls(settings, engine)

    def transport(self) -> Transport:
        s = self.settings
        transport = open_transport(
            s.mail_url,
            s.smtp_timeout,
            s.smtp_max_per_second,
            connections=s.smtp_connections,
            connect_tries=s.smtp_connect_tries,
        )
        if s.smtp_max_per_second_total > 0:
            limit = SharedRateLimit(self.engine, s.smtp_max_per_second_total)
            transport = SharedRateLimited(transport, limit)
        return transport

    def renderer(self) -> Renderer:
        return Renderer(self.settings.templates_path)

    def lesson_mail(self, secret: str | None = None) -> LessonMail:
        s = self.settings
        return LessonMail(
            self.renderer(),
            s.sender,
            s.base_url,
            secret or require_secret(s),
            s.reply_to,
            bounce_domain=s.bounce_domain,
            dkim=dkim_signer(s),
        )

    def note_mail(self, secret: str | None = None) -> NoteMail:
        s = self.settings
        return NoteMail(
            s.templates_path, s.sender, s.base_url, secret or require_secret(s), dkim=dkim_signer(s)
        )

    def dispatcher(self, transport: Transport | None = None) -> Dispatcher:
        s = self.settings
        return Dispatcher(
            engine=self.engine,
            transport=transport or self.transport(),
            mail=self.lesson_mail(),
            notes=self.note_mail(),
            catalog=Catalog(s.lessons_path),
            batch_size=s.batch_size,
            lease=timedelta(seconds=s.lease_seconds),
            retry_lifetime=timedelta(hours=s.retry_lifetime_hours),
            window=s.window,
        )

    def outbox_targets(self) -> list[Target]:
        """The configured places events go besides mail, in the order they are pushed."""
        from drip.outbound.webhooks import WebhookTarget
        from drip.outbound.xapi import Identity, XapiTarget

        s = self.settings
        config = outbox_config(s)
        if config is None:
            return []
        targets: list[Target] = []
        if s.xapi_endpoint:
            identity = Identity(s.activity_base, s.xapi_actor, s.xapi_account_attribute)
            targets.append(
                XapiTarget(
                    s.xapi_endpoint, identity, config.namespace, s.xapi_username, s.xapi_password
                )  # fmt: skip
            )
        if s.webhook_url:
            targets.append(WebhookTarget(s.webhook_url, s.webhook_secret))
        return targets
