"""Accepted events lost to a kill -9 (chaos finding 4): every process writes its events in
batches, and a process killed before its batch is written loses them. At start the core
writes the `accepted` event of every queued message that has none, so the reports count
every message the spool holds. A real core, a real spool and the events table."""

from __future__ import annotations

import json
import time

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import Action, EventWriter
from shared.spool import Envelope, Spool, new_queue_id
from tests.support.core import make_home

pytestmark = pytest.mark.trio

MESSAGE = b"From: a@client.test\r\nTo: user@local.test\r\nSubject: queued\r\n\r\nhello\r\n"
DAY = 86400


def _queue(home, queue: str, *, received_at: float, **fields) -> str:
    """A message as the listener left it in the spool (its 250 sent, or not yet)."""
    spool = Spool(home.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(MESSAGE)
    envelope = Envelope.new(queue_id, "a@client.test", ["user@local.test", "two@local.test"],
                            clock=lambda: received_at, client_ip="192.0.2.7",
                            meta={"subject": "queued"}, **fields)
    spool.commit([incoming.prepare(envelope)], queue)
    return queue_id


def _accepted(home) -> list:
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT * FROM events WHERE action = ? ORDER BY id",
                            (str(Action.ACCEPTED),)).fetchall()
    finally:
        conn.close()


async def test_a_queued_message_without_its_accepted_event_gets_one_at_start(tmp_path):
    home = make_home(tmp_path, delivery__paused=True, logging__retention_days=30)
    now = time.time()
    lost = {queue: _queue(home, queue, received_at=now - 60) for queue in ("fast", "slow",
                                                                            "hold")}
    written = _queue(home, "fast", received_at=now - 60)
    writer = EventWriter(home.db, "core")       # its event made it to the database
    writer.record(Action.ACCEPTED, queue_id=written, sender="a@client.test")
    writer.close()
    _queue(home, "fast", received_at=now - 60, is_generated=True)     # never "accepted"
    _queue(home, "slow", received_at=now - 40 * DAY)   # its event went with the retention
    for _ in range(2):                          # and a second start adds nothing
        async with trio.open_nursery() as nursery:
            core = await nursery.start(run_core, home)
            await core.events.aflush()
            core.cancel_scope.cancel()
    rows = _accepted(home)
    assert sorted(row["queue_id"] for row in rows) == sorted([*lost.values(), written])
    for row in rows:
        if row["queue_id"] == written:
            continue
        assert json.loads(row["data"]) == {"recovered": True}
        assert row["time"] == pytest.approx(now - 60)       # counted when it was accepted
        assert (row["sender"], row["recipients"], row["subject"], row["client_ip"],
                row["size"]) == ("a@client.test", "user@local.test;two@local.test",
                                 "queued", "192.0.2.7", len(MESSAGE))
