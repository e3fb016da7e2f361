"""Requests a core was carrying out when it stopped (backup-restore finding 5): a row left
`running` by a kill -9, or by a database backup taken during a command, is taken up at the
next start — carried out again when that does what was asked, else failed with a reason —
so the virus quarantine copy it is about is no longer hidden from the console for good.
The real core on a temp home, its real SQLite database."""

from __future__ import annotations

import json
import time

import pytest
import trio

from core.app import run_core
from shared import db
from shared.commands import INTERRUPTED, Command
from shared.spool import Envelope, Spool, new_queue_id
from tests.support.core import routed_home
from tests.support.waiting import until

pytestmark = pytest.mark.trio


def _left_running(home, kind: Command, args: dict) -> int:
    conn = db.connect(home.db)
    try:
        conn.execute("INSERT INTO commands (created_at, kind, args, requested_by, state) "
                     "VALUES (?, ?, ?, 'console', 'running')",
                     (time.time(), str(kind), json.dumps(args)))
        return conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    finally:
        conn.close()


def _row(home, command_id: int):
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT state, result FROM commands WHERE id = ?",
                            (command_id,)).fetchone()
    finally:
        conn.close()


def _put(spool: Spool, queue: str) -> str:
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"Subject: s\r\n\r\nbody\r\n")
    spool.commit([incoming.prepare(Envelope.new(queue_id, "a@b.test", ["u@local.test"],
                                                hold_reason="held"))], queue)
    return queue_id


async def test_commands_left_running_are_carried_out_again_or_failed(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    copy, held = _put(spool, "quarantine/virus"), _put(spool, "hold")
    delete = _left_running(home, Command.VIRUS_QUARANTINE_DELETE, {"ids": [copy]})
    drop_one = _left_running(home, Command.HOLD_DROP, {"ids": [held]})
    drop_all = _left_running(home, Command.HOLD_DROP, {})
    forward = _left_running(home, Command.HOLD_FORWARD, {"address": "x@local.test"})
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        await until(lambda: all(_row(home, c)["state"] in ("done", "failed")
                                for c in (delete, drop_one, drop_all, forward)))
        core.cancel_scope.cancel()
    assert tuple(_row(home, delete)) == ("done", "1 virus quarantine copy deleted")
    assert list(spool.list("quarantine/virus")) == []
    assert tuple(_row(home, drop_one)) == ("done", "1 message(s) dropped")  # names them
    for command_id in (drop_all, forward):      # would take in mail held since, or send twice
        assert tuple(_row(home, command_id)) == ("failed", INTERRUPTED)
    assert list(spool.list("hold")) == [] and sink.messages == []
