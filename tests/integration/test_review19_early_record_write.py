"""A next hop's early record whose envelope write fails (core/spool/manager.py rule 14, a
moment of full disk) is left to the attempt's end, which writes the envelope: when the slow
next hop answers, and when a clean stop cuts the attempt before the slow next hop decided
anything (rule 7). In that second case the cut recorded nothing (`_record_cut` had no result
to record): the fast next hop's recipient stayed "pending" on disk, with no event saying so,
and the restart sent it a second copy (review19 r3 R1, T2).

The real queue manager and deliverer, two loopback sinks: fast.test answers at once,
slow.test holds the end of the message until the test lets it go. The write fails in the
real spool, through its failure injector, after its temp file is written (ENOSPC).
"""

from __future__ import annotations

import errno
import threading

import pytest
import trio

from core.delivery import Timeouts
from core.spool import manager as manager_module
from shared.events import Action
from shared.spool import Spool
from tests.integration.test_life19_record_per_next_hop import FAST, SLOW, HeldDot
from tests.integration.test_queue import Harness, routes_to

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]


class FullForOneWrite:
    """A spool's failure injector: once armed, the next envelope write fails as on a full
    disk, its temp file written and not renamed; `failed` is set then. The disk has room
    again after it."""

    def __init__(self):
        self.armed = False
        self.failed = threading.Event()

    def __call__(self, step: str) -> None:
        if step == "after_envelope_fsync" and self.armed:
            self.armed = False
            self.failed.set()
            raise OSError(errno.ENOSPC, "No space left on device")


def two_hops(tmp_path, make_sink, reply=None):
    """The harness (its spool with a FullForOneWrite), the sinks, the slow one's HeldDot
    (then `reply`) and a processed message for FAST and SLOW in fast/."""
    fast, slow = make_sink(), make_sink()
    slow.data_reply = dot = HeldDot(reply)
    h = Harness(tmp_path, routes_to(("fast.test", fast), ("slow.test", slow)))
    disk = FullForOneWrite()
    h.spool = Spool(h.spool.root, failure_injector=disk)
    queue_id = h.put("s@sender.test", [FAST, SLOW], processed=True)
    return h, disk, fast, slow, dot, queue_id


async def take_up_until_the_early_write_fails(h, disk, dot, queue_id, nursery):
    manager = h.manager()
    manager.deliverer.timeouts = Timeouts(quit=0.2)     # the held session's, at the stop
    await nursery.start(manager.run)
    disk.armed = True                   # the fast next hop's early record's write
    manager.message_accepted(queue_id)
    assert await trio.to_thread.run_sync(disk.failed.wait, 20)
    assert not dot.released.is_set()    # the slow next hop still holds the attempt


def statuses(h, queue: str, queue_id: str) -> dict[str, str]:
    return {r.address: r.status for r in h.spool.read_envelope(queue, queue_id).recipients}


async def test_the_attempt_s_end_writes_what_the_early_record_could_not(tmp_path, make_sink,
                                                                       nursery):
    h, disk, fast, slow, dot, queue_id = two_hops(
        tmp_path, make_sink, reply=(451, "4.3.0 try again later"))
    try:
        await take_up_until_the_early_write_fails(h, disk, dot, queue_id, nursery)
    finally:
        dot.release()
    await h.until(lambda: h.ids("slow") == [queue_id])
    assert statuses(h, "slow", queue_id) == {FAST: "delivered", SLOW: "deferred"}
    assert len(fast.messages_to(FAST)) == 1 and h.events.of(Action.SCAN_ERROR) == []


async def test_a_stop_that_cuts_the_attempt_writes_what_the_early_record_could_not(
        tmp_path, make_sink, nursery, monkeypatch):
    monkeypatch.setattr(manager_module, "STOP_GRACE_SECONDS", 0.1)
    h, disk, fast, slow, dot, queue_id = two_hops(tmp_path, make_sink)
    try:
        async with trio.open_nursery() as running:
            await take_up_until_the_early_write_fails(h, disk, dot, queue_id, running)
            running.cancel_scope.cancel()       # a clean stop; its grace cuts the attempt
    finally:
        dot.reply = (451, "4.3.0 the client is gone")     # keeps no copy of the cut one
        dot.release()
    assert statuses(h, "fast", queue_id) == {FAST: "delivered", SLOW: "pending"}
    assert h.events.of(Action.SCAN_ERROR) == []
    # the restart delivers to the slow next hop only
    slow.data_reply = None
    await nursery.start(h.manager().run)
    await h.until(lambda: h.ids("fast") == [] and h.events.of(Action.COMPLETED))
    assert [len(fast.messages_to(FAST)), len(slow.messages_to(SLOW))] == [1, 1]
