"""A bounce or delay notice that may not be sent is a `delivery_suppressed` event, end to end:
smtplib with the null sender → the core on loopback → a loopback sink that refuses or defers
the recipient, then the events table (events finding C9).

Guide Table 7-8: "Delivery suppressed: Shows the date and time that a message was not
delivered, From/To information, and the SMTP ID". Bounces never bounce (RFC 5321 §4.5.5):
the core decided not to send the DSN and no event said so; `delivery_suppressed` was in the
catalogue and the report's checkboxes, and nothing wrote it.
"""

from __future__ import annotations

import json
import smtplib

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

MESSAGE = (b"From: <>\r\nTo: user@local.test\r\nSubject: a report\r\n\r\n"
           b"a delivery report from elsewhere\r\n")


def _send_from_the_null_sender(port: int, recipient: str) -> str:
    """The queue id of the 250 to the data."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("")
        client.rcpt(recipient)
        code, reply = client.data(MESSAGE)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


@pytest.mark.parametrize("answer, notice, before", [
    ((550, "5.1.1 no such user"), "bounce", Action.DELIVERY_FAILED),
    ((451, "4.2.2 mailbox full"), "delay_notice", Action.DEFERRED),
])
async def test_a_notice_the_null_sender_may_not_get_is_a_delivery_suppressed_event(
        tmp_path, sink, nursery, answer, notice, before):
    sink.rcpt_replies["user@local.test"] = answer
    home = routed_home(tmp_path, sink, delivery__retry_initial_seconds=3600,
                       delivery__retry_max_seconds=3600)
    core = await nursery.start(run_core, home)
    queue_id = await trio.to_thread.run_sync(_send_from_the_null_sender,
                                             core.smtp_addresses[0][1], "user@local.test")
    [row] = await until(lambda: events_of(home, Action.DELIVERY_SUPPRESSED), 30,
                        flush=core.events.aflush)
    assert (row["queue_id"], row["sender"], row["recipients"], row["subject"]) == (
        queue_id, "", "user@local.test", "a report")
    assert row["category"] == "message" and row["size"] > 0
    assert row["rule"] == "bounce.never_bounces"
    assert row["info"].startswith(notice.replace("_", " ") + " not sent: its sender is the "
                                  "null sender <>")
    assert json.loads(row["data"]) == {"notice": notice}
    # what happened to the recipient has its own event, written first
    [reported] = [e for e in events_of(home, before) if e["queue_id"] == queue_id]
    assert reported["id"] < row["id"]
    assert sink.messages == [] and not events_of(home, Action.BOUNCED)
    core.cancel_scope.cancel()
