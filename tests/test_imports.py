"""Imports point one way: entry points -> services -> building blocks -> config and errors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "drip"

# The first matching prefix decides a module's layer; higher layers may import lower ones.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (3, ("drip.cli", "drip.web", "drip.scheduler", "drip.demo", "drip.app")),
    (
        2,
        (
            "drip.people.cohorts",
            "drip.people.calendar",
            "drip.people.enroll",
            "drip.people.directory",
            "drip.people.manage",
            "drip.sending",
            "drip.tracking.hits",
            "drip.tracking.pages",
            "drip.tracking.writer",
            "drip.reports",
            "drip.inbound",
            "drip.outbound",
            "drip.learning",
        ),
    ),
    # drip.addresses: the one e-mail address check, for settings (DRIP_FROM) and people alike.
    (
        0,
        (
            "drip.config",
            "drip.config_table",
            "drip.config_values",
            "drip.errors",
            "drip.states",
            "drip.migrations",
            "drip.addresses",
        ),
    ),
]
NAMES = {0: "config/errors", 1: "building block", 2: "service", 3: "entry point"}


def layer(module: str) -> int:
    for level, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return 1  # models, db, tokens, schedule, events, lifecycle, curriculum, mail, verdict, csv


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if ".migrations." not in name:
            found.append((name, path))
    return found


def imports(path: Path) -> list[tuple[int, str]]:
    """Every drip module a file imports, at any depth in the file (function-level too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("drip"):
            if node.module == "drip":
                found.extend((node.lineno, f"drip.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith("drip"))
    return found


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_point_down(module: str, path: Path) -> None:
    mine = layer(module)
    upward = [
        f"{path.name}:{line}: {module} ({NAMES[mine]}) imports {target} ({NAMES[layer(target)]})"
        for line, target in imports(path)
        if layer(target) > mine
    ]
    assert upward == []


def test_no_service_imports_the_app() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, path in modules()
        if layer(module) < 3
        for _, target in imports(path)
        if target == "drip.app"
    ]
    assert offenders == []


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from drip.app import App\n")
    assert [target for _, target in imports(bad)] == ["drip.app"]
    assert layer("drip.app") > layer("drip.sending.plan") > layer("drip.schedule")


def test_help_and_version_do_not_load_the_database_layer() -> None:
    code = (
        "import sys; from drip.cli import main\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'premailer', 'starlette') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == ""
