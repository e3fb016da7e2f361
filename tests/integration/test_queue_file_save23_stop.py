"""Queue File Save (core/spool/queue_file_save.py) when a stop or a kill -9 comes between a
message's set-aside in corrupt/ and its on_error copy (review22c R1).

The queue manager's `_left_for_corrupt` keeps the pending pair of an entry it sets aside as an
error copy (`QueueFileSave.error`). A stop during the look at start (manager rule 15) that
came while an entry was being moved raised at `error`'s thread hop, after the id had left the
pairs that wait: the pair stayed in `.pending/`, and the next start removed it, its message
being no longer in fast/ or slow/. Each test below failed on that code:
- the next start keeps, as the error copy, a pending pair whose message is in corrupt/ and
  in no other queue (what a kill -9 after the move leaves too; rule 5);
- a stop during the look at start no longer cuts the copy short (rule 7).
"""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from core.spool.queue_file_save import SETTING, QueueFileSave
from shared.events import Action
from shared.spool import CORRUPT, CORRUPT_RULE, MESSAGE_FILE, Spool
from tests.integration.test_bigqueue22_start import _damage, _GatedSpool
from tests.integration.test_queue import Harness
from tests.integration.test_queue_file_save import (_copy_events, _folder, _pair, _pending,
                                                    _saved, deferred_and_stopped)

pytestmark = pytest.mark.trio


async def test_a_pending_pair_whose_message_was_set_aside_is_kept_as_an_error_copy_at_start(
        tmp_path, sink):
    home, queue_id = await deferred_and_stopped(tmp_path, sink)
    spool = Spool(home.spool)
    message = spool.message_path("slow", queue_id).read_bytes()
    # the state the stop (or a kill -9) left: the entry in corrupt/, its copy still pending
    spool.set_aside("slow", queue_id, "envelope: damaged")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        # before: removed at start, as the pair of a message that had ended without error
        assert _saved(home) == _pair(queue_id)
        assert _pending(home) == []
        assert (_folder(home) / (queue_id + ".eml")).read_bytes() == message
        await core.events.aflush()
        assert _copy_events(home) == []             # saved: nothing to say
        core.cancel_scope.cancel()
    assert (home.spool / CORRUPT / queue_id / MESSAGE_FILE).read_bytes() == message


async def test_a_stop_while_the_look_at_start_sets_an_entry_aside_keeps_its_copy(tmp_path):
    h = Harness(tmp_path, [])
    h.spool = _GatedSpool(tmp_path / "spool", gate_from=1)
    queue_files = QueueFileSave(tmp_path / "diagnostics", h.spool, h.events)
    queue_id = h.put("alice@sender.test", ["bob@dest.test"])
    await queue_files.keep(h.spool.read_envelope("fast", queue_id), {SETTING: "on_error"})
    h.spool.move(queue_id, "fast", "slow")          # deferred, and the core stopped
    _damage(h.spool, "slow", queue_id)
    manager = h.manager(queue_files=queue_files)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await h.until(h.spool.reached.is_set)       # past the look's check for a stop
        nursery.cancel_scope.cancel()               # a stop while the entry is set aside
        h.spool.gate.set()
    # the set-aside's event, and none for the copy (saved: nothing to say)
    assert [(e["rule"], e["queue_id"]) for e in h.events.of(Action.SCAN_ERROR)] == [
        (CORRUPT_RULE, queue_id)]
    # before: the stop raised at the copy's thread hop, the pair left in .pending/
    directory = queue_files.directory
    assert sorted(p.name for p in directory.iterdir() if p.is_file()) == _pair(queue_id)
    assert list(queue_files.pending_dir.iterdir()) == []
