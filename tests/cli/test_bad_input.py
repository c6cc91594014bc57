"""Odd input gets a clear one-line error naming the value and the fix, never a traceback."""

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import cli_env, make_settings, run_drip, utc

from drip.config import load_settings
from drip.errors import ConfigError, InputError
from drip.people.cohorts import create_cohort


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DRIP_LEASE_SECONDS", "nan", "must be an ordinary number"),
        ("DRIP_RETRY_LIFETIME_HOURS", "1e300", "must be an ordinary number"),
        ("DRIP_WEB_PORT", "70000", "must be a port between 1 and 65535"),
        ("DRIP_FROM", "Drip Lessons lessons@example.com", "not a sender like"),
        ("DRIP_FROM", "Drip <lessons@exämple.com>", "not a sender like"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_and_value(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={variable: value}, config_path=tmp_path / "none.toml")
    assert str(info.value).startswith(f"{variable} has value '{value}': {message}")


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="DRIP_CONFIG has value '/nonexistent.toml': no such file"
    ):
        load_settings(env={"DRIP_CONFIG": "/nonexistent.toml"})


def test_database_and_mail_passwords_never_print(tmp_path: Path) -> None:
    s = make_settings(tmp_path, "postgresql://drip:SuperSecretPw@127.0.0.1:5432/test",
                      mail_url="smtp://user:MailPw@mail.example.com:587")  # fmt: skip
    shown = run_drip(["config", "--format", "csv"], cli_env(s))
    assert shown.returncode == 0, shown.stderr
    assert "SuperSecretPw" not in shown.stdout and "MailPw" not in shown.stdout
    assert "drip:****@127.0.0.1" in shown.stdout
    bad = run_drip(["config"], cli_env(s, DRIP_MAIL_URL="smtp:user:MailPw@host"))
    assert bad.returncode == 1 and "MailPw" not in bad.stderr


def test_markup_in_data_is_shown_as_is(tmp_path: Path, settings, engine: sa.Engine) -> None:
    env = cli_env(settings)
    assert (
        run_drip(
            ["cohort", "create", "c1", "--course", "sample", "--start", "2026-11-30"], env
        ).returncode
        == 0
    )
    people = tmp_path / "p.csv"
    people.write_text("email,name\nm@example.com,Ann [/red] Smith\n")
    assert run_drip(["enroll", "c1", str(people)], env).returncode == 0
    listed = run_drip(["people", "list", "--format", "table"], env)
    assert listed.returncode == 0, listed.stderr
    assert "[/red]" in listed.stdout
    odd = run_drip(["cohort", "show", "[/x]"], env)
    assert (
        odd.returncode == 1 and "no cohort '[/x]'" in odd.stderr and "Traceback" not in odd.stderr
    )


def test_huge_csv_field_is_a_line_numbered_error(
    tmp_path: Path, settings, engine: sa.Engine
) -> None:
    env = cli_env(settings)
    assert run_drip(["cohort", "create", "c1", "--course", "sample"], env).returncode == 0
    big = tmp_path / "big.csv"
    big.write_text('email,name\na@example.com,"' + "x" * 200_000 + '"\n')
    result = run_drip(["enroll", "c1", str(big)], env)
    assert (
        result.returncode == 1
        and f"{big}:" in result.stderr
        and "field larger than field limit" in result.stderr
    )


def test_output_into_a_missing_folder(tmp_path: Path, settings, engine: sa.Engine) -> None:
    env = cli_env(settings)
    result = run_drip(
        ["lessons", "preview", "sample", "what-a-drip-course-is", "-o", "/nonexistent/x.html"], env
    )
    assert result.returncode == 1 and "cannot write /nonexistent/x.html" in result.stderr


def test_cohort_names_cannot_smuggle_headers(engine: sa.Engine) -> None:
    with pytest.raises(InputError, match="control character or '=\\?'"):
        create_cohort(engine, name="board =?utf-8?q?x=0D=0ABcc:_a@evil.example?=", course="sample",
                      start=date(2026, 11, 30), timezone="UTC", now=utc(2026, 11, 30))  # fmt: skip


def test_course_rules_of_the_wrong_type(tmp_path: Path) -> None:
    from drip.curriculum.load import inspect_course

    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "course.yml").write_text("title: T\nrules:\n  max_words: ten\n")
    (folder / "01-a.md").write_text(
        "---\ntitle: true\nsummary: S\ntakeaway: T\n---\nBody %%DRIP-NAME%% here.\n"
    )
    _, problems = inspect_course(tmp_path, "c")
    messages = [p.message for p in problems]
    assert "rule 'max_words' is 'ten'; use a whole number of 0 or more" in messages
    assert "'title' must be text, not bool; put it in quotes" in messages
    assert "'%%DRIP-' is reserved by drip; reword it" in messages
