"""SQLite's WAL checkpoints in a thread of their own, for a connection whose writes must not
wait for them: the commit that crosses wal_autocheckpoint would otherwise copy the WAL into the
database and fsync both while its caller waits."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger("drip.db")

REWIND_WAIT_MS = 20
PASS_EVERY = 50  # a sending pass's commits between checkpoints (a few dozen pages each)


class Checkpointer:
    """Runs SQLite's WAL checkpoints in a thread of its own for a writer whose connection turns
    its automatic ones off (the pixel's, a sending pass's): a checkpoint's copying and fsyncs
    then never hold up its writes. PASSIVE, like the automatic ones, for the bulk of the
    copying; then a short RESTART."""

    def __init__(self, engine: Engine, every: int) -> None:
        self.engine = engine
        self.every = every  # writes (events, commits) between checkpoints
        # Writers append while a passive checkpoint copies, so under steady load it never
        # catches up and the WAL is never rewound: it would grow without end. A RESTART after
        # it copies what came meanwhile (little) and the next write starts the WAL from its
        # beginning again. It needs a moment without a writer, which a busy writer retaking
        # the lock would never leave it: held while it runs, this lock makes writers wait.
        self.rewinding = threading.Lock()
        self._written = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="drip-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self, count: int) -> None:
        """Count writes; ask for a checkpoint every `every` of them."""
        self._written += count
        if self._written >= self.every:
            self._written = 0
            self._due.set()

    def close(self) -> None:
        """Make a last checkpoint and stop the thread."""
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            try:
                raw = self.engine.raw_connection()  # autocommit: see db._sqlite_pragmas
                try:
                    cursor = raw.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    # Brief: a long reader (a report) or another process's write makes it
                    # give up until next time rather than hold the pixel's writers off.
                    (waits,) = cursor.execute("PRAGMA busy_timeout").fetchone()
                    cursor.execute(f"PRAGMA busy_timeout={REWIND_WAIT_MS}")
                    try:
                        with self.rewinding:
                            cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                    finally:
                        cursor.execute(f"PRAGMA busy_timeout={int(waits)}")  # back to the pool
                finally:
                    raw.close()
            except Exception as exc:  # the next one, or any other connection's, catches up
                log.warning("cannot checkpoint the database: %s", exc)
            if self._stopping:
                return


@contextmanager
def checkpoints_aside(conn: sa.Connection, every: int | None = None) -> Iterator[None]:
    """While it lasts, `conn` makes no checkpoint of its own: its commits only append to the
    WAL. From its `every`-th commit on (PASS_EVERY unless said) a Checkpointer thread makes
    one every `every` commits, and a last one on the way out; a pass that commits less (an
    idle tick) starts no thread and leaves its few pages to the next automatic checkpoint. The
    connection's own setting is restored after. Nothing changes on another database than
    SQLite's."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    (before,) = raw.execute("PRAGMA wal_autocheckpoint").fetchone()
    raw.execute("PRAGMA wal_autocheckpoint=0")
    often = every or PASS_EVERY
    commits = 0
    checkpointer: Checkpointer | None = None

    def committed(_conn: sa.Connection) -> None:
        nonlocal commits, checkpointer
        if checkpointer is not None:
            checkpointer.wrote(1)
            return
        commits += 1
        if commits >= often:
            checkpointer = Checkpointer(conn.engine, often)
            checkpointer.wrote(often)  # the first one now

    sa.event.listen(conn, "commit", committed)
    try:
        yield
    finally:
        sa.event.remove(conn, "commit", committed)
        try:
            raw.execute(f"PRAGMA wal_autocheckpoint={int(before)}")  # back to the pool as it was
        except Exception:  # a broken connection, which the pool discards: the pass's error counts
            log.debug("cannot restore a connection's automatic checkpoints", exc_info=True)
        if checkpointer is not None:
            checkpointer.close()
