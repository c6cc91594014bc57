"""The README is the front door: every command and every setting is documented there."""

import re
from pathlib import Path

import click
import pytest

from drip.cli import main
from drip.config_table import SETTINGS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "drip") -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{prefix} {name}"))
    return found


def invocations(text: str) -> list[list[str]]:
    """The drip command lines in the README's code blocks, as word lists; `a | b` alternatives
    on one line (`drip cohort list | show NAME`) become one invocation each."""
    found: list[list[str]] = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if lang not in ("", "sh", "bash", "console"):
            continue
        for raw in block.splitlines():
            line = raw.split("  #")[0].strip()
            line = next((p.strip() for p in line.split("&&") if p.strip().startswith("drip ")), "")
            if not re.match(r"drip [a-z-]+", line):
                continue
            first, *others = [part.strip() for part in line.split(" | ")]
            words = first.split()
            found.append(words)
            for other in others:
                found.append(words[: _depth(words) - 1] + other.split())
    return found


def _depth(words: list[str]) -> int:
    """How many leading words of an invocation name commands (drip included)."""
    command: click.Command = main
    depth = 1
    for word in words[1:]:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        depth += 1
    return depth


DOCUMENTED = {" ".join(words[: _depth(words)]) for words in invocations(README)}


def _is_group(command: str) -> bool:
    found: click.Command = main
    for word in command.split()[1:]:
        assert isinstance(found, click.Group)
        found = found.commands[word]
    return isinstance(found, click.Group)


LEAVES = [c for c in commands(main) if not _is_group(c)]


@pytest.mark.parametrize("command", LEAVES)
def test_every_command_has_an_invocation_in_the_readme(command: str) -> None:
    assert command in DOCUMENTED, f"no `{command} ...` line in a README code block"


def test_every_invocation_in_the_readme_is_a_real_command() -> None:
    unknown = []
    for words in invocations(README):
        resolved = words[: _depth(words)]
        command: click.Command = main
        for word in resolved[1:]:
            assert isinstance(command, click.Group)
            command = command.commands[word]
        if isinstance(command, click.Group):
            unknown.append(" ".join(words))
    assert unknown == [], "README lines that stop at a group, not a command"


@pytest.mark.parametrize("setting", [s.env for s in SETTINGS])
def test_every_setting_is_in_the_readme(setting: str) -> None:
    assert f"`{setting}`" in README


@pytest.mark.parametrize("command", commands(main))
def test_every_command_has_a_one_line_help(command: str) -> None:
    group: click.Command = main
    for name in command.split()[1:]:
        assert isinstance(group, click.Group)
        group = group.commands[name]
    assert group.help and group.help.strip().split("\n\n")[0].endswith(".")


@pytest.mark.parametrize("command", commands(main))
def test_every_command_has_an_example_and_the_exit_codes(command: str) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, [*command.split()[1:], "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example:" in result.output and "Exit status: 0 when" in result.output, command
