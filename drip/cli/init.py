"""`drip init`, `drip migrate` and `drip config`: the database and the settings."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from drip.cli.base import DripCommand, emit, output_options, say, settings, warn_settings
from drip.config import CONFIG_FILE, Settings, load_settings, mask
from drip.config_table import SETTINGS, Setting

# -- setup ---------------------------------------------------------------------------------


@click.command("config", cls=DripCommand)
@output_options
def config_cmd(fmt: str) -> None:
    """Print the effective settings, where each comes from, with secrets masked.

    \b
    Example:
      drip config --format csv
    """
    s = settings()
    rows = [
        {
            "variable": setting.env,
            "value": shown(s, setting),
            "source": s.sources.get(setting.name, "default"),
            "meaning": setting.help,
        }
        for setting in SETTINGS
    ]
    emit(rows, fmt, title=f"drip settings (file: {s.config_file or 'none'})")
    warn_settings(s)


def shown(s: Settings, setting: Setting) -> str:
    """A setting's value as `drip config` shows it: secrets masked, auto with what it means."""
    if setting.name == "send_window" and not s.values[setting.name]:
        return f"auto ({s.window})"
    return mask(setting, s.values[setting.name]) or "(not set)"


@click.command("init", cls=DripCommand)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=CONFIG_FILE,
    show_default=True,
    help="Config file to write when missing.",
)
def init_cmd(config_path: Path) -> None:
    """Create or upgrade the database, and write drip.toml with a fresh secret key if there is none.

    \b
    Example:
      drip init
    """
    from drip.db import make_engine, migrate

    if not config_path.exists():
        config_path.write_text(
            "# drip settings; DRIP_* environment variables override these.\n"
            f'secret_key = "{secrets.token_urlsafe(32)}"\n'
            '# database_url = "sqlite:///drip.db"\n'
            '# mail_url = "outbox:outbox"\n'
            '# from = "Drip Lessons <lessons@example.com>"\n'
            '# reply_to = "Training team <training@example.com>"\n'
            '# base_url = "https://learn.example.com"\n',
            encoding="utf-8",
        )
        config_path.chmod(0o600)
        say(f"wrote {config_path} with a new secret key")
    s = load_settings(config_path=config_path)
    engine = make_engine(s.database_url)
    before, after = migrate(engine)
    say(
        f"database {engine.url.render_as_string(hide_password=True)}: "
        + (
            f"created at migration {after}"
            if before is None
            else ("already at " + after if before == after else f"upgraded {before} -> {after}")
        )
    )


@click.command("migrate", cls=DripCommand)
def migrate_cmd() -> None:
    """Upgrade the database schema in place to this version of drip.

    \b
    Example:
      drip migrate
    """
    from drip.db import make_engine, migrate

    engine = make_engine(settings().database_url)
    before, after = migrate(engine)
    say("already at " + after if before == after else f"migrated {before or 'empty'} -> {after}")
