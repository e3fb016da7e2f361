"""A start over a large queue, after review22b (R4, D2): mail with no `accepted` event is read
after SMTP answers too, and a hold action waiting for that read holds up no other request.

R4: the core's recovery of lost `accepted` events read, before the 220, every slow or held
envelope with no `accepted` row — every bounce, delay notice and alert waiting in the slow
queue (Mailmoat made them: they have none), and every message whose event the retention
purge removed. Now the queue manager's look after the start reads them, once
(core/app.py `_recover_accepted_when_read`), with the same decision: an event for a message
received over SMTP whose event was lost, none for generated mail or one received before the
retention cut-off, and none for an entry set aside (set aside first, as before a1a86d1).

D2: the core carries out console and CLI requests one at a time, and a hold action waited
for that look inside its handler, so every request sent after it waited too (an
auto-whitelist or virus-quarantine delete, a central resend). Now it waits apart
(core/control.py `waits_for`): the others are carried out meanwhile, the hold actions after
it stay in order behind it, and a stop meanwhile puts it back to pending.

Counted, not timed, as test_bigqueue22_start.py does: envelopes read (its `reads`) with the
look held by a gate (`gate`).
"""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest
import trio

from core.app import run_core
from shared.commands import Command
from shared.events import Action
from shared.spool import CORRUPT, Envelope, Spool, new_queue_id
from tests.integration import test_bigqueue22_start as bigqueue22
from tests.support.commands import ask, command_row
from tests.support.core import routed_home
from tests.support.spool import put_message
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

BOUNCES = 30
DAY = 86_400

reads = bigqueue22.reads        # a fixture: envelopes read, per queue


# Longer than any wait of a test before it sets the gate (`until`'s 20 s): a gate that
# times out is the test's failure, said so, not the look's.
GATE_SECONDS = 60


@pytest.fixture
def gate(monkeypatch):
    """The core's look at slow/ and hold/ after its start waits until the test sets this."""
    held = threading.Event()
    recover_entry = Spool.recover_entry

    def gated(self, *args):
        # review24a T1: `held.wait(10) and …` gave the look False for an envelope, and a
        # TypeError ended the core's queue manager in place of the test's own timeout
        if not held.wait(GATE_SECONDS):
            raise AssertionError(f"the test did not open the gate within {GATE_SECONDS} s")
        return recover_entry(self, *args)

    monkeypatch.setattr(Spool, "recover_entry", gated)
    yield held
    held.set()


def _bounce(spool: Spool, queue: str, **fields) -> str:
    """A bounce Mailmoat made (null sender, never `accepted`) to u@local.test in *queue*."""
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"From: MAILER-DAEMON@gw.test\r\nSubject: Undelivered Mail Returned to "
                   b"Sender\r\n\r\nThe message could not be delivered.\r\n")
    spool.commit([incoming.prepare(Envelope.new(
        queue_id, "", ["u@local.test"], is_generated=True, is_bounce=True, processed=True,
        **fields))], queue)
    return queue_id


async def test_waiting_bounces_are_read_after_smtp_answers_and_lost_events_still_written(
        tmp_path, sink, nursery, reads, gate):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    now = time.time()
    bounces = {_bounce(spool, "slow", attempts=1, next_attempt_at=now)   # due at once
               for _ in range(BOUNCES)}
    held_bounce = _bounce(spool, "hold", hold_reason="cannot scan: message/partial")
    # received over SMTP, no `accepted` row: its event lost (kill -9), or purged (30 days)
    lost = put_message(spool, "hold", hold_reason="cannot scan: message/partial")
    purged = put_message(spool, "hold", hold_reason="cannot scan: message/partial",
                         clock=lambda: now - 40 * DAY)
    core = await nursery.start(run_core, home)
    # before: every one of them was read before the 220 (BOUNCES slow, 3 held)
    assert (reads["slow"], reads["hold"]) == (0, 0)
    gate.set()
    delivered = await sink.await_messages(BOUNCES)
    assert {m.sender for m in delivered} == {""}
    await until(core.queue._loaded.is_set)
    await until(lambda: events_of(home, Action.ACCEPTED), flush=core.events.aflush)
    [accepted] = events_of(home, Action.ACCEPTED)
    assert accepted["queue_id"] == lost and '"recovered": true' in accepted["data"]
    assert {held_bounce, purged, *bounces}.isdisjoint(
        e["queue_id"] for e in events_of(home, Action.ACCEPTED))
    assert reads["hold"] == 3                   # once each (a slow one again to deliver it)
    await until(lambda: len(events_of(home, Action.COMPLETED)) == BOUNCES,
                flush=core.events.aflush)
    core.cancel_scope.cancel()


async def test_an_entry_set_aside_after_the_start_gets_no_accepted_event(tmp_path, sink,
                                                                        nursery):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    damaged = put_message(spool, "slow", recipients=("u@local.test",), processed=True,
                          attempts=1, next_attempt_at=4e9)
    with open(spool.message_path("slow", damaged), "ab") as message:
        message.write(b"not the size its envelope gives\r\n")
    core = await nursery.start(run_core, home)
    await until(core.queue._loaded.is_set)
    assert list(spool.list(CORRUPT)) == [damaged]
    await until(lambda: [e for e in events_of(home, Action.SCAN_ERROR)
                         if e["queue_id"] == damaged], flush=core.events.aflush)
    # before: its `accepted` was written (the envelope reads) before it was set aside
    assert events_of(home, Action.ACCEPTED) == []
    core.cancel_scope.cancel()


async def test_a_request_sent_while_a_hold_action_waits_for_the_look_is_carried_out(
        tmp_path, sink, nursery, gate):
    home = routed_home(tmp_path, sink)
    held = put_message(Spool(home.spool), "hold", recipients=("u@local.test",),
                       hold_reason="cannot scan: message/partial")
    core = await nursery.start(run_core, home)
    reprocess = ask(home, Command.HOLD_REPROCESS, {"ids": [held]})
    delete = ask(home, Command.WHITELIST_AUTO_DELETE, {"domains": ["ext.test"]})
    drop = ask(home, Command.HOLD_DROP, {"ids": [held]})        # after the reprocess
    # before: the delete waited behind the reprocess until the look ended
    await until(lambda: command_row(home, delete)["state"] == "done", 10)
    assert command_row(home, reprocess)["state"] == "running"   # taken up: the CLI waits
    assert command_row(home, drop)["state"] == "pending"
    gate.set()
    await until(lambda: command_row(home, drop)["state"] in ("done", "failed"))
    assert tuple(command_row(home, reprocess)) == (
        "done", "1 message(s) moved to the fast queue")
    # carried out in order: the message had left hold when the drop came
    assert tuple(command_row(home, drop)) == ("failed", f"not in the hold queue: {held}")
    await sink.await_messages(1)
    core.cancel_scope.cancel()


async def test_a_stop_while_a_hold_action_waits_for_the_look_leaves_it_pending(
        tmp_path, sink, gate):
    home = routed_home(tmp_path, sink)
    put_message(Spool(home.spool), "hold", hold_reason="cannot scan: message/partial")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        reprocess = ask(home, Command.HOLD_REPROCESS, {})
        await until(lambda: command_row(home, reprocess)["state"] == "running", 10)
        core.cancel_scope.cancel()
        gate.set()
    # before: left `running`, which the next start fails as interrupted (an action on
    # every held message cannot run again) though it never began
    assert command_row(home, reprocess)["state"] == "pending"


async def test_a_held_entry_the_look_left_out_gets_its_accepted_event_when_acted_on(
        tmp_path, sink, nursery, monkeypatch):
    """review24a R1: an entry the look cannot read (an error of the disk's, say: it stays
    for the next start) was reprocessed and delivered with no `accepted` event, and the next
    start could not write it, the entry gone. The hold action's read writes it."""
    home = routed_home(tmp_path, sink)
    held = put_message(Spool(home.spool), "hold", recipients=("u@local.test",),
                       hold_reason="cannot scan: message/partial")     # no `accepted` row
    recover_entry = Spool.recover_entry

    def failing_once(self, queue, name):
        if name == held and not failed:
            failed.append(name)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return recover_entry(self, queue, name)

    failed: list[str] = []
    monkeypatch.setattr(Spool, "recover_entry", failing_once)
    core = await nursery.start(run_core, home)
    await until(core.queue._loaded.is_set)
    assert failed == [held]
    reprocess = ask(home, Command.HOLD_REPROCESS, {"ids": [held]})
    await until(lambda: command_row(home, reprocess)["state"] == "done")
    await sink.await_messages(1)
    await until(lambda: events_of(home, Action.COMPLETED), flush=core.events.aflush)
    [accepted] = events_of(home, Action.ACCEPTED)
    assert accepted["queue_id"] == held and '"recovered": true' in accepted["data"]
    [delivered] = events_of(home, Action.DELIVERED)
    assert accepted["id"] < delivered["id"]             # in the order they happened
    core.cancel_scope.cancel()
