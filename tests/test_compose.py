"""docker-compose.yml and the Dockerfile, checked by reading them (Docker does not run here)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

import click
import pytest
import yaml
from support import ROOT

from drip.cli import main
from drip.config import load_settings, setting_names

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DRIP_SERVICES = sorted(name for name, s in SERVICES.items() if "build" in s)
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SECRET = "a-compose-secret-0123456789abcdef"


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Expand ${VAR}, ${VAR:-default} and ${VAR:?error} the way docker compose does."""

    def expand(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        current = env.get(name, "")
        if op == ":?" and not current:
            raise ValueError(f"{name}: {arg}")
        if op == ":-" and not current:
            return arg
        return current

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", expand, value)


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def remaining_args(ctx: click.Context) -> list[str]:
    """Arguments a group left for its subcommand (click 8.1 to 9)."""
    state = vars(ctx)
    protected = state.get("_protected_args", state.get("protected_args", []))
    return [*protected, *ctx.args]


def resolve(args: list[str]) -> list[str]:
    """Parse a `drip` command line like click would; return the command path or raise UsageError."""
    command: click.Command = main
    ctx = main.make_context("drip", list(args), resilient_parsing=True)
    path = ["drip"]
    while isinstance(command, click.Group):
        rest = remaining_args(ctx)
        if not rest:
            raise click.UsageError(f"{' '.join(path)} needs a subcommand")
        wanted = rest[0]
        name, sub, rest = command.resolve_command(ctx, rest)
        if sub is None or name is None:
            raise click.UsageError(f"no command '{wanted}' in {' '.join(path)}")
        path.append(name)
        command = sub
        # Groups parse leniently to reach their subcommand; the final command parses strictly.
        ctx = sub.make_context(
            name, rest, parent=ctx, resilient_parsing=isinstance(sub, click.Group)
        )
    return path


def test_resolve_rejects_what_drip_would_reject() -> None:
    assert resolve(["run", "--no-web"]) == ["drip", "run"]
    assert resolve(["-q", "cohort", "list"]) == ["drip", "cohort", "list"]
    for bad in (["runn"], ["run", "--no-webb"], ["serve", "--port", "http"], ["cohort"]):
        with pytest.raises(click.UsageError):
            resolve(bad)


@pytest.mark.parametrize("name", DRIP_SERVICES)
def test_each_drip_service_runs_a_real_drip_command(name: str) -> None:
    command = SERVICES[name]["command"]
    assert isinstance(command, list), "use the exec form so drip gets the signals"
    assert resolve(command)[1] == {"migrate": "migrate", "worker": "run", "web": "serve"}[name]


def test_the_services_are_the_documented_ones() -> None:
    assert set(SERVICES) == {"postgres", "mailpit", "migrate", "worker", "web"}
    assert DRIP_SERVICES == ["migrate", "web", "worker"]
    assert SERVICES["worker"]["command"] == ["run", "--no-web"]
    assert SERVICES["web"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert "8080:8080" in SERVICES["web"]["ports"]
    assert SERVICES["mailpit"]["image"].startswith("axllent/mailpit")


def test_mailpit_is_pinned_and_its_inbox_on_loopback_only() -> None:
    # Its inbox holds every signed link sent: never on all interfaces, never a moving tag.
    mailpit = SERVICES["mailpit"]
    assert re.fullmatch(r"axllent/mailpit:v\d+\.\d+\.\d+", mailpit["image"])
    assert mailpit["ports"] == ["127.0.0.1:8025:8025"]
    assert all(
        not str(port).split(":")[0].replace(".", "").isdigit() or str(port).startswith("127.")
        for service in SERVICES.values()
        if service is not SERVICES["web"]
        for port in service.get("ports", [])
    )


def test_the_worker_has_a_healthcheck_that_reads_its_heartbeat() -> None:
    check = SERVICES["worker"]["healthcheck"]
    assert check["test"] == ["CMD", "drip", "healthcheck"]
    assert "healthcheck" in main.commands


@pytest.mark.parametrize("name", DRIP_SERVICES)
def test_every_drip_variable_is_a_real_setting_and_parses(name: str) -> None:
    environment = SERVICES[name]["environment"]
    assert isinstance(environment, dict)
    unknown = sorted(set(environment) - set(setting_names()))
    assert unknown == []
    env = {k: interpolate(str(v), {"DRIP_SECRET_KEY": SECRET}) for k, v in environment.items()}
    settings = load_settings(env=env, config_path=ROOT / "absent-drip.toml")
    assert settings.database_url == "postgresql+psycopg://drip:drip@postgres:5432/drip"
    assert settings.mail_url == "smtp://mailpit:1025"
    assert settings.secret_key == SECRET
    assert settings.base_url == "http://localhost:8080"


def test_the_secret_key_must_be_given_and_is_not_in_the_file() -> None:
    for name in DRIP_SERVICES:
        value = SERVICES[name]["environment"]["DRIP_SECRET_KEY"]
        assert value.startswith("${DRIP_SECRET_KEY:?")
        with pytest.raises(ValueError, match="DRIP_SECRET_KEY"):
            interpolate(value, {})


def test_workers_can_scale() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert not any(
        "container_name" in s for s in SERVICES.values() if s is not SERVICES["postgres"]
    )


def test_migrations_run_once_before_workers_and_web() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "web"):
        assert (
            SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def test_postgres_has_a_healthcheck_and_a_volume() -> None:
    postgres = SERVICES["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in COMPOSE["volumes"]


def test_the_image_runs_drip_as_a_non_root_user() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [(i, args) for i, (op, args) in enumerate(steps) if op == "USER"]
    assert users, "the Dockerfile never leaves root"
    last_user_at, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert all(op != "RUN" for op, _ in steps[last_user_at:])
    entrypoint = dict(steps)["ENTRYPOINT"]
    assert entrypoint == '["drip"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert scripts["drip"] == "drip.cli:main"


def test_the_image_installs_the_package_with_postgres_support() -> None:
    runs = " ".join(args for op, args in instructions() if op == "RUN")
    assert re.search(r"pip install .*\"?\.\[postgres\]\"?", runs)


def test_dependencies_install_in_their_own_layer_from_the_constraints_file() -> None:
    steps = instructions()
    copies = [i for i, (op, _) in enumerate(steps) if op == "COPY"]
    first_copy = steps[copies[0]][1]
    assert first_copy.split()[:-1] == ["constraints.txt"]  # nothing else invalidates the layer
    install = next(i for i, (op, a) in enumerate(steps) if op == "RUN" and "constraints.txt" in a)
    assert install < copies[1] and "--requirement constraints.txt" in steps[install][1]
    code = next(a for op, a in steps if op == "RUN" and ".[postgres]" in a)
    assert "--no-deps" in code and "pip check" in code


def test_the_build_context_has_what_the_image_copies_and_no_secrets() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    copied = [
        source.rstrip("/")
        for op, args in instructions()
        if op == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored, source
    assert {".git", ".venv", ".env", "drip.toml", "*.db"} <= ignored


def test_readme_deploy_section_covers_every_compose_variable() -> None:
    docs = (ROOT / "README.md").read_text(encoding="utf-8")
    variables = set(SERVICES["worker"]["environment"]) | {"POSTGRES_PASSWORD"}
    missing = sorted(v for v in variables if v not in docs)
    assert missing == []
