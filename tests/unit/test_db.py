"""shared/db.py: connections, the migrations runner and the schema-version guard."""

import sqlite3
from contextlib import closing

import pytest

from shared import db
from shared.db import Migration, SchemaTooNew, SchemaTooOld

TABLES = {"schema_migrations", "settings", "events", "status", "commands"}


@pytest.fixture
def conn(tmp_path):
    connection = db.connect(tmp_path / "mailmoat.db")
    yield connection
    connection.close()


def tables(connection):
    return {row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}


def recorded(connection):
    return [tuple(row) for row in connection.execute(
        "SELECT version, name FROM schema_migrations ORDER BY version")]


def add_migration(monkeypatch, sql, name="extra"):
    """Pretend the code ships one more migration than it does."""
    shipped = db.known_migrations()
    extra = Migration(shipped[-1].version + 1, name, sql)
    monkeypatch.setattr(db, "known_migrations", lambda: [*shipped, extra])
    return extra


def test_known_migrations_are_numbered_from_one():
    migrations = db.known_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "init"
    assert all(m.sql.strip() for m in migrations)


def test_fresh_database_gets_every_migration(conn):
    assert db.schema_version(conn) == 0
    applied = db.migrate(conn)
    assert applied == db.known_migrations()
    assert db.schema_version(conn) == len(applied)
    assert TABLES <= tables(conn)
    assert recorded(conn) == [(m.version, m.name) for m in applied]
    db.check_schema(conn)  # matches: no exception


def test_migrate_again_is_a_no_op(conn):
    db.migrate(conn)
    before = recorded(conn)
    conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('smtp.port', '2525', 0)")
    assert db.migrate(conn) == []
    assert recorded(conn) == before
    assert conn.execute("SELECT value FROM settings").fetchone()[0] == "2525"


def test_newer_database_is_refused(conn):
    db.migrate(conn)
    latest = db.schema_version(conn)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                 "VALUES (?, 'from_the_future', 0)", (latest + 1,))
    with pytest.raises(SchemaTooNew, match=f"schema version {latest + 1}, newer than this "
                                           f"Mailmoat \\(which knows up to {latest}\\)"):
        db.migrate(conn)
    with pytest.raises(SchemaTooNew, match=f"schema version {latest + 1}"):
        db.check_schema(conn)
    assert db.schema_version(conn) == latest + 1  # nothing was touched


def test_older_database_needs_migrate(conn, monkeypatch):
    db.migrate(conn)
    with closing(sqlite3.connect(":memory:")) as empty, \
            pytest.raises(SchemaTooOld, match="at schema version 0; run `mailmoat migrate`"):
        db.check_schema(empty)
    extra = add_migration(monkeypatch, "CREATE TABLE extra (id INTEGER PRIMARY KEY);")
    with pytest.raises(SchemaTooOld, match=f"schema version {extra.version - 1}; run "
                                           f"`mailmoat migrate` to bring it to {extra.version}"):
        db.check_schema(conn)
    assert db.migrate(conn) == [extra]  # only the new one
    assert "extra" in tables(conn)
    db.check_schema(conn)


def test_failed_migration_changes_nothing(conn, monkeypatch):
    db.migrate(conn)
    version = db.schema_version(conn)
    add_migration(monkeypatch, "CREATE TABLE half (id INTEGER);\n"
                               "-- the next statement fails\n"
                               "INSERT INTO no_such_table VALUES (1);\n", name="broken")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        db.migrate(conn)
    assert "half" not in tables(conn)
    assert db.schema_version(conn) == version
    assert not conn.in_transaction


def test_incomplete_statement_in_a_migration_is_refused(conn, monkeypatch):
    monkeypatch.setattr(db, "known_migrations", lambda: [
        Migration(1, "broken", "CREATE TABLE t (id INTEGER);\nCREATE TABLE broken (id")])
    with pytest.raises(RuntimeError, match="incomplete statement"):
        db.migrate(conn)


def test_statements_split_and_comments():
    sql = ("-- header comment\nCREATE TABLE a (x TEXT DEFAULT ';');\n\n"
           "CREATE TABLE b (y);\n-- trailing comment\n")
    assert db._statements(sql) == ["-- header comment\nCREATE TABLE a (x TEXT DEFAULT ';');",
                                   "CREATE TABLE b (y);"]


def test_wal_mode_and_busy_timeout(conn, tmp_path):
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.isolation_level is None  # callers open transactions themselves
    db.migrate(conn)
    reader = db.connect(tmp_path / "mailmoat.db", readonly=True)
    try:
        assert reader.execute("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO settings VALUES ('k', '1', 0)")
    finally:
        reader.close()


def test_busy_timeout_follows_the_module_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 123)
    connection = db.connect(tmp_path / "x.db")
    try:
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 123
    finally:
        connection.close()


def test_readers_do_not_block_a_writer(conn, tmp_path):
    db.migrate(conn)
    reader = db.connect(tmp_path / "mailmoat.db")
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 0
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO settings VALUES ('k', '1', 0)")
        conn.execute("COMMIT")
        # The reader keeps its snapshot until its transaction ends.
        assert reader.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 0
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM settings").fetchone()[0] == 1
    finally:
        reader.close()


def test_rows_by_name(conn):
    db.migrate(conn)
    row = conn.execute("SELECT 1 AS one").fetchone()
    assert row["one"] == 1


def test_schema_4_rewrites_old_result_words_to_the_guides(conn, monkeypatch):
    # events finding C3: logons said success/failure and logoffs logoff/timeout where
    # connections said succeeded/failed (guide: "(Succeeded/Failed)" for all of them)
    shipped = db.known_migrations()
    monkeypatch.setattr(db, "known_migrations", lambda: [m for m in shipped if m.version < 4])
    db.migrate(conn)
    old = [("logon", "success"), ("logon", "failure"), ("failed_logon", "failure"),
           ("failed_logon", "locked_out"), ("logoff", "logoff"), ("logoff", "timeout"),
           ("definitions_updated", "success"), ("definitions_updated", "failure"),
           ("connection_from", "failed"), ("rejected", "550")]
    with conn:
        conn.executemany("INSERT INTO events (time, category, action, result, process) "
                         "VALUES (1.0, 'system', ?, ?, 'console')", old)
    monkeypatch.setattr(db, "known_migrations", lambda: shipped)
    db.migrate(conn)
    assert [tuple(r) for r in conn.execute("SELECT action, result FROM events ORDER BY id")] == [
        ("logon", "succeeded"), ("logon", "failed"), ("failed_logon", "failed"),
        ("failed_logon", "locked_out"), ("logoff", "succeeded"), ("logoff", "succeeded"),
        ("definitions_updated", "succeeded"), ("definitions_updated", "failed"),
        ("connection_from", "failed"), ("rejected", "550")]
