"""A message that expires in the slow queue ends as any other does (reports18 A1): its
DELIVERY_FAILED carries the client IP and inbound connection id of the session that brought
it (docs/reporting.md, "What the connection and delivery events carry"), and it gets its
COMPLETED, which QueueManager.complete writes on the 5xx path. Before, expiry recorded
hand-picked fields without them and deleted the message with no COMPLETED, so Messages
Completed undercounted every expired message.

Real queue manager and deliverer against loopback sinks; wall time is the harness's
FakeClock, moved past delivery.retry_days.
"""

from __future__ import annotations

import pytest

from shared.events import Action
from tests.integration.test_queue import DAY, Harness, routes_to

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

CLIENT_IP, CONNECTION_ID = "192.0.2.7", "c0ffee123456"


async def test_an_expired_message_is_completed_and_its_failure_names_its_client(
        tmp_path, make_sink, nursery):
    dest, senders = make_sink(), make_sink()
    dest.rcpt_replies["bob@dest.test"] = (451, "4.3.0 try again later")
    h = Harness(tmp_path, routes_to(("dest.test", dest), ("sender.test", senders)),
                **{"delivery.retry_days": 1})
    queue_id = h.put("alice@sender.test", ["bob@dest.test", "carol@dest.test"],
                     client_ip=CLIENT_IP, connection_id=CONNECTION_ID)
    manager = h.manager()
    await nursery.start(manager.run)
    await h.until(lambda: h.ids("slow") == [queue_id])      # carol delivered, bob waits
    h.clock.advance(DAY + 1)
    await h.until(lambda: h.ids("slow") == [] and h.events.of(Action.COMPLETED))

    [failed] = [f for f in h.events.of(Action.DELIVERY_FAILED) if f["queue_id"] == queue_id]
    assert failed["rule"] == "delivery.retry_days"
    assert failed["recipients"] == ["bob@dest.test"]
    assert (failed["client_ip"], failed["connection_id"]) == (CLIENT_IP, CONNECTION_ID)
    assert failed["sender"] == "alice@sender.test"

    ours = [(a, f) for a, f in h.events.events if f.get("queue_id") == queue_id]
    [completed] = [f for a, f in ours if a == Action.COMPLETED]
    assert (completed["client_ip"], completed["connection_id"]) == (CLIENT_IP, CONNECTION_ID)
    # the story ends with it: failure, bounce, then completed, as on the 5xx path
    assert [a for a, _ in ours][-3:] == [Action.DELIVERY_FAILED, Action.BOUNCED,
                                         Action.COMPLETED]
    assert h.counters.values["bounced"] == 1
