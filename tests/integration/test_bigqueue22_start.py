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

Review22b of that look: a stop during it waited for all of it (R1), an entry it set aside got
its event only when it all ended (R1) and no Queue File Save error copy (D1), the slow count
left out what was deferred meanwhile (R3), and a next hop's success during it was applied
after a deferral that came later, which then went at once (R2). Each has a test below that
failed on that code; a gate (`_GatedSpool`) holds the look where a test needs it.
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
from shared.spool import CORRUPT, CORRUPT_RULE, ENVELOPE_FILE, Envelope, Spool, new_queue_id
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
    h.spool = _GatedSpool(tmp_path / "spool")
    _fill(h.spool, h.clock.now())
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        try:
            # before: every slow envelope was read first (files.scan_queues)
            assert reads["slow"] == 0
            assert manager.queue_sizes()["slow"] == SLOW      # the listing's, meanwhile
        finally:
            h.spool.gate.set()
        await h.until(lambda: reads["slow"] == SLOW and manager._loaded.is_set())
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
    await until(core.queue._loaded.is_set)     # the counts follow each move on the trio side
    assert sorted(spool.list(CORRUPT)) == sorted([slow, held])
    assert list(spool.list("hold")) == [kept] and list(spool.list("slow")) == []
    assert core.queue.queue_sizes()["hold"] == 1 and core.queue.queue_sizes()["slow"] == 0
    await until(lambda: len([e for e in events_of(home, Action.SCAN_ERROR)
                             if e["rule"] == "spool.corrupt"]) == 2, flush=core.events.aflush)
    core.cancel_scope.cancel()


class _GatedSpool(Spool):
    """A spool whose start-up look at slow/ and hold/ waits for `gate` (a test's hand on the
    moment) from its `gate_from`-th entry on; `looked` lists the entries it was asked
    for, and `reached` is set once one waits."""

    def __init__(self, root, gate_from: int = 1):
        super().__init__(root)
        self.gate, self.reached, self.gate_from = threading.Event(), threading.Event(), gate_from
        self.looked: list[str] = []

    def recover_entry(self, queue, name):
        self.looked.append(name)
        if len(self.looked) >= self.gate_from:
            self.reached.set()
            self.gate.wait(10)
        return super().recover_entry(queue, name)


def _corrupt_events(h: Harness) -> list[dict]:
    return [e for e in h.events.of(Action.SCAN_ERROR) if e["rule"] == CORRUPT_RULE]


async def test_a_stop_during_the_look_at_start_ends_it_at_the_next_entry(tmp_path):
    h = Harness(tmp_path, [])
    h.spool = _GatedSpool(tmp_path / "spool", gate_from=2)
    _fill(h.spool, h.clock.now())
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await h.until(h.spool.reached.is_set)
        nursery.cancel_scope.cancel()           # a stop (SIGTERM) while the 2nd is read
        h.spool.gate.set()
    # before: the stop waited until all 40 + 10 were read (one thread call, no check)
    assert len(h.spool.looked) == 2


async def test_an_entry_set_aside_during_the_look_at_start_is_recorded_as_it_goes(tmp_path):
    h = Harness(tmp_path, [])
    h.spool = _GatedSpool(tmp_path / "spool", gate_from=2)
    ids = _fill(h.spool, h.clock.now())
    first = min(ids[:SLOW])                     # the first looked at (listed sorted)
    _damage(h.spool, "slow", first)
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await h.until(h.spool.reached.is_set)
        try:
            # before: written only when the whole look ended (lost to a kill -9 meanwhile)
            await h.until(lambda: _corrupt_events(h), timeout=5)
        finally:
            h.spool.gate.set()
        assert [e["queue_id"] for e in _corrupt_events(h)] == [first]
        await h.until(manager._loaded.is_set)
        assert manager.queue_sizes() == {"fast": 0, "slow": SLOW - 1, "hold": HELD}
        assert len(_corrupt_events(h)) == 1
        nursery.cancel_scope.cancel()


async def test_the_slow_count_during_the_look_at_start_adds_what_was_deferred_since(
        tmp_path, sink):
    sink.tempfail_all = True
    h = Harness(tmp_path, routes_to(("dest.test", sink)))
    h.spool = _GatedSpool(tmp_path / "spool")
    _fill(h.spool, h.clock.now())
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        new = h.put("a@sender.test", ["bob@dest.test"])
        manager.message_accepted(new)
        await h.until(lambda: new in manager.schedule.entries)     # deferred to slow/
        try:
            # before: max(40 listed, 1 scheduled) = 40, while slow/ held 41
            assert manager.queue_sizes()["slow"] == SLOW + 1 == len(h.ids("slow"))
        finally:
            h.spool.gate.set()
        await h.until(manager._loaded.is_set)
        assert manager.queue_sizes()["slow"] == SLOW + 1
        nursery.cancel_scope.cancel()


def _waiting_for(h: Harness, hop: str) -> str:
    """A slow message deferred by *hop* before the start, not due during the test."""
    queue_id = new_queue_id()
    incoming = h.spool.open_incoming(queue_id)
    incoming.write(b"Subject: waited\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, "a@sender.test", ["bob@dest.test"], clock=h.clock.now,
                            processed=True, attempts=1,
                            next_attempt_at=h.clock.now() + LATER)
    envelope.recipients[0].status, envelope.recipients[0].next_hop = "deferred", hop
    h.spool.commit([incoming.prepare(envelope)], "slow")
    return queue_id


async def test_a_next_hop_taking_mail_while_the_slow_queue_loads_still_reorders_it(
        tmp_path, sink):
    h = Harness(tmp_path, routes_to(("dest.test", sink)))
    h.spool = _GatedSpool(tmp_path / "spool")
    _waiting_for(h, route("dest.test", h.settings()).key)
    hop = route("dest.test", h.settings()).key
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


async def test_a_message_deferred_after_the_hop_took_mail_during_the_look_waits_its_backoff(
        tmp_path, sink):
    for address in ("busy@dest.test", "bob@dest.test"):
        sink.rcpt_replies[address] = (451, "4.2.0 mailbox busy")
    h = Harness(tmp_path, routes_to(("dest.test", sink)))
    h.spool = _GatedSpool(tmp_path / "spool")
    hop = route("dest.test", h.settings()).key
    waited = _waiting_for(h, hop)               # bob: deferred again when moved up

    def deferred(queue_id):
        return [e for e in h.events.of(Action.DEFERRED) if e["queue_id"] == queue_id]
    manager = h.manager()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        taken = h.put("a@sender.test", ["ok@dest.test"])
        manager.message_accepted(taken)
        await sink.await_messages(1)            # the hop takes mail while the slow queue loads
        await h.until(lambda: h.events.of(Action.COMPLETED))
        busy = h.put("a@sender.test", ["busy@dest.test"])
        manager.message_accepted(busy)          # ... and then defers another
        await h.until(lambda: busy in manager.schedule.entries)
        h.spool.gate.set()
        await h.until(lambda: deferred(waited))     # the one waiting from before, moved up
        # before: the success was applied after the deferral and moved that one up too,
        # which then went at once instead of after its backoff (schedule.py rule 2)
        started = [e["data"] for e in h.events.of(Action.REORDERING_STARTED)]
        assert started == [{"next_hop": hop, "messages": 1}]
        assert not manager.schedule.entries[busy].is_reordered
        assert busy not in manager.schedule.due(h.clock.now())
        assert len(deferred(busy)) == 1
        nursery.cancel_scope.cancel()


async def test_a_slow_entry_set_aside_after_the_start_keeps_its_queue_file_save_copy(
        tmp_path, sink):
    from tests.integration.test_queue_file_save import (_pair, _pending, _saved,
                                                        deferred_and_stopped)
    home, queue_id = await deferred_and_stopped(tmp_path, sink)
    _damage(Spool(home.spool), "slow", queue_id)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        await until(lambda: [e for e in events_of(home, Action.SCAN_ERROR)
                             if e["rule"] == CORRUPT_RULE], flush=core.events.aflush)
        # before: the pending pair stayed in .pending until the next start removed it
        await until(lambda: _saved(home) == _pair(queue_id), 10)
        assert _pending(home) == []
        core.cancel_scope.cancel()
