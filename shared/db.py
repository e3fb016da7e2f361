"""SQLite access for both processes: connections, the migrations runner, small helpers.

Rules:
- Every connection is WAL with a busy timeout, so readers never block the writers and a
  writer waits (up to BUSY_TIMEOUT_MS) instead of failing while another commits.
- The schema changes only through numbered files in `migrations/` (NNNN_name.sql), applied in
  order inside one transaction each and recorded in `schema_migrations`. Applying twice is a
  no-op. A database whose recorded version is newer than the code knows is refused
  (`SchemaTooNew`): running old code on it could corrupt data written by the newer one.
- A database that cannot be opened (no permission, a read-only data home) raises
  `DatabaseUnavailable` naming the file and the reason the system gives, not SQLite's
  "unable to open database file".
- Plain SQL only, so a PostgreSQL backend can come later (ARCHITECTURE "Growth").
"""

from __future__ import annotations

import errno
import importlib.resources
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

__all__ = ["connect", "migrate", "schema_version", "known_migrations", "SchemaTooNew",
           "SchemaTooOld", "DatabaseUnavailable", "check_schema", "BUSY_TIMEOUT_MS", "Migration", "utils_db",
           "write_transaction", "check_writable"]

BUSY_TIMEOUT_MS = 10_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNew(RuntimeError):
    """The database was written by a newer Mailmoat."""


class SchemaTooOld(RuntimeError):
    """The database needs `mailmoat migrate` before this code can use it."""


class DatabaseUnavailable(RuntimeError):
    """The database file cannot be opened for this use (message: `cannot use PATH (why)`)."""


def _why_unavailable(path: Path, error: sqlite3.Error) -> str:
    """What the system says about opening `path` (and its folder, where WAL keeps its
    -wal and -shm files) for writing; SQLite's own text when the system sees no problem."""
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(path.parent, os.W_OK):
        return f"cannot write in {path.parent}"
    return str(error)


def check_writable(path: str | Path) -> None:
    """Raise DatabaseUnavailable (`cannot use PATH (why)`, in the words _why_unavailable
    gives) unless this process may write the database at `path` and its folder. SQLite
    opens a file it may not write read-only without a word (a read-only data home that
    holds its -wal and -shm files, as a copy of a running one does), and the first write
    then fails with "attempt to write a readonly database": a command that writes asks this
    first (shared.home `open_db(writing=True)`).
    It never opens the file: closing any descriptor of it drops every POSIX lock this
    process holds on it, those of its open SQLite connections too (SQLite's "How To Corrupt
    An SQLite Database File" §2.2; another process's writes then failed with "disk I/O
    error")."""
    path = Path(path)
    try:
        read_only = os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot use {path} ({exc.strerror or exc})") from None
    effective = os.access in os.supports_effective_ids
    if read_only:
        problem = os.strerror(errno.EROFS)
    elif not os.access(path, os.W_OK, effective_ids=effective):
        problem = os.strerror(errno.EACCES)
    elif not os.access(path.parent, os.W_OK, effective_ids=effective):
        problem = f"cannot write in {path.parent}"
    else:
        return
    raise DatabaseUnavailable(f"cannot use {path} ({problem})")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_INCREMENTAL = 2        # PRAGMA auto_vacuum's INCREMENTAL


def incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Whether the database is in the incremental auto-vacuum mode `connect` makes new
    ones in (an older home's is not: docs/operations.md, Upgrading)."""
    return conn.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database in WAL mode with a busy timeout; rows come back as sqlite3.Row.

    `isolation_level=None`: callers open transactions explicitly (`BEGIN IMMEDIATE` for
    writers), so no statement starts one behind their back.
    """
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    except sqlite3.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot use {path} ({_why_unavailable(Path(path), exc)})"
                                  ) from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                # a new database (an older home's keeps its mode: setting it is a write,
                # which a read-only home refuses), and before WAL, or it does not take:
                # the retention job gives purged events' space back to the disk
                # (shared.retention.give_space_back)
                conn.execute(f"PRAGMA auto_vacuum = {_INCREMENTAL}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable in WAL mode except for the last transactions before a power
            # cut; events and settings tolerate that, mail durability lives in the spool's
            # fsyncs.
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc) and "readonly" not in str(exc):
            raise
        raise DatabaseUnavailable(f"cannot use {path} ({_why_unavailable(Path(path), exc)})"
                                  ) from None
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. SQLite has already rolled
    back after some errors (SQLITE_FULL: a full disk), where a ROLLBACK of our own would
    fail and hide the real error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def utils_db(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """A sqlite-utils view of a connection, for introspection and simple upserts."""
    return sqlite_utils.Database(conn)


def known_migrations() -> list[Migration]:
    """The migrations shipped with this code, in order."""
    found = []
    for entry in importlib.resources.files("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration (0 for an empty database)."""
    if "schema_migrations" not in utils_db(conn).table_names():
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def pending_migrations(conn: sqlite3.Connection) -> bool:
    """Whether `migrate` would apply something (not for a database newer than this code,
    which it refuses)."""
    return schema_version(conn) < known_migrations()[-1].version


def migrate(conn: sqlite3.Connection) -> list[Migration]:
    """Apply every migration not yet applied; returns those applied now.

    Raises SchemaTooNew when the database is newer than this code.
    """
    migrations = known_migrations()
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                 "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    current = schema_version(conn)
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, newer than this Mailmoat "
            f"(which knows up to {latest}); upgrade Mailmoat or restore a matching backup")
    applied = []
    for migration in migrations:
        if migration.version <= current:
            continue
        with write_transaction(conn):
            # executescript would COMMIT on its own; run statement by statement instead.
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                         "VALUES (?, ?, ?)", (migration.version, migration.name, time.time()))
        applied.append(migration)
    return applied


def check_schema(conn: sqlite3.Connection) -> None:
    """Refuse to run on a database this code does not match exactly."""
    current = schema_version(conn)
    latest = known_migrations()[-1].version
    if current > latest:
        raise SchemaTooNew(f"the database is at schema version {current}, newer than this "
                           f"Mailmoat (which knows up to {latest})")
    if current < latest:
        raise SchemaTooOld(f"the database is at schema version {current}; run "
                           f"`mailmoat migrate` to bring it to {latest}")


def _statements(sql: str) -> list[str]:
    """Split a migration file into complete statements (sqlite3 decides where one ends)."""
    statements, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(l.strip().startswith("--") or not l.strip()
                                   for l in pending.splitlines()):
        raise RuntimeError(f"incomplete statement at the end of a migration: {pending[:60]!r}")
    return statements
