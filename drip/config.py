"""Settings from DRIP_* environment variables over drip.toml over defaults, read when called."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drip.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = "drip.toml"


def _url(value: str) -> str:
    return value.strip()


def _database_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")):
        raise ValueError("not a database URL like sqlite:///drip.db or postgresql://host/db")
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"\\]")


def _plain_url(value: str) -> str:
    """A URL with nothing that could change its meaning on the way: urlsplit silently drops
    CR, LF and tabs (so "host\r\n@other" connects elsewhere), and an angle bracket or a space
    would end the URL inside a header like List-Unsubscribe."""
    value = value.strip()
    bad = URL_FORBIDDEN.search(value)
    if bad:
        raise ValueError(
            f"holds {bad.group()!r} at position {bad.start() + 1}; a URL has no spaces, line "
            "breaks, quotes or angle brackets (percent-encode them in a password)"
        )
    return value


def _mail_url(value: str) -> str:
    value = _plain_url(value)
    if value.startswith("outbox:"):
        if not value[len("outbox:") :]:
            raise ValueError("outbox needs a folder, like outbox:outbox")
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(
            "not a mail URL like outbox:outbox, smtp://user:pass@host:587 or smtps://host:465"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("the port is not a number between 1 and 65535") from None
    return value


def _from(value: str) -> str:
    from drip.addresses import check_address  # the one address check (imports only errors)

    value = value.strip()
    name, addr = parseaddr(value)
    bare = "<" not in value and value == addr
    if (
        not addr
        or not (bare or value.endswith(">"))
        or any(c in value for c in "\r\n\x00")
        or "=?" in value
    ):
        raise ValueError('not a sender like "Drip Lessons <lessons@example.com>" (ASCII address)')
    # A sender on a special-use domain (drip.localhost, a .local relay) is the operator's choice.
    try:
        checked = check_address(addr, special_use="*")
    except ValueError:
        raise ValueError(
            'not a sender like "Drip Lessons <lessons@example.com>" (ASCII address)'
        ) from None
    if checked != addr.lower() or not addr.isascii():
        raise ValueError(
            f'not a sender like "Drip Lessons <lessons@example.com>": write the address in ASCII, {checked}'
        )
    return value


def _reply_to(value: str) -> str:
    value = value.strip()
    return _from(value) if value else ""


def _domain_names(value: str) -> str:
    from drip.addresses import SPECIAL_USE

    names = frozenset(n.strip().lower().lstrip(".") for n in value.split(",") if n.strip())
    unknown = sorted(names - set(SPECIAL_USE) - {"*"})
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not a special-use domain ({', '.join(SPECIAL_USE)})")
    return ",".join(sorted(names))


def _base_url(value: str) -> str:
    value = _plain_url(value).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not a public base URL like https://learn.example.com")
    return value


MAX_NUMBER = 1_000_000_000
DEFAULT_SENDER_NAME = "Drip Lessons"


def _finite(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise ValueError("must be an ordinary number")
    return number


def _positive_float(value: str) -> float:
    number = _finite(value)
    if number <= 0:
        raise ValueError("must be a number greater than 0")
    return number


def _non_negative_float(value: str) -> float:
    number = _finite(value)
    if number < 0:
        raise ValueError("must be 0 (no limit) or a positive number")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError("must be a port between 1 and 65535")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0 or number > MAX_NUMBER:
        raise ValueError("must be a whole number greater than 0")
    return number


def _path(value: str) -> str:
    return value.strip()


def _optional_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL like https://lrs.example.com/xAPI")
    return value


def _actor(value: str) -> str:
    value = value.strip().lower()
    if value not in ("mbox", "account"):
        raise ValueError("must be mbox (the e-mail address) or account (an HR id, no e-mail)")
    return value


def _secret(value: str) -> str:
    if len(value) < 16:
        raise ValueError("is too short: use at least 16 random characters (drip init writes one)")
    return value


def _optional_secret(value: str) -> str:
    return _secret(value) if value else ""


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
        "The key used before DRIP_SECRET_KEY, during a rotation: links it signed still work; it never signs.",
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
        "8",
        _positive_int,
        "Messages a worker may send before recording what the relay said about earlier ones "
        "(at most this many are sent twice after a crash).",
        "use a whole number like 8",
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


DOMAIN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def _domain(value: str) -> str:
    value = value.strip().lower().rstrip(".")
    if value and not DOMAIN.match(value):
        raise ValueError("not a domain name like bounce.example.com")
    return value


def _address(value: str) -> str:
    from drip.addresses import check_address  # the one address check

    value = value.strip()
    if not value:
        return ""
    try:
        return check_address(value, special_use="*")
    except ValueError:
        raise ValueError("not a plain e-mail address like coach@example.com") from None


def _imap_url(value: str) -> str:
    value = value.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("not a mailbox URL like imaps://user:pass@imap.example.com/INBOX")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("the port is not a number between 1 and 65535") from None
    return value


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


@dataclass(frozen=True)
class Settings:
    """The effective settings; build with load_settings()."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        shown = {s.name: (mask(s, self.values[s.name])) for s in SETTINGS}
        return f"Settings({shown})"

    @property
    def sender(self) -> str:
        """The From header: DRIP_FROM, with the default display name when it has none."""
        value = str(self.values["from"])
        name, address = parseaddr(value)
        return value if name else f"{DEFAULT_SENDER_NAME} <{address}>"

    @property
    def reply_to(self) -> str:
        """The Reply-To header: DRIP_REPLY_TO, else the sender."""
        return str(self.values.get("reply_to") or "") or self.sender

    @property
    def activity_base(self) -> str:
        """The base IRI of xAPI activity ids."""
        return str(self.values["xapi_activity_base"] or self.values["base_url"] + "/xapi")

    @property
    def heartbeat_path(self) -> Path:
        configured = str(self.values.get("heartbeat_file", ""))
        return (
            Path(configured).expanduser()
            if configured
            else Path(tempfile.gettempdir()) / "drip-heartbeat"
        )

    @property
    def reply_to_address(self) -> str:
        """drip's own reply address: the configured one, else reply@ the bounce domain."""
        configured = str(self.values.get("reply_address", ""))
        domain = str(self.values.get("bounce_domain", ""))
        return configured or (f"reply@{domain}" if domain else "")

    @property
    def special_use(self) -> frozenset[str]:
        """The special-use domains (local, test...) accepted in addresses."""
        return frozenset(n for n in str(self.values["special_use_domains"]).split(",") if n)

    @property
    def lessons_path(self) -> Path:
        return resource_dir(self.values["lessons_dir"], "lessons")

    @property
    def templates_path(self) -> Path:
        return resource_dir(self.values["templates_dir"], "templates")

    def replace(self, **changes: Any) -> Settings:
        values = dict(self.values)
        values.update(changes)
        return Settings(values, self.sources, self.config_file)


def mask(setting: Setting, value: Any) -> str:
    """Return the value as text with any secret hidden."""
    text = str(value)
    if not setting.secret or not text:
        return text
    if setting.name in ("mail_url", "database_url", "imap_url"):
        # Hide the password of any user:password@ in a URL, whatever its form.
        return re.sub(r"(?<=:)[^:/@]*(?=@)", "****", text) if "@" in text else text
    return "****"


def resource_dir(configured: str, name: str) -> Path:
    """Find the templates or lessons folder: configured, ./NAME, the package's, or the checkout's."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"DRIP_{name.upper()}_DIR has value '{configured}': no such folder; name an existing folder"
            )
        return path
    packaged = [PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name]
    local = Path.cwd() / name
    if local.is_dir():
        if local.resolve() not in {p.resolve() for p in packaged} and any(
            p.is_dir() for p in packaged
        ):
            _warn_once(
                f"using ./{name} ({local}) instead of the packaged {name}; set "
                f"DRIP_{name.upper()}_DIR to say which folder you mean"
            )
        return local
    for candidate in packaged:
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"no {name} folder found; set DRIP_{name.upper()}_DIR")


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read drip.toml, naming the file and line on a syntax error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    known = {s.name for s in SETTINGS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting '{unknown[0]}'; known settings are: {', '.join(sorted(known))}"
        )
    return data


def load_settings(
    env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    """Read the settings now from the environment, drip.toml and the defaults."""
    env = os.environ if env is None else env
    if config_path is None:
        named = env.get("DRIP_CONFIG")
        if named and not Path(named).is_file():
            raise ConfigError(
                f"DRIP_CONFIG has value '{named}': no such file; name an existing drip.toml"
            )
        config_path = Path(named or CONFIG_FILE)
    file_values = read_config_file(config_path) if config_path.is_file() else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.env in env:
            raw, source, where = env[setting.env], "env", setting.env
        elif setting.name in file_values:
            raw, source, where = (
                str(file_values[setting.name]),
                "file",
                f"{config_path}: {setting.name}",
            )
        else:
            raw, source, where = setting.default, "default", setting.env
        if setting.name == "secret_key" and raw == "":
            values[setting.name] = ""
            sources[setting.name] = source
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            shown = mask(setting, raw)
            reason = str(exc)
            if reason.startswith(("could not convert", "invalid literal")):
                reason = "not a number"
            raise ConfigError(f"{where} has value '{shown}': {reason}; {setting.fix}") from None
        sources[setting.name] = source
    return Settings(values, sources, config_path if config_path.is_file() else None)


def warnings(settings: Settings) -> list[str]:
    """What is allowed but probably wrong in the settings, as sentences that say the fix."""
    found = []
    parts = urlsplit(str(settings.values["base_url"]))
    if parts.scheme == "http" and not _loopback(parts.hostname or ""):
        found.append(
            f"DRIP_BASE_URL has value '{settings.values['base_url']}': plain http outside this "
            "machine lets anyone on the way read and change the links in every lesson; "
            "use https://"
        )
    return found


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def verifying_keys(settings: Settings) -> tuple[str, ...]:
    """The keys a link token may be signed with: the current one, then the previous one."""
    previous = str(settings.values.get("secret_key_previous", ""))
    return (require_secret(settings), *((previous,) if previous else ()))


def require_secret(settings: Settings) -> str:
    """Return the signing key or say how to make one."""
    key = settings.values.get("secret_key", "")
    if not key:
        raise ConfigError("DRIP_SECRET_KEY is not set; run `drip init` to write one to drip.toml")
    return str(key)


def setting_names() -> list[str]:
    """Return every DRIP_* variable name drip reads."""
    return [s.env for s in SETTINGS] + ["DRIP_CONFIG"]
