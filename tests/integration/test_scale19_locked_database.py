"""A write lock on mailmoat.db held past the busy timeout (scale19 A1): an administrator's
`sqlite3` session left in BEGIN IMMEDIATE, a plain VACUUM. The core died of "database is
locked" from its status snapshot and its command poller, SMTP was down for about 50 s, and
the listener processes it took down lost the `accepted` events of mail they had answered 250.

Now the core's periodic writers wait for the database and say so once; mail goes on, and
every event is written once the lock goes. The real core in-process on a temp home, its
real SQLite file, a second connection holding the lock; the busy timeout (shared/db.py
BUSY_TIMEOUT_MS, 10 s) is made short so the lock outlasts it many times in a short test.
"""

from __future__ import annotations

import time

import pytest
import trio

from core.app import run_core
from shared import db
from shared.commands import Command
from shared.events import Action
from shared.status import read_snapshot
from tests.support.commands import ask, command_row
from tests.support.core import make_home, routed_home
from tests.support.mail import send_text
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

BUSY_TIMEOUT_MS = 100


def _drop_request(home, queue_id: str) -> int:
    return ask(home, Command.HOLD_DROP, {"ids": [queue_id]})


def _said(capsys, said: list[str], *words) -> bool:
    """Gather what the core said on stderr into `said`; whether all `words` are in it."""
    said.append(capsys.readouterr().err)
    return all(word in "".join(said) for word in words)


def _snapshot_time(home) -> float:
    conn = db.connect(home.db, readonly=True)
    try:
        return read_snapshot(conn)[1]
    finally:
        conn.close()


@pytest.mark.parametrize("listener_processes", [1, 2])
async def test_a_lock_held_past_the_busy_timeout_delays_writers_and_loses_nothing(
        tmp_path, sink, monkeypatch, capsys, listener_processes):
    """With listener processes (the finding's set-up) their events wait for the lock in
    their own writers: the core no longer takes them down with it."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)
    home = routed_home(tmp_path, sink, smtp__listener_processes=listener_processes)
    said: list[str] = []
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        await trio.to_thread.run_sync(send_text, port, "before the lock")
        await until(lambda: len(events_of(home, Action.ACCEPTED)) == 1,
                    flush=core.events.aflush)

        blocker = db.connect(home.db)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            locked_at = time.time()
            # the writers meet the lock past their busy timeout, and say so
            await until(lambda: _said(capsys, said, "status", "command"), 30)
            # mail goes on meanwhile: each message answered 250 (send_text raises if not)
            for n in range(5):
                await trio.to_thread.run_sync(send_text, port, f"during the lock {n}")
            # the lock outlasts the busy timeout many times over: every writer tried
            # again (and said nothing more) while the event writer kept its batch
            retries = core.events.busy_retries
            await until(lambda: core.events.busy_retries >= retries + 10, 30)
            await until(lambda: len(sink.messages) >= 6, 30)
            assert len(events_of(home, Action.ACCEPTED)) == 1   # the rest wait for the lock
            assert _snapshot_time(home) < locked_at
        finally:
            blocker.execute("COMMIT")
            blocker.close()

        for n in range(3):
            await trio.to_thread.run_sync(send_text, port, f"after the lock {n}")
        # the core took up its work again: the snapshot is written, a command carried out
        await until(lambda: _snapshot_time(home) > locked_at, 30)
        command_id = _drop_request(home, "no-such-id")
        row = await until(lambda: (r := command_row(home, command_id))["state"]
                          in ("done", "failed") and r, 30)
        assert row["state"] == "failed" and "not in the hold queue" in row["result"]
        subjects = ["before the lock"] + [f"during the lock {n}" for n in range(5)] \
            + [f"after the lock {n}" for n in range(3)]
        accepted = await until(
            lambda: len(rows := events_of(home, Action.ACCEPTED)) >= len(subjects) and rows,
            30, flush=core.events.aflush)
        assert sorted(r["subject"] for r in accepted) == sorted(subjects)   # each once
        assert len({r["queue_id"] for r in accepted}) == len(subjects)
        _said(capsys, said)
        nursery.cancel_scope.cancel()
    notices = "".join(said)
    # said once when each writer began to wait, once when it wrote again: not every try
    waiting = [line for line in notices.splitlines() if "locked" in line]
    assert any("status" in line for line in waiting), notices
    assert any("command" in line for line in waiting), notices
    assert len(waiting) == len({line for line in waiting}), notices
    assert any("again" in line for line in notices.splitlines()), notices


async def test_the_auto_whitelist_keeps_its_changes_and_its_deletions_wait_for_the_lock(
        tmp_path, monkeypatch, capsys):
    """The auto-generated whitelist's writer, the other periodic writer of the core: a
    flush that meets the lock keeps its changes for the next one, and a deletion the console
    asked for reports done only once written (its rule 4)."""
    from core.scan.antispam import autowhitelist
    from core.scan.antispam.autowhitelist import AutoWhitelist, load_entries
    from shared.clock import SYSTEM_CLOCK
    from shared.settings import defaults

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)
    monkeypatch.setattr(autowhitelist, "FLUSH_SECONDS", 0.05)
    home = make_home(tmp_path)
    settings = {**defaults(), "whitelist.auto.enabled": True,
                "routing.local": [{"match": "local.test"}]}
    whitelist = AutoWhitelist(home.db, lambda: settings, SYSTEM_CLOCK)

    def stored():
        conn = db.connect(home.db, readonly=True)
        try:
            return set(load_entries(conn))
        finally:
            conn.close()

    async with trio.open_nursery() as nursery:
        await nursery.start(whitelist.run)
        blocker = db.connect(home.db)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            whitelist.note_outbound(["a@partner.test", "b@other.test"])
            await until(lambda: _said(capsys, [], "auto-generated whitelist"), 30)
            deleted = []

            async def delete():
                deleted.append(await whitelist.delete_command({"domains": ["other.test"]}))
            tries = whitelist.busy.tries
            nursery.start_soon(delete)
            await until(lambda: whitelist.busy.tries >= tries + 3, 30)
            assert not deleted                  # not written: not done
            assert stored() == set()
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        await until(lambda: deleted, 30)
        assert "1 auto-generated whitelist entry removed" in deleted[0]
        await until(lambda: stored() == {"partner.test"}, 30)
        nursery.cancel_scope.cancel()
