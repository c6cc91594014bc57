"""The README is the front door: every command and every setting is documented there."""

from pathlib import Path

import click
import pytest

from drip.cli import main
from drip.config import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "drip") -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize("command", commands(main))
def test_every_command_is_in_the_readme(command: str) -> None:
    *parent, last = command.split()
    assert (
        command in README
        or (" ".join(parent) in README and f"| {last}" in README)
        or (f"{' '.join(parent)} {last}" in README)
    ), command


@pytest.mark.parametrize("setting", [s.env for s in SETTINGS])
def test_every_setting_is_in_the_readme(setting: str) -> None:
    assert f"`{setting}`" in README


@pytest.mark.parametrize("command", commands(main))
def test_every_command_has_a_one_line_help(command: str) -> None:
    group: click.Command = main
    for name in command.split()[1:]:
        assert isinstance(group, click.Group)
        group = group.commands[name]
    assert group.help and group.help.strip().endswith(".")
