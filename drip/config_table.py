"""The table of settings: each one's variable, default, parser, meaning and fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drip.config_values import (
    _actor,
    _address,
    _auto_or_positive_int,
    _base_url,
    _database_url,
    _domain,
    _domain_names,
    _from,
    _imap_url,
    _mail_url,
    _non_negative_float,
    _optional_secret,
    _optional_url,
    _path,
    _port,
    _positive_float,
    _positive_int,
    _reply_to,
    _secret,
    _url,
)

DEFAULT_SENDER_NAME = "Drip Lessons"


@dataclass(frozen=True)
class Setting:
    """One setting: its name, default, parser, help line and whether it is secret."""

    name: str
    default: str
    parse: Callable[[str], Any]
    help: str
    fix: str
    secret: bool = False

    @property
    def env(self) -> str:
        return "DRIP_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "sqlite:///drip.db",
        _database_url,
        "Database URL (SQLite file or PostgreSQL).",
        "use sqlite:///drip.db or postgresql://user@host/db",
        secret=True,  # it may hold the database password
    ),
    Setting(
        "mail_url",
        "outbox:outbox",
        _mail_url,
        "Where mail goes: outbox:FOLDER, smtp://user:pass@host:587 (STARTTLS), smtps://host:465.",
        "use outbox:outbox or smtp://user:pass@host:587",
        secret=True,
    ),
    Setting(
        "from",
        f"{DEFAULT_SENDER_NAME} <lessons@drip.localhost>",
        _from,
        f'Sender address and display name (a bare address is shown as "{DEFAULT_SENDER_NAME}").',
        'use "Name <address@example.com>"',
    ),
    Setting(
        "reply_to",
        "",
        _reply_to,
        "Where replies and out-of-office answers go (default: the sender).",
        'use "Training team <training@example.com>"',
    ),
    Setting(
        "special_use_domains",
        "",
        _domain_names,
        "Special-use domains accepted in addresses, like local,test (* for all; default none).",
        "use a list like local,test",
    ),
    Setting(
        "base_url",
        "http://127.0.0.1:8080",
        _base_url,
        "Public base URL of the tracking web endpoint, used in every link.",
        "use https://learn.example.com",
    ),
    Setting(
        "secret_key",
        "",
        _secret,
        "Key that signs link tokens (drip init writes one to drip.toml).",
        "run drip init, or set 16+ random characters",
        secret=True,
    ),
    Setting(
        "secret_key_previous",
        "",
        _optional_secret,
        "The key used before DRIP_SECRET_KEY, during a rotation: links and return addresses it "
        "signed still work; it never signs.",
        "set it to the old DRIP_SECRET_KEY, or leave it empty",
        secret=True,
    ),
    Setting(
        "lessons_dir",
        "",
        _path,
        "Folder of courses; default ./lessons if it exists, else the packaged ones.",
        "name an existing folder",
    ),
    Setting(
        "templates_dir",
        "",
        _path,
        "Folder of templates; default ./templates if it exists, else the packaged ones.",
        "name an existing folder",
    ),
    Setting(
        "tick_seconds",
        "30",
        _positive_float,
        "Seconds between dispatcher passes in drip run.",
        "use a number like 30",
    ),
    Setting(
        "batch_size",
        "200",
        _positive_int,
        "Enrollments claimed per batch.",
        "use a whole number like 200",
    ),
    Setting(
        "lease_seconds",
        "300",
        _positive_float,
        "How long a claim holds before another worker may take it.",
        "use a number like 300",
    ),
    Setting(
        "retry_lifetime_hours",
        "72",
        _positive_float,
        "Give up on a temporarily failing delivery after this many hours.",
        "use a number like 72",
    ),
    Setting(
        "smtp_timeout",
        "30",
        _positive_float,
        "Seconds to wait for each SMTP command.",
        "use a number like 30",
    ),
    Setting(
        "smtp_connections",
        "4",
        _positive_int,
        "SMTP connections each worker keeps open, each pipelined when the relay offers it.",
        "use a whole number like 4",
    ),
    Setting(
        "send_window",
        "auto",
        _auto_or_positive_int,
        "Messages a worker may send before recording what the relay said about earlier ones "
        "(at most this many are sent twice after a crash); auto: 4 x DRIP_SMTP_CONNECTIONS.",
        "use a whole number like 16, or auto",
    ),
    Setting(
        "smtp_connect_tries",
        "2",
        _positive_int,
        "Failed connections (connect, greeting, TLS) before a pass gives up on the relay; a "
        "failed login gives up at once.",
        "use a whole number like 2",
    ),
    Setting(
        "smtp_max_per_second",
        "0",
        _non_negative_float,
        "Messages per second per worker (0: no limit).",
        "use 0 or a number like 10",
    ),
    Setting(
        "smtp_max_per_second_total",
        "0",
        _non_negative_float,
        "Messages per second across all workers sharing the database (0: no limit).",
        "use 0 or a number like 50",
    ),
    Setting(
        "heartbeat_file",
        "",
        _path,
        "File drip run writes after each pass, read by drip healthcheck; default drip-heartbeat in the temp folder.",
        "name a file in a writable folder",
    ),
    Setting(
        "web_host",
        "127.0.0.1",
        _url,
        "Address the web endpoint listens on.",
        "use 127.0.0.1 or 0.0.0.0",
    ),
    Setting(
        "web_port",
        "8080",
        _port,
        "Port the web endpoint listens on.",
        "use a port like 8080",
    ),
    Setting(
        "xapi_endpoint",
        "",
        _optional_url,
        "Learning record store's xAPI endpoint (statements go to ENDPOINT/statements); empty: off.",
        "use the LRS's xAPI base URL, like https://lrs.example.com/xAPI",
    ),
    Setting(
        "xapi_username",
        "",
        str.strip,
        "User name for the LRS (HTTP basic auth).",
        "use the LRS key or user name",
    ),
    Setting(
        "xapi_password",
        "",
        str,
        "Password for the LRS (HTTP basic auth).",
        "use the LRS secret or password",
        secret=True,
    ),
    Setting(
        "xapi_actor",
        "mbox",
        _actor,
        "Who a statement names: mbox (mailto: e-mail) or account (the HR id, no e-mail).",
        "use mbox or account",
    ),
    Setting(
        "xapi_account_attribute",
        "employee_id",
        str.strip,
        "Person attribute holding the HR employee id, for DRIP_XAPI_ACTOR=account.",
        "name a person attribute, like employee_id",
    ),
    Setting(
        "xapi_activity_base",
        "",
        _optional_url,
        "Base IRI of lesson and course activity ids; empty: DRIP_BASE_URL/xapi.",
        "use a stable URL like https://learn.example.com/xapi",
    ),
    Setting(
        "webhook_url",
        "",
        _optional_url,
        "Where signed event webhooks are POSTed; empty: off.",
        "use an https URL like https://hr.example.com/hooks/drip",
        secret=True,  # an incoming webhook's path may be its key (Slack's, Teams')
    ),
    Setting(
        "webhook_secret",
        "",
        _optional_secret,
        "Key that signs webhooks (Drip-Signature); needed with DRIP_WEBHOOK_URL.",
        "set 16+ random characters and give the receiver the same",
        secret=True,
    ),
)


INBOUND_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "bounce_domain",
        "",
        _domain,
        "Domain of the per-delivery return addresses (VERP); empty: the From address is the envelope sender.",
        "use a domain whose MX reaches drip inbound serve, like bounce.example.com",
    ),
    Setting(
        "reply_address",
        "",
        _address,
        "drip's own address for replies (default reply@ the bounce domain).",
        "use an address like reply@bounce.example.com",
    ),
    Setting(
        "coach_address",
        "",
        _address,
        "Where people's replies to lessons are forwarded (a coach or facilitator).",
        "use an address like coach@example.com",
    ),
    Setting(
        "soft_bounce_limit",
        "3",
        _positive_int,
        "Soft bounces in a row after which an address counts as bounced.",
        "use a whole number like 3",
    ),
    Setting(
        "inbound_host",
        "127.0.0.1",
        _url,
        "Address drip inbound serve listens on.",
        "use 127.0.0.1 or 0.0.0.0",
    ),
    Setting(
        "inbound_port",
        "2525",
        _port,
        "Port drip inbound serve listens on.",
        "use a port like 2525",
    ),
    Setting(
        "imap_url",
        "",
        _imap_url,
        "Mailbox drip inbound poll reads: imaps://user:pass@host/INBOX (imap:// uses STARTTLS if offered).",
        "use imaps://user:pass@imap.example.com/INBOX",
        secret=True,
    ),
    Setting(
        "dkim_key",
        "",
        _path,
        "PEM file of the DKIM private key; set it to sign every lesson (opt-in).",
        "name a PEM file holding an RSA private key",
    ),
    Setting(
        "dkim_selector",
        "drip",
        _url,
        "DKIM selector: the key is published at SELECTOR._domainkey.DOMAIN.",
        "use a selector like drip",
    ),
    Setting(
        "dkim_domain",
        "",
        _domain,
        "DKIM signing domain (default: the From address's domain).",
        "use the From domain, like example.com",
    ),
    Setting(
        "postmark_webhook_auth",
        "",
        _url,
        "user:password that Postmark's bounce webhook sends (HTTP Basic).",
        "use a user:password pair of 16+ random characters",
        secret=True,
    ),
    Setting(
        "sendgrid_webhook_key",
        "",
        _url,
        "SendGrid's Signed Event Webhook verification key (base64 public key).",
        "paste the verification key from SendGrid's Mail Settings",
        secret=True,
    ),
    Setting(
        "mailgun_signing_key",
        "",
        _url,
        "Mailgun's HTTP webhook signing key.",
        "paste the webhook signing key from Mailgun's settings",
        secret=True,
    ),
    Setting(
        "ses_topic_arn",
        "",
        _url,
        "The SNS topic ARN whose SES notifications drip accepts.",
        "use arn:aws:sns:REGION:ACCOUNT:TOPIC",
    ),
)


SETTINGS = SETTINGS + INBOUND_SETTINGS
