"""The retention job gives the space of purged events back to the disk (scale19 C2).

After a purge of 1.38 million events the database file kept its 250 MB for 42 MB of rows,
and nothing said how to reclaim it (a plain VACUUM holds the write lock for as long as it
runs). A database made by this release is in incremental auto-vacuum mode, and the job
releases free pages in short batches when they are more than a quarter of the file; a
database made before keeps its size until converted (docs/operations.md).

Real SQLite files of a data home, the console's own job (console.jobs.purge_old_events).
"""

from __future__ import annotations

import json
import os
import threading
import time

from console.jobs import purge_old_events
from shared import db
from shared.clock import FakeClock
from shared.events import EventWriter
from shared.busy import is_busy
from shared.retention import SECONDS_PER_DAY, give_space_back, purge_events
from tests.console.test_diagnostics_retention import _last_purge
from shared.settings_store import apply_changes

OLD_EVENTS = 20_000


def _fill_with_old_events(home, now: float) -> None:
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"logging.retention_days": 30})
        with db.write_transaction(conn):
            conn.executemany(
                "INSERT INTO events (time, category, action, result, info, process) "
                "VALUES (?, 'message', 'delivered', 'succeeded', ?, 'core')",
                [(now - 100 * SECONDS_PER_DAY + i, f"{i:08d} " + "x" * 400)
                 for i in range(OLD_EVENTS)])
    finally:
        conn.close()


def _file_octets(home) -> int:
    """The database file's size once the WAL is written back into it and truncated."""
    conn = db.connect(home.db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return os.path.getsize(home.db)


def _purge(home, now: float):
    writer = EventWriter(home.db, "console", FakeClock(now))
    try:
        purge_old_events(home, writer, writer.clock)
        writer.flush()
    finally:
        writer.close()
    return _last_purge(home)


def test_a_large_purge_shrinks_the_database_file(home):
    now = time.time()
    _fill_with_old_events(home, now)
    before = _file_octets(home)
    info, data = _purge(home, now)
    after = _file_octets(home)
    assert after < before / 3, (before, after)
    released = json.loads(data)["db_octets_released"]
    assert released >= (before - after) * 0.9
    assert f"{OLD_EVENTS - 1} event(s)" in info     # the newest row is kept (module rules)
    assert info.endswith(f"; {released / 1e6:.1f} MB of the database given back to the disk")


def test_a_database_made_before_the_mode_is_purged_and_keeps_its_size(home):
    conn = db.connect(home.db)
    try:        # what an older release's home is: made without auto-vacuum
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    finally:
        conn.close()
    now = time.time()
    _fill_with_old_events(home, now)
    before = _file_octets(home)
    info, data = _purge(home, now)
    assert _file_octets(home) == before
    assert json.loads(data)["db_octets_released"] == 0
    assert info.endswith("older than 30 days deleted"), info


def test_a_small_purge_leaves_the_free_pages_for_the_next_events(home):
    now = time.time()
    _fill_with_old_events(home, now)
    conn = db.connect(home.db)
    try:        # most of them recent: the purge frees less than a quarter of the file
        with db.write_transaction(conn):
            conn.execute("UPDATE events SET time = ? WHERE id % 10 != 0", (now,))
    finally:
        conn.close()
    before = _file_octets(home)
    info, data = _purge(home, now)
    assert json.loads(data)["db_octets_released"] == 0
    assert _file_octets(home) == before


def test_a_lock_another_program_keeps_ends_the_release_with_its_error(home, monkeypatch):
    # review20a R7: each try waited the busy timeout and tried again, for as long as an
    # `sqlite3` session stayed open: the job never ended and its event was never written
    now = time.time()
    _fill_with_old_events(home, now)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    conn = db.connect(home.db)
    try:
        purge_events(conn, now, 30)
        other = db.connect(home.db)
        other.execute("BEGIN IMMEDIATE")        # held until the release has given up
        ended = []
        thread = threading.Thread(target=lambda: ended.append(_raised(give_space_back, conn)))
        thread.start()
        thread.join(60)
        other.execute("ROLLBACK")
        other.close()
        assert ended and is_busy(ended[0]), ended
        assert give_space_back(conn) > 0            # the lock gone, the next run does it
    finally:
        conn.close()


def _raised(function, *args):
    try:
        function(*args)
    except Exception as exc:        # what the caller (the job) gets
        return exc
    return None


def test_a_lock_another_program_keeps_ends_the_purge_with_its_error(home, monkeypatch):
    # the deletes' retries are bounded the same way (one helper): the job records a failed
    # purge and its next run deletes them
    now = time.time()
    _fill_with_old_events(home, now)
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    conn = db.connect(home.db)
    other = db.connect(home.db)
    try:
        other.execute("BEGIN IMMEDIATE")
        ended = []
        thread = threading.Thread(target=lambda: ended.append(
            _raised(purge_events, conn, now, 30)))
        thread.start()
        thread.join(60)
        other.execute("ROLLBACK")
        assert ended and is_busy(ended[0]), ended
        assert purge_events(conn, now, 30).deleted == OLD_EVENTS - 1
    finally:
        other.close()
        conn.close()
