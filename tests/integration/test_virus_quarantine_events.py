"""A virus quarantine copy's events carry the connection facts of the infected message
(events finding C10): the `quarantined` row of the copy kept, and the `forwarded` row of its
sending to the central quarantine, name the client IP and the inbound connection id as the
message's other rows do. Before, both had sender, recipients, size and subject only, so a
detail report searched by the client's address or the connection id left them out.

A real core on loopback takes an EICAR message over SMTP; the central quarantine is a
loopback sink.
"""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.mail import send_infected
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio


async def test_quarantine_copy_events_name_the_client_and_the_connection(tmp_path, sink,
                                                                         nursery):
    home = routed_home(tmp_path, sink, av__quarantine="all",
                       quarantine__reinsertion_key="central-quarantine-shared-key-1",
                       av__central_quarantine={"host": "127.0.0.1", "port": sink.port})
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1])

    def central_copy_sent():
        return [row for row in events_of(home, Action.FORWARDED)
                if row["rule"] == "av.central_quarantine"]

    [sent] = await until(central_copy_sent, 30, flush=core.events.aflush)
    [accepted] = events_of(home, Action.ACCEPTED)
    [kept] = [row for row in events_of(home, Action.QUARANTINED)
              if row["rule"] == "av.quarantine"]
    assert accepted["client_ip"] == "127.0.0.1" and accepted["connection_id"]
    for row in (kept, sent):
        assert (row["client_ip"], row["connection_id"]) \
            == (accepted["client_ip"], accepted["connection_id"]), row["action"]
        assert (row["sender"], row["recipients"], row["subject"]) \
            == ("sender@client.test", "user@local.test", "infected")
    assert kept["queue_id"] == accepted["queue_id"]
    assert sent["queue_id"] != accepted["queue_id"]         # the copy's own id
    core.cancel_scope.cancel()
