"""`mailmoat migrate` (and `mailmoat run`, `mailmoat init`, which migrate too) refuse to upgrade
the database while a Mailmoat process runs on the data home (upgrade20 B1).

The new `migrate` applied 0004 under an older release's running core and console, which went
on writing the result words 0004 had just rewritten ("success", "failure") into rows no
migration looks at again: a report searched for "failed" missed those logons.

The older release's process is stood for by a process holding its lock (run/core.lock or
run/console.lock, as every release's core and console hold them while they run); the
database is a real home's, one migration behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from shared import db
from shared.cli import main
from shared.home import lock_holder
from tests.support.core import make_home

HOLD_THE_LOCK = """
import sys, time
from shared.home import hold_lock
from pathlib import Path
from shared.paths import DataHome
hold_lock(DataHome(Path(sys.argv[1])), sys.argv[2], "Mailmoat")
print("held", flush=True)
time.sleep(600)
"""


def _one_migration_behind(home) -> int:
    conn = db.connect(home.db)
    try:
        latest = db.schema_version(conn)
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
        return latest
    finally:
        conn.close()


def _schema(home) -> int:
    conn = db.connect(home.db)
    try:
        return db.schema_version(conn)
    finally:
        conn.close()


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path / "home")


@pytest.mark.parametrize("lock", ["core.lock", "console.lock", "run.lock"])
@pytest.mark.parametrize("command", [["migrate"], ["run"], ["init"]])
def test_the_database_is_not_upgraded_under_a_running_mailmoat(home, capsys, lock, command):
    latest = _one_migration_behind(home)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(home.root), lock],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status = main([*command, "--home", str(home.root)])
    finally:
        holder.kill()
        holder.wait()
    out, err = capsys.readouterr()
    assert status == 1
    assert err.startswith("mailmoat: another ") and f"is running on this data home (pid " \
        f"{holder.pid}); stop Mailmoat before its database is upgraded" in err, err
    assert _schema(home) == latest - 1
    # stopped, it upgrades
    assert main(["migrate", "--home", str(home.root)]) == 0
    assert _schema(home) == latest


def test_an_up_to_date_database_is_opened_while_mailmoat_runs(home, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(home.root),
                               "core.lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["migrate", "--home", str(home.root)]) == 0
    finally:
        holder.kill()
        holder.wait()
    assert capsys.readouterr().out.startswith("schema already at version")


def test_nothing_starts_while_the_database_is_upgraded(home, capsys, monkeypatch):
    # review20a R6: the check was a look before migrating; an older core started meanwhile
    # (a service manager's restart) read the old schema and wrote the old words after it
    _one_migration_behind(home)
    holders = []
    migrate = db.migrate

    def migrate_and_look(conn):
        holders.append([lock_holder(home, name) for name in ("run.lock", "core.lock",
                                                             "console.lock")])
        return migrate(conn)

    monkeypatch.setattr(db, "migrate", migrate_and_look)
    assert main(["migrate", "--home", str(home.root)]) == 0
    assert holders == [[str(os.getpid())] * 3]
    assert [lock_holder(home, name) for name in ("run.lock", "core.lock", "console.lock")] \
        == [None] * 3       # and let go after


def test_a_database_newer_than_this_release_says_so_while_mailmoat_runs(home, capsys):
    # review20a R5: it said to stop Mailmoat, and once stopped, that the database is newer
    conn = db.connect(home.db)
    try:
        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                     "VALUES (99, 'from_a_newer_release', 0)")
    finally:
        conn.close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(home.root),
                               "core.lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert main(["migrate", "--home", str(home.root)]) == 1
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "the database is at schema version 99, newer than this Mailmoat" in err, err
    assert "stop Mailmoat" not in err


def test_a_home_restored_without_run_is_upgraded(home, capsys):
    # review20d R1: a backup leaves run/ out; taking the locks met FileNotFoundError
    latest = _one_migration_behind(home)
    shutil.rmtree(home.run)
    assert main(["migrate", "--home", str(home.root)]) == 0
    assert _schema(home) == latest
