"""The core's control channel (core/control.py) on a real SQLite home: a command sees every
setting committed before it."""

from __future__ import annotations

import sqlite3

import trio

from core.control import CommandRunner, SettingsWatcher
from shared import db
from shared.home import initialise
from shared.paths import DataHome
from shared.settings_store import apply_changes
from tests.support.commands import ask, command_row


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
    _save_and_ask(home)
    await _until(lambda: seen)
    assert seen == [["moved.example"]]


class _LockedWatcher(SettingsWatcher):
    """A watcher whose reads meet the lock while `locked` is set. Simulated: a read in WAL
    mode meets it only in rare states (a lock held in exclusive locking mode, which needs
    every other connection closed, the watcher's own included), so the error SQLite gives
    then is raised here in its place."""

    locked = True

    def _reload_if_changed(self):
        if self.locked:
            raise sqlite3.OperationalError("database is locked")
        return super()._reload_if_changed()


def _command_state(home, command_id) -> str:
    return command_row(home, command_id)["state"]


def _save_and_ask(home) -> int:
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"whitelist.auto.exclusions": ["moved.example"]})
    finally:
        conn.close()
    return ask(home, "test.look", {}, requested_by="admin")


async def _until(condition) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.05)


async def test_the_settings_read_after_a_claim_waits_for_a_locked_database(tmp_path, nursery):
    """review19 r5 R2: the read met the lock and the runner, the core with it, stopped.
    Now it waits, said once, and the handler still sees the settings saved before."""
    home = _home(tmp_path)
    watcher = _LockedWatcher(home.db)
    seen = []

    async def handler(args):
        seen.append(list(watcher()["whitelist.auto.exclusions"]))
        return "ok"

    runner = CommandRunner(home.db, watcher)
    runner.register("test.look", handler)
    await nursery.start(runner.run)
    command_id = _save_and_ask(home)
    await _until(lambda: runner.busy.tries >= 3)        # tried again while locked
    assert seen == [] and _command_state(home, command_id) == "running"
    watcher.locked = False
    await _until(lambda: seen)
    assert seen == [["moved.example"]]
    await _until(lambda: _command_state(home, command_id) == "done")
    assert not runner.busy.waiting


async def test_a_stop_while_the_settings_wait_puts_the_command_back(tmp_path):
    """It never began: pending again, not INTERRUPTED at the next start."""
    home = _home(tmp_path)
    watcher = _LockedWatcher(home.db)
    runner = CommandRunner(home.db, watcher)
    runner.register("test.look", lambda args: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        command_id = _save_and_ask(home)
        await _until(lambda: runner.busy.tries >= 1)
        assert _command_state(home, command_id) == "running"
        nursery.cancel_scope.cancel()
    assert _command_state(home, command_id) == "pending"


async def test_a_listener_watcher_names_its_process_in_its_busy_notices(tmp_path, capsys):
    """review21d C3: each SMTP listener process's watcher said "mailmoat core: mailmoat.db
    stayed locked …", once per process, as if the core's own were said N times."""
    from core.smtp.listener_main import said_as
    home = _home(tmp_path)
    watcher = _LockedWatcher(home.db, said_as=said_as(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(watcher.run)
        await _until(lambda: watcher.busy.tries >= 1)
        watcher.locked = False
        await _until(lambda: not watcher.busy.waiting)
        nursery.cancel_scope.cancel()
    assert capsys.readouterr().err.splitlines() == [
        "mailmoat core (SMTP listener 1): mailmoat.db stayed locked by another connection "
        "past the busy timeout (database is locked): reloading the settings waits and is "
        "tried again",
        "mailmoat core (SMTP listener 1): mailmoat.db is free again: reloading the settings "
        "goes on"]
