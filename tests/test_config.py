from pathlib import Path

import pytest
from support import cli_env, make_settings, run_drip

from drip.config import load_settings, mask
from drip.config_table import SETTINGS
from drip.errors import ConfigError


def test_env_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "drip.toml"
    config.write_text('base_url = "https://file.example.com"\nbatch_size = 50\n')
    s = load_settings(env={"DRIP_BATCH_SIZE": "7"}, config_path=config)
    assert s.batch_size == 7 and s.sources["batch_size"] == "env"
    assert s.base_url == "https://file.example.com" and s.sources["base_url"] == "file"
    assert s.database_url == "sqlite:///drip.db" and s.sources["database_url"] == "default"


def test_bad_value_names_variable_value_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"DRIP_MAIL_URL": "x"}, config_path=tmp_path / "none.toml")
    assert str(info.value).startswith("DRIP_MAIL_URL has value 'x': not a mail URL")
    with pytest.raises(ConfigError, match=r"DRIP_BATCH_SIZE has value 'many': not a number"):
        load_settings(env={"DRIP_BATCH_SIZE": "many"}, config_path=tmp_path / "none.toml")


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "drip.toml"
    config.write_text('databse_url = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match="unknown setting 'databse_url'"):
        load_settings(env={}, config_path=config)


def test_postgres_urls_use_psycopg(tmp_path: Path) -> None:
    s = load_settings(
        env={"DRIP_DATABASE_URL": "postgres://u@h/db"}, config_path=tmp_path / "n.toml"
    )
    assert s.database_url == "postgresql+psycopg://u@h/db"


def test_secrets_are_masked(tmp_path: Path) -> None:
    s = make_settings(tmp_path, mail_url="smtp://user:hunter2@mail.example.com:587")
    assert "hunter2" not in repr(s)
    assert "test-secret-key" not in repr(s)
    by_name = {x.name: x for x in SETTINGS}
    assert mask(by_name["mail_url"], s.mail_url) == "smtp://user:****@mail.example.com:587"


def test_drip_config_command_masks_secrets(tmp_path: Path) -> None:
    s = make_settings(tmp_path, mail_url="smtp://user:hunter2@mail.example.com:587")
    result = run_drip(["config", "--format", "json"], cli_env(s))
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "test-secret-key" not in result.stdout
    assert "DRIP_MAIL_URL" in result.stdout and "****" in result.stdout


def test_a_webhook_url_shows_only_where_it_goes(tmp_path: Path) -> None:
    hook = "https://hooks.slack.com:8443/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"
    s = make_settings(tmp_path, webhook_url=hook, webhook_secret="0123456789abcdef")
    result = run_drip(["config", "--format", "json"], cli_env(s))
    assert result.returncode == 0, result.stderr
    assert "XXXXXXXX" not in result.stdout and "T0001" not in result.stdout
    assert "https://hooks.slack.com:8443/****" in result.stdout
    assert s.webhook_url == hook  # what drip posts to is the whole URL


def test_the_send_window_follows_the_connections_unless_set(tmp_path: Path) -> None:
    import json

    assert make_settings(tmp_path).window == 16  # auto: four messages per connection (4)
    assert make_settings(tmp_path, smtp_connections="10").window == 40
    assert make_settings(tmp_path, smtp_connections="10", send_window="8").window == 8
    with pytest.raises(ConfigError, match="DRIP_SEND_WINDOW has value 'some'.*or auto"):
        make_settings(tmp_path, send_window="some")
    shown = run_drip(["config", "--format", "json"], cli_env(make_settings(tmp_path)))
    rows = {row["variable"]: row["value"] for row in json.loads(shown.stdout)}
    assert rows["DRIP_SEND_WINDOW"] == "auto (16)"


def test_bad_setting_in_cli_is_one_clear_line(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    env = cli_env(s, DRIP_BASE_URL="learn.example.com")
    result = run_drip(["lessons", "list"], env)
    assert result.returncode == 1
    assert "DRIP_BASE_URL has value 'learn.example.com'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("base_url", "warned"),
    [
        ("http://learn.example.com", True),
        ("http://10.0.0.5:8080", True),
        ("https://learn.example.com", False),
        ("http://127.0.0.1:8080", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
    ],
)
def test_drip_config_warns_about_plain_http_outside_this_machine(
    tmp_path: Path, base_url: str, warned: bool
) -> None:
    settings = make_settings(tmp_path, base_url=base_url)
    result = run_drip(["config"], cli_env(settings))
    assert result.returncode == 0
    assert ("warning: DRIP_BASE_URL" in result.stderr) is warned, result.stderr


def test_sender_name_and_reply_to_have_sensible_defaults(tmp_path: Path) -> None:
    bare = make_settings(tmp_path, FROM="lessons@example.com")
    assert bare.sender == "Drip Lessons <lessons@example.com>"
    assert bare.reply_to == bare.sender
    named = make_settings(tmp_path, reply_to="Training <training@example.com>")
    assert named.reply_to == "Training <training@example.com>"
    with pytest.raises(ConfigError, match="DRIP_REPLY_TO has value 'not an address'"):
        make_settings(tmp_path, reply_to="not an address")


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("DRIP_MAIL_URL", "smtp://relay.example.com\r\n@attacker.example:25", "'\\r'"),
        ("DRIP_MAIL_URL", "smtp://relay.example.com:587\n", None),  # a trailing newline is trimmed
        ("DRIP_MAIL_URL", "smtp://user:pa ss@relay.example.com:587", "' '"),
        ("DRIP_BASE_URL", "https://learn.example.com>, <mailto:x@attacker.example", "'>'"),
        ("DRIP_BASE_URL", "https://learn.example.com/a b", "' '"),
        ("DRIP_BASE_URL", "https://learn.example.com\t", None),
    ],
)
def test_urls_refuse_what_would_change_their_meaning(
    tmp_path: Path, variable: str, value: str, shown: str | None
) -> None:
    if shown is None:
        load_settings(env={variable: value}, config_path=tmp_path / "none.toml")
        return
    with pytest.raises(ConfigError) as info:
        load_settings(env={variable: value}, config_path=tmp_path / "none.toml")
    assert f"holds {shown} at position" in str(info.value)
    assert str(info.value).startswith(f"{variable} has value")


def test_a_local_lessons_folder_overriding_the_packaged_one_is_announced(tmp_path: Path) -> None:
    import shutil

    from support import LESSONS

    shutil.copytree(LESSONS / "sample", tmp_path / "lessons" / "sample")
    env = cli_env(make_settings(tmp_path), DRIP_LESSONS_DIR="", DRIP_TEMPLATES_DIR="")
    listed = run_drip(["lessons", "list"], env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert (
        f"warning: using ./lessons ({tmp_path / 'lessons'}) instead of the packaged lessons"
        in listed.stderr
    )
    assert "social-media-for-executives" not in listed.stdout  # the local folder is what is used


@pytest.mark.parametrize(
    "command",
    [["people", "list"], ["cohort", "list"], ["log"], ["report", "board"], ["send-due"]],
)
def test_commands_in_an_empty_folder_leave_no_database_behind(
    tmp_path: Path, command: list[str]
) -> None:
    env = cli_env(make_settings(tmp_path), DRIP_DATABASE_URL="sqlite:///drip.db")
    result = run_drip(command, env, cwd=tmp_path)
    assert result.returncode == 1
    assert "no database at drip.db; run `drip init` here" in result.stderr
    assert not (tmp_path / "drip.db").exists()
