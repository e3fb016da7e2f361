"""What a delivery attempt cut by a clean stop leaves written when recording its results
goes wrong (core/spool/manager.py rule 7; review16b C2): bob delivered by the primary, dave
refused (550), carol greylisted and handed on to a backup that takes the connection and never
greets, so the stop's grace (0.1 s here) cuts the attempt while it waits. The attempt was
recorded bounce first, then the envelope: a bounce that could not be queued (a full disk)
left bob "pending" on disk and the restart sent him a second copy, and a record cut by its
deadline said nothing. Nor did the events name the backup the attempt waited on (C4).
Real queue manager and deliverer, scripted hops on loopback.
"""

from __future__ import annotations

import errno
import time

import pytest
import trio

from core.spool import files
from core.spool import manager as manager_module
from shared.events import CONNECTION_FAILED, CONNECTION_SUCCEEDED, Action
from tests.integration.test_queue import Harness
from tests.support.next_hop import ScriptedHop, silent_host

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

BOB, CAROL, DAVE = "bob@dest.test", "carol@dest.test", "dave@dest.test"


async def cut_attempt(tmp_path, nursery, dns_server):
    """The message from alice (a bounce goes back to her) to bob, carol and dave, taken up
    and stopped as the backup is reached. The harness, the queue id and the primary."""
    primary = ScriptedHop(**{f"rcpt_{CAROL}": b"450 4.2.1 greylisted, try again later",
                             f"rcpt_{DAVE}": b"550 5.1.1 no such user"})
    port, backup_reached = await silent_host(nursery)
    await nursery.start(primary.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.1")
    h = Harness(tmp_path, [{"match": "dest.test", "port": port}],
                **{"dns.resolvers": [dns_server.resolver]})
    async with trio.open_nursery() as inner:
        manager = h.manager()
        await inner.start(manager.run)
        queue_id = h.put("alice@sender.test", [BOB, CAROL, DAVE])
        manager.message_accepted(queue_id)
        with trio.fail_after(10):
            await backup_reached.wait()
        inner.cancel_scope.cancel()                    # the clean stop
    return h, queue_id, primary


def on_disk(h, queue_id) -> list[tuple[str, str]]:
    [queue] = [q for q in ("fast", "slow") if queue_id in h.ids(q)]
    return [(r.address, r.status) for r in h.spool.read_envelope(queue, queue_id).recipients]


def bounces(h) -> list[str]:
    return [i for i in h.ids("fast") if h.spool.read_envelope("fast", i).is_bounce]


async def test_a_connect_cut_by_the_stop_names_the_host_it_waited_on(tmp_path, nursery,
                                                                     dns_server, monkeypatch):
    monkeypatch.setattr(manager_module, "STOP_GRACE_SECONDS", 0.1)
    h, queue_id, _ = await cut_attempt(tmp_path, nursery, dns_server)
    port = h.values["routing.local"][0]["port"]
    assert [(f["data"]["host"], f["result"], f["info"].partition(" connection to ")[2]
             if f["result"] == CONNECTION_SUCCEEDED else f["info"])
            for f in h.events.of(Action.CONNECTED_TO)] == [
        ("mx1.dest.test", CONNECTION_SUCCEEDED, f"mx1.dest.test[127.0.0.3]:{port}, no TLS"),
        ("mx2.dest.test", CONNECTION_FAILED,
         f"mx2.dest.test[127.0.0.1]:{port}: cut by the stop before the session was ready")]
    assert all(f["queue_id"] == queue_id for f in h.events.of(Action.CONNECTED_TO))


async def test_a_bounce_that_cannot_be_queued_at_the_stop_leaves_the_delivered_recipient_written(
        tmp_path, nursery, dns_server, monkeypatch):
    monkeypatch.setattr(manager_module, "STOP_GRACE_SECONDS", 0.1)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "write_generated", disk_full)
    h, queue_id, primary = await cut_attempt(tmp_path, nursery, dns_server)
    assert len(primary.messages) == 1
    # bob's copy is recorded; dave, not bounced, is still to do, and gets his bounce at the
    # retry after the start; nothing says dave failed before his bounce is queued
    assert on_disk(h, queue_id) == [(BOB, "delivered"), (CAROL, "pending"), (DAVE, "pending")]
    assert bounces(h) == []
    [error] = h.events.of(Action.SCAN_ERROR)
    assert "No space left on device" in error["info"]


async def test_a_record_cut_by_its_deadline_writes_an_event(tmp_path, nursery, dns_server,
                                                            monkeypatch):
    monkeypatch.setattr(manager_module, "STOP_GRACE_SECONDS", 0.1)
    monkeypatch.setattr(manager_module, "RECORD_CUT_SECONDS", 0.5)
    write_generated = files.write_generated

    def slow_disk(*args, **kwargs):                    # the bounce outlasts the deadline
        time.sleep(2)
        return write_generated(*args, **kwargs)

    monkeypatch.setattr(files, "write_generated", slow_disk)
    h, queue_id, primary = await cut_attempt(tmp_path, nursery, dns_server)
    [error] = h.events.of(Action.SCAN_ERROR)
    assert error["queue_id"] == queue_id and error["rule"] == "queue.error"
    assert error["info"] == ("the stop cut the recording of a delivery attempt's results 0.5 s "
                             "after its grace: after the next start, what the queue file does "
                             "not show as delivered or bounced is done again")
    # bob was written before the bounce began: only dave's bounce may come twice
    assert on_disk(h, queue_id) == [(BOB, "delivered"), (CAROL, "pending"), (DAVE, "pending")]
    assert len(bounces(h)) == 1


async def test_without_a_stop_a_slow_record_is_not_cut(tmp_path, sink, nursery, monkeypatch):
    # the deadline applied to every attempt's record, stop or not: a bounce slower than it
    # (a busy disk) left the envelope unwritten, bob "pending" and the message in fast/, to
    # be taken up and sent to bob again
    monkeypatch.setattr(manager_module, "RECORD_CUT_SECONDS", 0.3)
    write_generated = files.write_generated

    def slow_disk(*args, **kwargs):
        time.sleep(1)
        return write_generated(*args, **kwargs)

    monkeypatch.setattr(files, "write_generated", slow_disk)
    sink.rcpt_replies[CAROL] = (450, "4.2.1 greylisted")
    sink.rcpt_replies[DAVE] = (550, "5.1.1 no such user")
    h = Harness(tmp_path, [{"match": "dest.test", "relay": "127.0.0.1", "port": sink.port}])
    manager = h.manager()
    await nursery.start(manager.run)
    queue_id = h.put("alice@sender.test", [BOB, CAROL, DAVE])
    manager.message_accepted(queue_id)
    await h.until(lambda: queue_id in h.ids("slow"), timeout=5)
    assert on_disk(h, queue_id) == [(BOB, "delivered"), (CAROL, "deferred"), (DAVE, "failed")]
    assert len(sink.messages) == 1 and h.events.of(Action.SCAN_ERROR) == []
