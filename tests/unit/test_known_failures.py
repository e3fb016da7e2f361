"""The data home's failures and their words, shared by the command line and the console
(shared/known_failures.py; review21b R1, D3). Real errors of SQLite's and the OS."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from shared.busy import is_busy
from shared.disk import DiskSpace
from shared.known_failures import (DATA_HOME_FULL, FULL_DISK_OCTETS, LOCKED, OUT_OF_SPACE,
                                   full_notice, known_failure)

ROOMY = DiskSpace(free_octets=40 << 20, total_octets=48 << 20)
FULL = DiskSpace(free_octets=FULL_DISK_OCTETS - 1, total_octets=48 << 20)


def _sqlite_full() -> sqlite3.OperationalError:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA max_page_count = 2")
    conn.execute("CREATE TABLE t (x)")
    with pytest.raises(sqlite3.OperationalError) as raised:
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
    conn.close()
    return raised.value


def _sqlite_busy(tmp_path) -> sqlite3.OperationalError:
    holder = sqlite3.connect(tmp_path / "held.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    reader = sqlite3.connect(tmp_path / "held.db", timeout=0)
    with pytest.raises(sqlite3.OperationalError) as raised:
        reader.execute("SELECT * FROM sqlite_master").fetchall()
    reader.close()
    holder.close()
    return raised.value


def _sqlite_table_locked() -> sqlite3.OperationalError:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    reading = conn.execute("SELECT x FROM t")
    reading.fetchone()                  # a read still open on the table
    with pytest.raises(sqlite3.OperationalError) as raised:
        conn.execute("DROP TABLE t")
    conn.close()
    return raised.value


@pytest.mark.parametrize("error", [_sqlite_full(), OSError(errno.ENOSPC, "No space left")])
def test_out_of_space_is_the_data_homes_only_when_its_disk_is_full(tmp_path, error):
    assert known_failure(error, tmp_path, lambda path: FULL).kind == DATA_HOME_FULL
    roomy = known_failure(error, tmp_path, lambda path: ROOMY)
    assert roomy.kind == OUT_OF_SPACE
    assert "other than the data home's, which has room" in roomy.reason
    assert "SQLITE_TMPDIR, /var/tmp or /tmp" in roomy.reason


def test_out_of_space_with_the_data_home_not_seen_blames_neither_disk_alone(tmp_path):
    def unseen(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    found = known_failure(_sqlite_full(), tmp_path, unseen)
    assert found.kind == OUT_OF_SPACE
    assert "the data home's, or the one of SQLite's temporary files" in found.reason


def test_another_programs_lock_is_locked_but_a_table_locked_in_our_connection_is_a_bug(
        tmp_path):
    assert known_failure(_sqlite_busy(tmp_path), tmp_path).kind == LOCKED
    table_locked = _sqlite_table_locked()
    assert known_failure(table_locked, tmp_path) is None
    assert is_busy(table_locked)        # the core's writers still wait on it, as before


def test_anything_else_is_no_known_failure(tmp_path):
    assert known_failure(RuntimeError("bug"), tmp_path) is None
    assert known_failure(OSError(errno.EACCES, "Permission denied"), tmp_path) is None


def test_full_notice_says_how_much_is_free():
    assert full_notice(ROOMY) == ""
    assert full_notice(FULL) == "1.0 MB free"
    assert full_notice(DiskSpace(40 << 20, 48 << 20, free_inodes_fraction=0.0)) == \
        "no inode free"
