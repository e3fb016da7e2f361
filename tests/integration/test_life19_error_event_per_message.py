"""The event of an error handling a message says it is that message's (core/spool/manager.py
rule 12; life19 C3). On a full disk every deferred message whose retry came up wrote its
own `queue.error` event, "... trying again every 60 s (recorded once)": 74 in 50 s, each
read as the one event of the condition. It is one per message (its detail report rows say
why it waits; the condition has its low_disk event), and now says so.

The real queue manager and deliverer, a sink that defers; the error a real one of the
spool's own envelope write (its temp file's name taken by a directory), as in
test_spool_error_episodes.py.
"""

from __future__ import annotations

import pytest

from shared.events import Action
from shared.spool import ENVELOPE_FILE, SUBJECT_META, TMP_SUFFIX
from tests.integration.test_queue import Harness

pytestmark = pytest.mark.trio


async def test_each_message_s_error_event_says_it_is_for_that_message(tmp_path, sink,
                                                                     nursery):
    sink.tempfail_all = True
    h = Harness(tmp_path, [{"match": "dest.test", "relay": "127.0.0.1", "port": sink.port}])
    manager = h.manager()
    ids = [h.put("alice@sender.test", ["bob@dest.test"], queue="slow", processed=True,
                 next_attempt_at=h.clock.now()) for _ in range(2)]
    for queue_id in ids:            # every write of its envelope fails
        (h.spool.root / "slow" / queue_id / (ENVELOPE_FILE + TMP_SUFFIX)).mkdir()
    await nursery.start(manager.run)
    await h.until(lambda: len(h.events.of(Action.SCAN_ERROR)) == 2)
    errors = h.events.of(Action.SCAN_ERROR)
    assert sorted(e["queue_id"] for e in errors) == sorted(ids)
    for error in errors:
        assert error["rule"] == "queue.error" and "IsADirectoryError" in error["info"]
        assert error["info"].endswith("; trying this message again every 60 s "
                                      "(recorded once for it)")


async def test_the_error_event_carries_the_message_s_sender_recipients_and_subject(
        tmp_path, sink, nursery):
    """diskfull21 C1: the queue.error event of a message whose queue file could not be
    written (a full disk) had its queue id alone, where its `deferred` event of the same
    second had its subject, sender and recipients, so a detail report search by subject
    missed it. Both boundaries: an attempt's (slow/, written after its delivery attempt)
    and a worker's (fast/, written once processed)."""
    sink.tempfail_all = True
    h = Harness(tmp_path, [{"match": "dest.test", "relay": "127.0.0.1", "port": sink.port}])
    manager = h.manager()
    slow = h.put("alice@sender.test", ["bob@dest.test"], queue="slow", processed=True,
                 next_attempt_at=h.clock.now(), meta={SUBJECT_META: "Quarterly figures"})
    fast = h.put("carol@sender.test", ["dave@dest.test", "erin@dest.test"],
                 meta={SUBJECT_META: "Board minutes"})
    for queue, queue_id in (("slow", slow), ("fast", fast)):
        (h.spool.root / queue / queue_id / (ENVELOPE_FILE + TMP_SUFFIX)).mkdir()
    await nursery.start(manager.run)
    await h.until(lambda: len(h.events.of(Action.SCAN_ERROR)) == 2)
    errors = {e["queue_id"]: e for e in h.events.of(Action.SCAN_ERROR)}
    assert errors[slow]["rule"] == errors[fast]["rule"] == "queue.error"
    assert (errors[slow]["sender"], list(errors[slow]["recipients"]),
            errors[slow]["subject"]) == ("alice@sender.test", ["bob@dest.test"],
                                         "Quarterly figures")
    assert (errors[fast]["sender"], list(errors[fast]["recipients"]),
            errors[fast]["subject"]) == ("carol@sender.test",
                                         ["dave@dest.test", "erin@dest.test"], "Board minutes")
