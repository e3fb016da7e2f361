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

import subprocess
import sys

import pytest

from shared import db
from shared.cli import main
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
    assert err.startswith("mailmoat: a ") and f"is running on this data home (pid " \
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
