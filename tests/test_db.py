"""Migrations apply from empty and from every earlier revision, go down and up again, and a
database from a newer drip is refused with a clear message."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel
from support import BACKENDS, cli_env, make_settings, pg_database, run_drip, utc

from drip.db import (
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from drip.errors import SchemaError
from drip.people.cohorts import create_cohort
from drip.people.csv import Row
from drip.people.enroll import enroll_rows

FUTURE = "ffff_from_a_newer_drip"


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with pg_database("drip_m") as (_, url):
        yield url


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def revisions() -> list[str]:
    """Every migration, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def alembic(engine: sa.Engine, action: str, target: str) -> None:
    """Run `alembic upgrade|downgrade target` on this engine, the way drip.db.migrate does."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def schema_drift(engine: sa.Engine) -> list[object]:
    """Differences between the migrated schema and the models (empty when they agree)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def drip_tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def assert_usable(engine: sa.Engine) -> None:
    """The schema is at head, matches the models, and takes a cohort with people."""
    check_schema(engine)
    assert schema_drift(engine) == []
    now = utc(2026, 3, 3, 10, 0)
    cohort = create_cohort(
        engine,
        name=f"c-{uuid.uuid4().hex[:6]}",
        course="sample",
        start=now.date(),
        timezone="UTC",
        now=now,
    )
    rows = [Row(2, f"p-{uuid.uuid4().hex[:6]}@example.com", "P", None)]
    assert enroll_rows(engine, cohort, rows, now=now).enrolled == 1


def test_migrate_from_empty_reaches_head_and_matches_the_models(empty_engine: sa.Engine) -> None:
    before, after = migrate(empty_engine)
    assert (before, after) == (None, head_revision())
    assert current_revision(empty_engine) == head_revision()
    assert_usable(empty_engine)


@pytest.mark.parametrize("start", revisions())
def test_every_earlier_revision_upgrades_to_head(empty_engine: sa.Engine, start: str) -> None:
    alembic(empty_engine, "upgrade", start)
    assert current_revision(empty_engine) == start

    before, after = migrate(empty_engine)

    assert (before, after) == (start, head_revision())
    assert_usable(empty_engine)


def test_downgrade_to_base_step_by_step_then_up_again(empty_engine: sa.Engine) -> None:
    migrate(empty_engine)
    for expected in reversed([None, *revisions()[:-1]]):
        alembic(empty_engine, "downgrade", "-1")
        assert current_revision(empty_engine) == expected
    assert drip_tables(empty_engine) == set()

    migrate(empty_engine)
    assert_usable(empty_engine)


def test_drip_migrate_creates_then_says_the_database_is_up_to_date(
    tmp_path: Path, empty_url: str
) -> None:
    env = cli_env(make_settings(tmp_path, empty_url))

    first = run_drip(["migrate"], env)
    again = run_drip(["migrate"], env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"migrated empty -> {head_revision()}"
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"already at {head_revision()}"


@pytest.mark.parametrize(
    "args",
    [
        ["migrate"],
        ["cohort", "list"],
        ["people", "list"],
        ["send-due"],
        ["init", "--config", "x.toml"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_database_from_a_newer_drip_is_refused_clearly(
    tmp_path: Path, db_url: str, args: list[str]
) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})

    result = run_drip(args, cli_env(make_settings(tmp_path, db_url)), cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"the database is at migration {FUTURE}, newer than this drip ({head_revision()})" in (
        result.stderr
    )
    assert current_revision(engine) == FUTURE  # refused before touching anything
    with pytest.raises(SchemaError, match="newer than this drip"):
        check_schema(engine)
    engine.dispose()


def test_a_database_locked_too_long_is_explained(tmp_path: Path) -> None:
    from drip.db import database_problem

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    impatient = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        with impatient.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    except sa.exc.OperationalError as exc:
        said = database_problem(exc)
    else:
        raise AssertionError("the write went through a held lock")
    finally:
        holder.close()
        impatient.dispose()
    assert said is not None and said.startswith("the database stayed locked")
    assert database_problem(ValueError("not a database error")) is None
