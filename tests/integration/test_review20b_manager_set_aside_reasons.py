"""The queue manager's reasons for setting an entry aside reach its corrupt/ note, word for
word as its spool.corrupt event gives them (review20b T1: only recover() and
resolve_copies were tested): a damaged entry taken up (core/spool/manager.py `_read`) and an
older copy in the way of a move (`_move`). `mailmoat queue list corrupt` then gives the
older copy's reason, since nothing is wrong with it. The real core on a temp home, a
loopback sink as next hop, the CLI as a subprocess."""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from shared.spool import CORRUPT, CORRUPT_RULE, Spool
from tests.integration.test_opsdocs20_corrupt_reason import _list_corrupt
from tests.integration.test_spool_copies import PARTIAL, PLAIN, copy_entry, put, rows
from tests.support.core import routed_home
from tests.support.waiting import until

pytestmark = pytest.mark.trio

EVENT_SAYS = "unreadable queue entry in {queue} moved to corrupt/: {reason}"  # record_set_aside


async def test_a_damaged_entry_taken_up_notes_the_damage_its_event_gives(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        queue_id = put(spool, "fast", PLAIN)            # after the start's recover()
        size = spool.read_envelope("fast", queue_id).size
        with open(spool.message_path("fast", queue_id), "r+b") as message:
            message.truncate(10)                        # storage trouble: the same file
        core.queue.message_accepted(queue_id)
        await until(lambda: rows(home, CORRUPT_RULE), flush=core.events.aflush)
        core.cancel_scope.cancel()
    assert list(spool.list(CORRUPT)) == [queue_id] and sink.messages == []
    reason = f"the message file has 10 octets, its envelope says {size}"
    assert spool.set_aside_reason(queue_id) == reason
    [row] = rows(home, CORRUPT_RULE)
    assert row["info"] == EVENT_SAYS.format(queue="fast", reason=reason)
    assert _list_corrupt(home)[queue_id].endswith(f"  {reason}")   # wrong still: as now


async def test_an_older_copy_in_the_way_of_a_move_notes_why_it_was_set_aside(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    queue_id = put(spool, "hold", PARTIAL, hold_reason="cannot scan: message/partial")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        # a copy announced as new mail, which the pipeline holds onto the one in hold
        copy_entry(spool, queue_id, "hold", "fast", hold_reason=None, processed=False)
        core.queue.message_accepted(queue_id)
        await until(lambda: rows(home, CORRUPT_RULE), flush=core.events.aflush)
        await until(lambda: list(spool.list("hold")) == [queue_id]
                    and not list(spool.list("fast")))
        core.cancel_scope.cancel()
    reason = "an older copy, in hold when the one in fast was moved there"
    assert spool.set_aside_reason(queue_id) == reason
    [row] = rows(home, CORRUPT_RULE)
    assert row["info"] == EVENT_SAYS.format(queue="hold", reason=reason)
    row = _list_corrupt(home)[queue_id]
    assert row.split()[:3] == ["corrupt", queue_id, "hold"]
    assert row.endswith(f"  nothing wrong found now; set aside because: {reason}")
