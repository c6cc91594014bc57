"""Engine and session factory, SQLite pragmas, and Alembic migrations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from drip.errors import ConfigError, SchemaError

if TYPE_CHECKING:  # alembic is loaded only by the commands that check or migrate the schema
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys."""
    try:
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                parent = Path(path).expanduser().resolve().parent
                if not parent.is_dir():
                    raise ConfigError(
                        f"DRIP_DATABASE_URL has value '{url}': folder {parent} does not exist; create it"
                    )
            engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"DRIP_DATABASE_URL has value '{url}': {exc}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily; we issue BEGIN ourselves (see _sqlite_begin)
    # so that a claim's read and write happen under one write lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-32000")  # 32 MB: the due index and hot rows stay in memory
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Writers take the lock up front (no upgrade deadlocks); readers that say so (reports) don't.
    read_only = connection.get_execution_options().get("drip_read_only", False)
    # Straight to the driver: a sending pass begins a transaction every few messages.
    # (dbapi_connection: a detached connection, like the pixel writer's, has no driver_connection)
    connection.connection.dbapi_connection.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")


@contextmanager
def transaction(bind: Engine | sa.Connection) -> Iterator[sa.Connection]:
    """A transaction on a pooled connection of an engine, or on a connection the caller holds
    (a sending pass does all its work on one: on SQLite, a write on another connection empties
    this one's page cache, which it then reads again from the file)."""
    if isinstance(bind, sa.Connection):
        with bind.begin():
            yield bind
    else:
        with bind.begin() as conn:
            yield conn


def session(engine: Engine) -> Session:
    """Open a SQLModel session that keeps objects usable after commit."""
    return Session(engine, expire_on_commit=False)


def insert_ignoring_conflicts(engine: Engine | sa.Connection, table: sa.Table) -> Any:
    """An INSERT that skips rows hitting a unique constraint, on SQLite and PostgreSQL."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def in_ids(conn: sa.Connection, column: Any, ids: Sequence[int]) -> Any:
    """`column IN ids` with the ids as one parameter: a JSON array read by json_each on SQLite,
    an array on PostgreSQL. An IN of a list costs SQLAlchemy a bound parameter per id to build,
    key and render, each time (a third of loading a batch of 200)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids), type_=postgresql.ARRAY(sa.Integer)))
    values: sa.Select[Any] = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(None, "[" + ",".join(map(str, ids)) + "]", type_=sa.String))
    )
    return column.in_(values)


_ROW_INSERTS: dict[tuple[str, str], Any] = {}


def row_insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table) -> Any:
    """insert_ignoring_conflicts with a parameter for every column but `id`, built once per
    table and database, for `executemany` (whose plans are kept by statement)."""
    key = (table.name, conn.dialect.name)
    if key not in _ROW_INSERTS:
        columns: dict[str, Any] = {c.name: sa.bindparam(c.name) for c in table.c if c.name != "id"}
        _ROW_INSERTS[key] = insert_ignoring_conflicts(conn, table).values(columns)
    return _ROW_INSERTS[key]


_Plan = tuple[str, list[str], dict[str, Any], dict[str, Any], bool]


_PLANS: dict[tuple[int, str], _Plan] = {}


def executemany(conn: sa.Connection, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Run a statement built once (a module constant) for many rows through the driver, in the
    caller's transaction.

    SQLAlchemy compiles it once per dialect; what is left per flush is the driver call and each
    value's type conversion, not an execution context per statement (a flush of a few messages
    otherwise spends more time in SQLAlchemy than in the database)."""
    if not rows:
        return
    key = (id(statement), conn.dialect.name)
    plan = _PLANS.get(key)
    if plan is None:
        compiled = statement.compile(dialect=conn.dialect)
        positional = compiled.positiontup is not None
        names = list(compiled.positiontup) if positional else list(compiled.binds)
        defaults = {name: compiled.binds[name].value for name in names}
        processors = dict(compiled._bind_processors)  # the same conversions execute() applies
        plan = _PLANS[key] = (compiled.string, names, defaults, processors, positional)
    sql, names, defaults, processors, positional = plan
    fields = [(n, defaults[n], processors.get(n)) for n in names]
    converted: dict[tuple[str, Any], Any] = {}  # a flush repeats its moments and days
    params: list[Any] = []
    for row in rows:
        values = []
        for name, default, convert in fields:
            v = row.get(name, default)
            if convert is not None and v is not None:
                seen = (name, v)
                if seen not in converted:
                    converted[seen] = convert(v)
                v = converted[seen]
            values.append(v)
        params.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at drip's migrations and the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None when it has no drip schema."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known(script: ScriptDirectory, revision: str) -> bool:
    """Whether this code has the migration the database is at."""
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises a ResolutionError/CommandError for an unknown id
        return False


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to the newest schema; return the revisions before and after."""
    from alembic import command
    from alembic.script import ScriptDirectory

    before = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if before is not None and not _known(script, before):
        raise SchemaError(
            f"the database is at migration {before}, newer than this drip ({head_revision()}); "
            "upgrade drip before using this database"
        )
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head_revision()


def check_schema(engine: Engine) -> None:
    """Fail with a clear message unless the database is at this code's schema."""
    from alembic.script import ScriptDirectory

    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:" and not Path(path).expanduser().exists():
        # Connecting would create an empty file: a command that only reads must not.
        raise SchemaError(
            f"no database at {path}; run `drip init` here (or set DRIP_DATABASE_URL to yours)"
        )
    try:
        current = current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise SchemaError(f"cannot open the database: {exc.orig}") from None
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError("the database has no drip tables; run `drip init` (or `drip migrate`)")
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if not _known(script, current):
        raise SchemaError(
            f"the database is at migration {current}, newer than this drip ({head}); upgrade drip"
        )
    raise SchemaError(
        f"the database is at migration {current}, older than {head}; run `drip migrate`"
    )


def database_problem(exc: BaseException) -> str | None:
    """What a database error means for the person at the terminal, with the fix; None when
    `exc` is not a database error."""
    if not isinstance(exc, sa.exc.DBAPIError | sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return None
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    lowered = text.lower()
    state = getattr(orig, "sqlstate", None) or ""
    if "disk is full" in lowered or "no space left" in lowered or state == "53100":
        return (
            "the database's disk is full; nothing was changed. Free some space (or give the "
            "database a bigger volume) and run the command again"
        )
    if "database is locked" in lowered or "lock timeout" in lowered or state == "55P03":
        return (
            "the database stayed locked by another drip process for too long; nothing was "
            "changed. Run the command again once it is done"
        )
    if "readonly database" in lowered or "read-only" in lowered or state == "25006":
        return (
            "the database is read-only here; nothing was changed. Give this user write access "
            "to the database file and its folder"
        )
    if "unable to open database file" in lowered:
        return "cannot open the database file; check DRIP_DATABASE_URL and the folder's permissions"
    lost = (
        isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError)
        or getattr(exc, "connection_invalidated", False)
        or state.startswith("08")
        or any(
            mark in lowered
            for mark in (
                "connection refused",
                "could not connect",
                "connection failed",
                "server closed the connection",
                "terminating connection",
                "connection is closed",
                "connection timeout",
                "the connection is lost",
            )
        )
    )
    if lost:
        return (
            "lost the connection to the database (or could not reach it): "
            f"{text[:300]}; check that it is running and DRIP_DATABASE_URL points at it, "
            "then run the command again"
        )
    return f"database error: {text[:300]}"
