"""One queue id in two queues (backup-restore finding 1): what a live backup catches while the
core moves a message by rename. The real core on a temp home, a loopback sink as next hop;
the copies are made as `cp -a` makes them (new inodes).

Before, the fast copy of a fast + slow pair was delivered and the slow one sat unscheduled
until the next start delivered it again, and a fast + hold pair logged `queue.error
FileExistsError` every 60 s for ever.
"""

from __future__ import annotations

import shutil

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import CORRUPT, CORRUPT_RULE, DUPLICATE_RULE, Envelope, Spool, new_queue_id
from tests.support.core import routed_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

PLAIN = (b"From: a@client.test\r\nTo: u@local.test\r\nSubject: once\r\n"
         b"Message-ID: <once@client.test>\r\n\r\nbody\r\n")
# held by the pipeline (scan.unprocessable), as the tester's held messages were
PARTIAL = (b"From: a@client.test\r\nTo: u@local.test\r\nSubject: partial\r\n"
           b"Message-ID: <partial@client.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: message/partial; id=\"abc@client.test\"; number=1; total=2\r\n"
           b"\r\nFrom: x@y.test\r\nSubject: piece\r\n\r\nfirst half\r\n")


def put(spool: Spool, queue: str, data: bytes, recipients=("u@local.test",), **fields) -> str:
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(data)
    spool.commit([incoming.prepare(Envelope.new(queue_id, "a@client.test", list(recipients),
                                                **fields))], queue)
    return queue_id


def copy_entry(spool: Spool, queue_id: str, src: str, dst: str, **changes) -> None:
    """`cp -a` of one entry into another queue, its envelope as it was before the move."""
    shutil.copytree(spool.root / src / queue_id, spool.root / dst / queue_id)
    envelope = spool.read_envelope(dst, queue_id)
    for name, value in changes.items():
        setattr(envelope, name, value)
    spool.write_envelope(dst, envelope)


def rows(home, rule):
    return [r for r in events_of(home, Action.SCAN_ERROR) if r["rule"] == rule]


async def test_an_id_in_fast_and_slow_is_delivered_once_from_slow(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    # deferred once, due now; the backup's fast copy is from before the pipeline ran
    queue_id = put(spool, "slow", PLAIN, processed=True, attempts=1, next_attempt_at=0.0,
                   first_deferral_notice_sent=True)
    copy_entry(spool, queue_id, "slow", "fast", processed=False, attempts=0,
               next_attempt_at=None, first_deferral_notice_sent=False)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        assert list(spool.list("fast")) == []       # recover() kept the later copy only
        await until(lambda: any(r["queue_id"] == queue_id
                                for r in events_of(home, Action.COMPLETED)),
                    flush=core.events.aflush)
        core.cancel_scope.cancel()
    # a second delivery in progress at the stop would have finished (or left a copy)
    assert len(sink.messages) == 1
    assert [list(spool.list(q)) for q in ("fast", "slow", CORRUPT)] == [[], [], []]
    [row] = rows(home, DUPLICATE_RULE)
    assert row["queue_id"] == queue_id
    assert "kept the copy in slow" in row["info"] and "the copy in fast: deleted" in row["info"]
    assert rows(home, CORRUPT_RULE) == []           # nothing for a person to look at


async def test_an_id_in_fast_and_hold_stays_held_without_an_error_loop(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    queue_id = put(spool, "hold", PARTIAL, hold_reason="cannot scan: message/partial")
    copy_entry(spool, queue_id, "hold", "fast", hold_reason=None, processed=False)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        assert list(spool.list("fast")) == [] and list(spool.list("hold")) == [queue_id]
        assert core.queue.queue_sizes()["hold"] == 1
        await until(lambda: rows(home, DUPLICATE_RULE), flush=core.events.aflush)
        core.cancel_scope.cancel()
    [row] = rows(home, DUPLICATE_RULE)
    assert row["queue_id"] == queue_id and "kept the copy in hold" in row["info"]
    assert rows(home, "queue.error") == [] and sink.messages == []


async def test_a_copy_put_into_fast_while_the_core_runs_is_resolved_by_the_rescan(tmp_path,
                                                                                    sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    queue_id = put(spool, "hold", PARTIAL, hold_reason="cannot scan: message/partial")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        # the docs' old repair advice, followed while the core runs
        copy_entry(spool, queue_id, "hold", "fast", hold_reason=None, processed=False)
        core.queue.rescan()
        await until(lambda: rows(home, DUPLICATE_RULE), flush=core.events.aflush)
        assert list(spool.list("fast")) == [] and list(spool.list("hold")) == [queue_id]
        core.cancel_scope.cancel()
    assert rows(home, "queue.error") == [] and sink.messages == []
    assert [r["rule"] for r in events_of(home, Action.HELD)] == []


async def test_a_move_onto_a_copy_sets_that_copy_aside_and_moves_the_source(tmp_path, sink):
    """A copy announced to the queue manager (not found by a rescan) that the pipeline holds
    while hold/ has the id: the copy in hold goes to corrupt/ once, the one held replaces it."""
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    queue_id = put(spool, "hold", PARTIAL, hold_reason="cannot scan: message/partial")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        copy_entry(spool, queue_id, "hold", "fast", hold_reason=None, processed=False)
        core.queue.message_accepted(queue_id)
        await until(lambda: rows(home, CORRUPT_RULE), flush=core.events.aflush)
        await until(lambda: list(spool.list("hold")) == [queue_id] and not
                    list(spool.list("fast")))
        # the count follows once the move's thread is back
        await until(lambda: core.queue.queue_sizes()["hold"] == 1)
        core.cancel_scope.cancel()
    assert list(spool.list(CORRUPT)) == [queue_id] and list(spool.list("hold")) == [queue_id]
    assert spool.set_aside_from(queue_id) == "hold"
    [row] = rows(home, CORRUPT_RULE)
    assert row["queue_id"] == queue_id and "an older copy, in hold" in row["info"]
    assert rows(home, "queue.error") == [] and sink.messages == []


async def test_a_deferral_onto_an_older_copy_in_slow_keeps_the_recipients_delivered(tmp_path,
                                                                                    sink):
    """Review 15 B1: fast -> slow after an attempt that delivered one recipient of two, with
    an older copy (both pending) put into slow/ meanwhile. Kept, the older copy would be
    scheduled and give the delivered recipient the mail again."""
    sink.rcpt_replies["v@local.test"] = (451, "4.3.0 later")
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        queue_id = put(spool, "fast", PLAIN, ["u@local.test", "v@local.test"], processed=True,
                       first_deferral_notice_sent=True)     # no notice in slow/ too
        copy_entry(spool, queue_id, "fast", "slow")     # by hand, before the attempt
        core.queue.message_accepted(queue_id)
        await until(lambda: rows(home, CORRUPT_RULE), flush=core.events.aflush)
        await until(lambda: not list(spool.list("fast")))
        core.cancel_scope.cancel()
    assert [m.recipients for m in sink.messages] == [["u@local.test"]]
    assert list(spool.list("slow")) == [queue_id] and list(spool.list(CORRUPT)) == [queue_id]
    assert spool.set_aside_from(queue_id) == "slow"
    kept = spool.read_envelope("slow", queue_id)
    assert {r.address: r.status for r in kept.recipients} == {"u@local.test": "delivered",
                                                               "v@local.test": "deferred"}
    assert rows(home, "queue.error") == []
