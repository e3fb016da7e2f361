"""The console while the data home's disk is full or its database locked (diskfull21 B1, B3).

B1: a Save or a Hold Queue button on a full disk ended on the 500 "Something went wrong"
page, with an ERROR and a 30-line traceback ending in SQLite's "database or disk is full",
while `mailmoat config set` said "no space left on the data home's disk". Now a 503 page
says so and that nothing was changed, and the log has one WARNING line; the same for a
database another program holds locked past the busy timeout.

B3: the Status page said "The core is not running" while the core ran, answered 452 and
delivered, only because a full disk kept it from writing its status report. Now the page
asks run/core.lock whether the core runs and says that the disk is full.

The full disk is a real, small tmpfs filled to the last byte in a mount namespace of its
own (tests/support/full_disk_console.py); the lock, a real second SQLite connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile

import pytest

from shared import db
from shared.disk import DiskSpace
from shared.home import CORE_LOCK, hold_lock
from tests.console.test_configuration import _form_fields
from tests.console.test_status import _snapshot
from tests.support.namespaces import in_own_mount

FULL = DiskSpace(free_octets=0, total_octets=48 << 20)
ROOMY = DiskSpace(free_octets=40 << 20, total_octets=48 << 20)


def _text(page: str) -> str:
    import html
    import re
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


# --- a real full disk -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_disk(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("console-full-disk"),
                        "tests.support.full_disk_console")


@pytest.mark.slow
def test_a_save_and_a_hold_button_on_a_full_disk_say_the_disk_is_full(full_disk):
    assert full_disk["logon"] == 302
    for answer in (full_disk["save"], full_disk["hold"]):
        assert answer["status"] == 503, _text(answer["html"])[:2000]
        text = _text(answer["html"])
        assert "The disk of the data home is full, so the console could not save this: " \
               "nothing was changed by the step that failed." in text
        assert "Something went wrong" not in text and "Traceback" not in text
    assert not full_disk["saved"] and full_disk["commands"] == 0
    # one WARNING line each, no ERROR, no traceback
    assert [line["level"] for line in full_disk["log"]] == ["WARNING", "WARNING"], \
        full_disk["log"]
    assert not any(line["traceback"] for line in full_disk["log"])
    save, hold = (line["message"] for line in full_disk["log"])
    assert "POST '/configuration/setup' answered 503: no space left on the data home's " \
           "disk (database or disk is full)" in save
    assert "POST '/configuration/hold/action' answered 503" in hold
    # with room again, the same two go through: it was the disk
    assert full_disk["save_with_room"] == 302 and full_disk["hold_with_room"] == 302


@pytest.mark.slow
def test_the_status_page_on_a_full_disk_says_so_and_that_the_core_runs(full_disk):
    text = _text(full_disk["status"]["html"])
    assert full_disk["status"]["status"] == 200
    assert f"The core is running (pid {full_disk['pid']}), but its last status report " \
           "is from" in text
    assert "the data home's disk is full (0.0 MB free), so the core cannot write its " \
           "status report or its events." in text
    assert "The core is not running" not in text


# --- a locked database ------------------------------------------------------------------------

@pytest.fixture
def locked(home, monkeypatch):
    """Call it to hold mailmoat.db locked as another program does (an `sqlite3` session
    inside a write transaction), past the console's busy timeout, made short."""
    other = db.connect(home.db)     # its own timeout the usual one
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    yield lambda: other.execute("BEGIN IMMEDIATE")
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_a_save_and_a_hold_button_on_a_locked_database_say_it_is_locked(admin, locked,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="mailmoat.console")
    setup = _form_fields(admin, "/configuration/setup")
    setup["smtp__max_incoming"] = "20"
    before = admin.settings()
    locked()
    caplog.clear()
    answers = [admin.post("/configuration/setup", setup),
               admin.post("/configuration/hold/action", {"action": "reprocess",
                                                         "ids": "q2bbbb"})]
    for answer in answers:
        text = _text(answer.get_data(as_text=True))
        assert answer.status_code == 503, text[:2000]
        assert "The database, mailmoat.db, is locked by another program" in text
        assert "nothing was changed by the step that failed" in text
    lines = [r for r in caplog.records if r.name == "mailmoat.console"]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING"], \
        [r.getMessage() for r in lines]
    assert not any(r.exc_info for r in lines)
    assert "answered 503: mailmoat.db is locked by another program (an sqlite3 session left " \
           "inside a transaction, a VACUUM) (database is locked)" in lines[0].getMessage()
    assert admin.settings() == before


# --- the Status page: the core's lock and the disk -------------------------------------------

@pytest.fixture
def core_lock(home):
    """run/core.lock held as a running core holds it."""
    home.run.mkdir(exist_ok=True)
    fd = hold_lock(home, *CORE_LOCK)
    yield str(os.getpid())
    os.close(fd)


def _status(admin, app, space: DiskSpace) -> str:
    app.extensions["mailmoat"].disk_space = lambda path: space
    return _text(admin.get("/status/").get_data(as_text=True))


def test_a_stale_report_on_a_full_disk_with_the_core_lock_held_says_running_and_full(
        admin, app, home, clock, core_lock):
    _snapshot(home, clock, age=60)
    text = _status(admin, app, FULL)
    assert f"The core is running (pid {core_lock}), but its last status report is from " in text
    assert "the data home's disk is full (0.0 MB free), so the core cannot write its status " \
           "report or its events." in text
    assert "restarting it frees none" in text
    assert "The core is not running" not in text


def test_a_stale_report_on_a_full_disk_without_the_lock_says_not_running_and_full(
        admin, app, home, clock):
    _snapshot(home, clock, age=60)
    text = _status(admin, app, FULL)
    assert "The core is not running: its last status report is from" in text
    assert "The data home's disk is full (0.0 MB free). Free some space on that disk." in text


def test_a_stale_report_with_the_lock_held_and_room_names_the_likely_causes(
        admin, app, home, clock, core_lock):
    _snapshot(home, clock, age=60)
    text = _status(admin, app, ROOMY)
    assert f"The core is running (pid {core_lock}), but its last status report is from" in text
    # review21b R2: not one cause named; a start over a large queue looks the same
    assert "it holds its lock but has not written a newer one. It may be still starting " \
           "(a start recovers the queues first, which takes a while when they are large), " \
           "or stopping; another program may hold mailmoat.db locked (the core's standard " \
           "error then says so); or it may be hung." in text
    assert "it could not write" not in text
    assert "disk is full" not in text


def test_no_inode_left_is_a_full_disk(admin, app, home, clock):
    _snapshot(home, clock, age=60)
    text = _status(admin, app, DiskSpace(40 << 20, 48 << 20, free_inodes_fraction=0.0))
    assert "The data home's disk is full (no inode free)" in text


def test_a_live_report_says_nothing_of_the_disk(admin, app, home, clock, core_lock):
    _snapshot(home, clock)
    text = _status(admin, app, FULL)
    assert "The core is running. Figures since it last started" in text
    assert "disk is full" not in text


# --- what the request did, and whose disk (review21b R1) -------------------------------------

def _sqlite_error(kind: str) -> sqlite3.OperationalError:
    """A real error of SQLite's: SQLITE_FULL (a database at its page limit, as one on a
    full disk answers), SQLITE_BUSY (a file another connection holds exclusively) or
    SQLITE_LOCKED (a table dropped under its own open read)."""
    if kind == "busy":
        with tempfile.TemporaryDirectory() as where:
            holder = sqlite3.connect(f"{where}/held.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            reader = sqlite3.connect(f"{where}/held.db", timeout=0)
            try:
                reader.execute("SELECT * FROM sqlite_master").fetchall()
            except sqlite3.OperationalError as exc:
                return exc
            finally:
                reader.close()
                holder.close()
        raise AssertionError("no busy error")
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (x)")
        if kind == "full":
            conn.execute("PRAGMA max_page_count = 2")
            conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
        else:
            conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            reading = conn.execute("SELECT x FROM t")
            reading.fetchone()
            conn.execute("DROP TABLE t")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"no {kind} error")


@pytest.fixture
def failing_status(monkeypatch):
    """Call it with an error for the Status page's service to raise."""
    from console.status import views

    def install(exc: Exception) -> None:
        def fail():
            raise exc
        monkeypatch.setattr(views, "status_view", fail)
    return install


def test_a_page_read_under_another_programs_lock_says_it_could_not_be_shown(
        admin, failing_status, caplog):
    """A lock that keeps even readers out (another program's exclusive lock, a VACUUM into
    a rollback journal): the page said "could not save this" for a read."""
    caplog.set_level(logging.INFO, logger="mailmoat.console")
    failing_status(_sqlite_error("busy"))
    answer = admin.get("/status/")
    text = _text(answer.get_data(as_text=True))
    assert answer.status_code == 503, text[:2000]
    assert "The database, mailmoat.db, is locked by another program (an sqlite3 session " \
           "left inside a transaction, a VACUUM), so the console could not show this " \
           "page. Reload the page once that program is done." in text
    assert "save" not in text and "nothing was changed" not in text
    [line] = [r for r in caplog.records if r.name == "mailmoat.console"]
    assert line.levelname == "WARNING" and not line.exc_info
    assert "GET '/status/' answered 503: mailmoat.db is locked by another program" in \
        line.getMessage()


def test_out_of_space_with_the_data_home_roomy_does_not_blame_the_data_home(
        admin, app, failing_status, caplog):
    """SQLite's temporary files (a sort that spills) go to SQLITE_TMPDIR, /var/tmp or
    /tmp: a full /tmp is no full data home, and the core does not refuse mail for it."""
    caplog.set_level(logging.INFO, logger="mailmoat.console")
    failing_status(_sqlite_error("full"))
    text = _status(admin, app, ROOMY)
    assert "Out of disk space" in text
    assert "The console ran out of disk space, so it could not show this page (no space " \
           "left on a disk other than the data home's, which has room (SQLite's temporary " \
           "files go to SQLITE_TMPDIR, /var/tmp or /tmp), or a disk quota reached). Free " \
           "some space on that disk, or raise the quota, then reload the page." in text
    # "refuses new mail with 452", not a bare "452": a random request id on the page may
    # hold those digits (one run in some 500)
    assert "data home is full" not in text and "refuses new mail" not in text
    [line] = [r for r in caplog.records if r.name == "mailmoat.console"]
    assert line.levelname == "WARNING" and not line.exc_info
    # the same error with the data home's disk full is the data home's
    text = _status(admin, app, FULL)
    assert "The disk of the data home is full, so the console could not show this page. " \
           "Mail is not lost meanwhile" in text
    assert "reload the page" in text and "nothing was changed" not in text


def test_a_table_locked_in_the_consoles_own_connection_is_a_bug_not_another_program(
        admin, app, failing_status, caplog):
    """SQLITE_LOCKED comes from within one connection, the console's: it was logged as a
    WARNING blaming "another program", with no traceback."""
    caplog.set_level(logging.INFO, logger="mailmoat.console")
    failing_status(_sqlite_error("table locked"))
    answer = admin.get("/status/")
    assert answer.status_code == 500
    assert "Something went wrong" in _text(answer.get_data(as_text=True))
    [line] = [r for r in caplog.records if r.name == "mailmoat.console"]
    assert line.levelname == "ERROR" and line.exc_info
