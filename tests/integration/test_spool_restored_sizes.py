"""A message file cut short in a restored backup (backup-restore finding 4) is not delivered:
the core sets it aside at start with a `spool.corrupt` event, as any damaged entry. Before,
its new inode exempted it from the size check and the next hop got the first 150 octets.
The real core on a home copied as `cp -a` copies it; a loopback sink as next hop."""

from __future__ import annotations

import shutil

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.paths import DataHome
from shared.spool import CORRUPT, CORRUPT_RULE, Envelope, Spool, new_queue_id
from tests.support.core import routed_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

MESSAGE = (b"Received: from client.test\r\nFrom: a@client.test\r\nTo: u@local.test\r\n"
           b"Subject: whole\r\nMessage-ID: <whole@client.test>\r\n\r\n" + b"body\r\n" * 40)


async def test_a_restored_message_cut_short_is_set_aside_not_delivered(tmp_path, sink):
    source = routed_home(tmp_path / "old", sink)
    spool = Spool(source.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(MESSAGE)
    spool.commit([incoming.prepare(Envelope.new(
        queue_id, "a@client.test", ["u@local.test"], processed=True, attempts=1,
        next_attempt_at=0.0, first_deferral_notice_sent=True))], "slow")
    shutil.copytree(source.root, tmp_path / "restored")
    home = DataHome(tmp_path / "restored")
    with open(Spool(home.spool).message_path("slow", queue_id), "r+b") as message:
        message.truncate(150)                   # what an interrupted copy leaves
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        rows = await until(lambda: [r for r in events_of(home, Action.SCAN_ERROR)
                                    if r["rule"] == CORRUPT_RULE], flush=core.events.aflush)
        core.cancel_scope.cancel()
    [row] = rows
    assert row["queue_id"] == queue_id
    assert row["info"].endswith(f"the message file has 150 octets, its envelope says "
                                f"{len(MESSAGE)}")
    assert list(Spool(home.spool).list(CORRUPT)) == [queue_id] and sink.messages == []
