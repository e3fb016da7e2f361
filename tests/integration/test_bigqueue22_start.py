"""A start over a large queue (bigqueue22): SMTP answers before the slow and hold entries are
read, and each of their envelopes is read once.

Before, `mailmoat core` with 20,000 messages in the slow queue and 5,000 in hold answered 220
only after some 20 s: recover() read every envelope, then the queue manager read every slow
one again, both before the listener started. Now recover() at start leaves slow/ and hold/
out (core/spool/manager.py CHECKED_AFTER_START) and the queue manager looks at their entries
once it has reported ready (rule 15): a damaged one still goes to corrupt/ with its event,
the slow ones are scheduled, and a next hop that takes mail meanwhile still reorders them.

Counted, not timed: the envelopes of slow/ and hold/ read (Spool.read_envelope) by the time
run_core or QueueManager.run reports ready, and in all.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import trio

from core.app import run_core
from core.delivery.routing import route
from shared.events import Action, EventWriter
from shared.spool import CORRUPT, ENVELOPE_FILE, Envelope, Spool, new_queue_id
from tests.integration.test_queue import Harness, routes_to
from tests.support.core import routed_home
from tests.support.spool import put_message
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

SLOW, HELD = 40, 10
LATER = 3600.0          # the slow entries' next attempt: not during the test


@pytest.fixture
def reads(monkeypatch):
    """Envelopes read, per queue (Spool.read_envelope)."""
    counted: Counter[str] = Counter()
    read = Spool.read_envelope

    def counting(self, queue, queue_id):
        counted[queue] += 1
        return read(self, queue, queue_id)
    monkeypatch.setattr(Spool, "read_envelope", counting)
    return counted


def _fill(spool: Spool, now: float) -> list[str]:
    ids = [put_message(spool, "slow", recipients=("u@local.test",), processed=True,
                       attempts=1, next_attempt_at=now + LATER) for _ in range(SLOW)]
    return ids + [put_message(spool, "hold", hold_reason="cannot scan: message/partial")
                  for _ in range(HELD)]


async def test_smtp_answers_before_a_slow_or_held_envelope_is_read_and_each_is_read_once(
        tmp_path, sink, nursery, reads, monkeypatch):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    writer = EventWriter(home.db, process="core")
    for queue_id in _fill(spool, time.time()):     # received over SMTP, as they would be
        writer.record(Action.ACCEPTED, queue_id=queue_id)
    writer.close()
    # The look at slow/ and hold/ after the start waits for the test's hand (before, there
    # was no such look: raising=False)
    gate = threading.Event()
    recover_entry = getattr(Spool, "recover_entry", None)
    monkeypatch.setattr(Spool, "recover_entry",
                        lambda self, *a: gate.wait(10) and recover_entry(self, *a),
                        raising=False)
    try:
        core = await nursery.start(run_core, home)
        # before: 2 x 40 slow (recover, then the queue manager) and 10 held, before the 220
        assert (reads["slow"], reads["hold"]) == (0, 0)
        assert core.queue.queue_sizes()["slow"] == SLOW   # the listing's, meanwhile
    finally:
        gate.set()
    await until(lambda: (reads["slow"], reads["hold"]) == (SLOW, HELD))
    await until(lambda: len(core.queue.schedule) == SLOW)
    assert core.queue.queue_sizes() == {"fast": 0, "slow": SLOW, "hold": HELD}
    await trio.sleep(0.2)
    assert (reads["slow"], reads["hold"]) == (SLOW, HELD)
    core.cancel_scope.cancel()


async def test_the_manager_reports_ready_before_reading_the_slow_queue(tmp_path, reads):
    h = Harness(tmp_path, [])
    _fill(h.spool, h.clock.now())
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        # before: every slow envelope was read first (files.scan_queues)
        assert reads["slow"] == 0
        assert manager.queue_sizes()["slow"] == SLOW      # the listing's, meanwhile
        await h.until(lambda: reads["slow"] == SLOW and manager.schedule.entries)
        assert len(manager.schedule) == SLOW
        nursery.cancel_scope.cancel()


def _damage(spool: Spool, queue: str, queue_id: str) -> None:
    (spool.root / queue / queue_id / ENVELOPE_FILE).write_bytes(b"{not json")


async def test_a_damaged_slow_or_held_entry_is_set_aside_after_the_start(tmp_path, sink,
                                                                          nursery):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    slow = put_message(spool, "slow", recipients=("u@local.test",), processed=True,
                       attempts=1, next_attempt_at=4e9)
    held = put_message(spool, "hold", hold_reason="cannot scan: message/partial")
    kept = put_message(spool, "hold", hold_reason="cannot scan: message/partial")
    _damage(spool, "slow", slow)
    _damage(spool, "hold", held)
    core = await nursery.start(run_core, home)
    await until(lambda: len(list(spool.list(CORRUPT))) == 2, flush=core.events.aflush)
    assert sorted(spool.list(CORRUPT)) == sorted([slow, held])
    assert list(spool.list("hold")) == [kept] and list(spool.list("slow")) == []
    assert core.queue.queue_sizes()["hold"] == 1 and core.queue.queue_sizes()["slow"] == 0
    await until(lambda: len([e for e in events_of(home, Action.SCAN_ERROR)
                             if e["rule"] == "spool.corrupt"]) == 2, flush=core.events.aflush)
    core.cancel_scope.cancel()


class _GatedSpool(Spool):
    """A spool whose start-up look at slow/ waits for `gate` (a test's hand on the moment)."""
    gate = threading.Event()

    def recover_entry(self, queue, name):
        self.gate.wait(10)
        return super().recover_entry(queue, name)


async def test_a_next_hop_taking_mail_while_the_slow_queue_loads_still_reorders_it(
        tmp_path, sink):
    h = Harness(tmp_path, routes_to(("dest.test", sink)))
    h.spool = _GatedSpool(tmp_path / "spool")
    h.spool.gate = threading.Event()
    hop = route("dest.test", h.settings()).key
    queue_id = new_queue_id()
    incoming = h.spool.open_incoming(queue_id)
    incoming.write(b"Subject: waited\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, "a@sender.test", ["bob@dest.test"], clock=h.clock.now,
                            processed=True, attempts=1,
                            next_attempt_at=h.clock.now() + LATER)
    envelope.recipients[0].status, envelope.recipients[0].next_hop = "deferred", hop
    h.spool.commit([incoming.prepare(envelope)], "slow")
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        new = h.put("a@sender.test", ["carol@dest.test"])
        manager.message_accepted(new)
        await sink.await_messages(1)            # delivered while the slow queue loads
        await h.until(lambda: h.events.of(Action.COMPLETED))
        h.spool.gate.set()
        await sink.await_messages(2)            # the slow one, long before its LATER
        [started] = h.events.of(Action.REORDERING_STARTED)
        assert started["data"] == {"next_hop": hop, "messages": 1}
        nursery.cancel_scope.cancel()
