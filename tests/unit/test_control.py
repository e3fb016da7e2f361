"""The core's control channel (core/control.py) on a real SQLite home: a command sees every
setting committed before it."""

from __future__ import annotations

import trio

from core.control import CommandRunner, SettingsWatcher
from shared import db
from shared.home import initialise
from shared.paths import DataHome
from shared.settings_store import apply_changes


def _home(tmp_path) -> DataHome:
    home = DataHome(tmp_path / "home")
    initialise(home, admin_password="Secret-Test-1")
    return home


async def test_a_command_sees_the_settings_saved_before_it(tmp_path, nursery):
    home = _home(tmp_path)
    watcher = SettingsWatcher(home.db)     # not polling: only the runner refreshes it
    seen = []

    async def handler(args):
        seen.append(list(watcher()["whitelist.auto.exclusions"]))
        return "ok"

    runner = CommandRunner(home.db, watcher)
    runner.register("test.look", handler)
    await nursery.start(runner.run)
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"whitelist.auto.exclusions": ["moved.example"]})
        conn.execute("INSERT INTO commands (created_at, kind, args, requested_by) "
                     "VALUES (0, 'test.look', '{}', 'admin')")
        with trio.fail_after(10):
            while not seen:
                await trio.sleep(0.05)
    finally:
        conn.close()
    assert seen == [["moved.example"]]
