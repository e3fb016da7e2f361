"""The core's control channel (core/control.py) on a real SQLite home: a command sees every
setting committed before it."""

from __future__ import annotations

import json
import sqlite3

import pytest
import trio

from core.control import PARKED, CommandRunner, SettingsWatcher
from shared import db
from shared.commands import Command
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


# --- a request that waits apart for its kind's event (a hold action: the look at start) -----

def _waiting_runner(home, ran: list) -> tuple[CommandRunner, trio.Event]:
    """A runner whose hold drops and reprocesses wait for the event it returns (as the core's
    wait for the queue manager's look at hold/), and whose auto-whitelist deletes do not."""
    look = trio.Event()

    def handler(kind):
        async def carry_out(args):
            ran.append((kind, args))
            return f"{kind} done"
        return carry_out

    runner = CommandRunner(home.db)
    for kind in (Command.HOLD_DROP, Command.HOLD_REPROCESS):
        runner.register(kind, handler(kind), waits_for=look)
    runner.register(Command.WHITELIST_AUTO_DELETE, handler(Command.WHITELIST_AUTO_DELETE))
    return runner, look


def _stored_args(conn, command_id) -> dict:
    return json.loads(conn.execute("SELECT args FROM commands WHERE id = ?",
                                   (command_id,)).fetchone()[0])


@pytest.mark.parametrize("args", [{}, {"ids": ["HELD1"]}])
async def test_a_kill_while_a_request_waits_apart_leaves_it_pending_as_asked(tmp_path,
                                                                              nursery, args):
    """review24a R2: its row is `running` while it waits, and the next start failed it as
    INTERRUPTED ("part of it may be done": a drop of all held mail) or carried it out again
    as RESUMED (one naming its ids), though it never began."""
    home = _home(tmp_path)
    runner, _look = _waiting_runner(home, ran := [])
    await nursery.start(runner.run)
    command_id = ask(home, Command.HOLD_DROP, args)
    await _until(lambda: _command_state(home, command_id) == "running")
    # the database as a kill -9 (a crash, a power cut) now leaves it, and the next start
    # over it, whose look has ended
    after_kill = DataHome(tmp_path / "after_kill")
    after_kill.root.mkdir()
    source, copy = db.connect(home.db), sqlite3.connect(after_kill.db)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    restarted, look = _waiting_runner(after_kill, ran)
    look.set()
    await nursery.start(restarted.run)
    await _until(lambda: _command_state(after_kill, command_id) not in ("pending", "running"))
    assert tuple(command_row(after_kill, command_id)) == ("done", f"{Command.HOLD_DROP} done")
    assert ran == [(Command.HOLD_DROP, args)]


async def test_a_request_waiting_apart_when_its_event_comes_under_a_lock_waits_for_it(
        tmp_path, nursery, monkeypatch, capsys):
    """review24a T2: it is carried out once its mark can be cleared, the hold actions in
    the order asked, and the others were carried out while it waited."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    home = _home(tmp_path)
    runner, look = _waiting_runner(home, ran := [])
    await nursery.start(runner.run)
    first = ask(home, Command.HOLD_DROP, {})
    await _until(lambda: _command_state(home, first) == "running")
    second = ask(home, Command.HOLD_REPROCESS, {"ids": ["HELD1"]})
    other = ask(home, Command.WHITELIST_AUTO_DELETE, {"domains": ["ext.test"]})
    await _until(lambda: _command_state(home, other) == "done")
    assert _command_state(home, second) == "pending"
    locker = sqlite3.connect(home.db, isolation_level=None, timeout=0)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        look.set()
        await _until(lambda: runner.busy.tries >= 2)
        # still marked: a kill now leaves it pending at the next start
        assert _stored_args(locker, first) == {PARKED: True}
        assert ran == [(Command.WHITELIST_AUTO_DELETE, {"domains": ["ext.test"]})]
        locker.execute("COMMIT")
    finally:
        locker.close()
    await _until(lambda: _command_state(home, second) == "done")
    assert tuple(command_row(home, first)) == ("done", f"{Command.HOLD_DROP} done")
    assert ran[1:] == [(Command.HOLD_DROP, {}), (Command.HOLD_REPROCESS, {"ids": ["HELD1"]})]
    conn = db.connect(home.db)
    try:
        assert _stored_args(conn, first) == {}
    finally:
        conn.close()
    assert "mailmoat.db is free again" in capsys.readouterr().err
