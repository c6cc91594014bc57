"""Settings from DRIP_* environment variables over drip.toml over defaults, read when called."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from drip.config_table import DEFAULT_SENDER_NAME, SETTINGS, Setting
from drip.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_FILE = "drip.toml"


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
    def window(self) -> int:
        """DRIP_SEND_WINDOW, or with auto four steps of one message per connection: every
        connection always has its next message, and a commit records a dozen at a time."""
        return int(self.values["send_window"]) or 4 * int(self.values["smtp_connections"])

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
    if setting.name == "webhook_url":
        # Slack's and Teams' incoming webhooks are secret paths: show only where they go.
        parts = urlsplit(text)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}/****"
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
