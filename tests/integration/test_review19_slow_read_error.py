"""A slow-queue message whose reading fails when its retry comes (an I/O error: it waits for
the error retry, core/spool/manager.py rule 12) is not "in attempt" meanwhile
(core/spool/schedule.py rule 3). It stayed so, the mark set when it was taken and cleared
only by an attempt's results: when its next hop took mail again, it was neither moved up nor
counted, and waited out the error retry (review19 r3 R2).

The real queue manager and deliverer, a loopback sink as the next hop; the read fails in the
real spool, its envelope.json a directory for a while (IsADirectoryError).
"""

from __future__ import annotations

import pytest

from shared.events import Action
from shared.spool import ENVELOPE_FILE
from tests.integration.test_queue import Harness, routes_to

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]


async def test_a_message_whose_read_failed_is_moved_up_when_its_next_hop_takes_mail(
        tmp_path, sink, nursery):
    h = Harness(tmp_path, routes_to(("dest.test", sink)))
    sink.tempfail_all = True
    waiting = h.put("", ["bob@dest.test"])
    manager = h.manager()
    await nursery.start(manager.run)
    manager.message_accepted(waiting)
    await h.until(lambda: h.ids("slow") == [waiting])     # its retry in 300 s
    envelope = h.spool.root / "slow" / waiting / ENVELOPE_FILE
    aside = envelope.with_name("aside")
    envelope.rename(aside)
    envelope.mkdir()                    # its read fails: an error retry in 60 s
    h.clock.advance(301)
    await h.until(lambda: h.events.of(Action.SCAN_ERROR))
    [error] = h.events.of(Action.SCAN_ERROR)
    assert error["queue_id"] == waiting and "IsADirectoryError" in error["info"]
    envelope.rmdir()                    # readable again, its retry still 60 s away
    aside.rename(envelope)
    sink.tempfail_all = False
    fresh = h.put("", ["fresh@dest.test"])
    manager.message_accepted(fresh)     # the next hop takes mail again: it is moved up
    await sink.await_messages(2)        # at once, no clock advance
    await h.until(lambda: h.events.of(Action.REORDERING_STOPPED))
    [started] = h.events.of(Action.REORDERING_STARTED)
    assert started["data"]["messages"] == 1
    await h.until(lambda: h.ids("slow") == [])
