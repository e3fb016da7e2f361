"""av.central_quarantine: the host as routing writes it, and failed sends written as events
(ipv6 finding 2).

The setting takes "[::1]" (as routing.default does), but the copy was sent to the DNS name
"[::1]": never delivered, no event, retried every 30 s for ever, and the host was frozen in
the copy's envelope, so correcting the setting did not help the copies already waiting.
Now the host is normalised as a relay is (core/delivery/routing.py `relay_host`) when the
copy is kept and again when it is sent, and a send the central quarantine does not take
writes a `deferred` event — once per copy and reason, not at every retry.
"""

from __future__ import annotations

import json

import pytest
import trio

from core.app import run_core
from core.notify import alert_key
from shared.events import Action
from shared.spool import Spool
from tests.integration.test_ipv6_texts import Sink6, dead_port_on_ipv6_loopback
from tests.support.mail import send_infected
from tests.support.core import routed_home, set_settings
from tests.support.waiting import events_of, until

VIRUS_QUEUE = "quarantine/virus"


@pytest.fixture
def sink6():
    with Sink6() as server:
        yield server



def central_events(home, action) -> list:
    return [e for e in events_of(home, action) if e["rule"] == "av.central_quarantine"]


def subjects(sink) -> list[str]:
    return sorted(m.message["Subject"] for m in sink.messages)


async def test_a_bracketed_ipv6_central_quarantine_gets_its_copy(tmp_path, sink, sink6,
                                                                 nursery):
    home = routed_home(tmp_path, sink, av__quarantine="all",
                       av__central_quarantine={"host": "[::1]", "port": sink6.port})
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], "bracketed")
    [copy] = await trio.to_thread.run_sync(sink6.wait_for, 1, 15.0)
    assert copy.message["Subject"] == "bracketed"
    spool = Spool(home.spool)
    [entry] = list(spool.list(VIRUS_QUEUE))
    assert spool.read_envelope(VIRUS_QUEUE, entry).meta["central"]["host"] == "::1"
    await until(lambda: central_events(home, Action.FORWARDED), flush=core.events.aflush)
    [forwarded] = central_events(home, Action.FORWARDED)
    assert forwarded["info"] == (f"virus quarantine copy sent to quarantine@[IPv6:::1] at "
                                 f"[::1]:{sink6.port}")
    core.cancel_scope.cancel()


async def test_a_copy_kept_with_a_bracketed_host_is_sent_to_that_address(tmp_path, sink,
                                                                         sink6, nursery):
    # a copy as an earlier release kept it: "[::1]" frozen in its envelope
    home = routed_home(tmp_path, sink, av__quarantine="all")
    async with trio.open_nursery() as first:
        core = await first.start(run_core, home)
        await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], "kept")
        spool = Spool(home.spool)
        await until(lambda: list(spool.list(VIRUS_QUEUE)))
        core.cancel_scope.cancel()
    [entry] = list(spool.list(VIRUS_QUEUE))
    envelope = spool.read_envelope(VIRUS_QUEUE, entry)
    envelope.meta["central"] = {"host": "[::1]", "port": sink6.port, "state": "pending"}
    spool.write_envelope(VIRUS_QUEUE, envelope)
    set_settings(home, av__central_quarantine={"host": "::1", "port": sink6.port})
    core = await nursery.start(run_core, home)
    # a new copy wakes the forwarder, which then sends every copy still waiting
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], "new")
    await trio.to_thread.run_sync(sink6.wait_for, 2, 15.0)
    assert subjects(sink6) == ["kept", "new"]
    core.cancel_scope.cancel()


async def test_a_refused_central_quarantine_writes_one_deferred_event_per_copy(tmp_path, sink,
                                                                               nursery):
    dead = dead_port_on_ipv6_loopback()
    home = routed_home(tmp_path, sink, av__quarantine="all",
                       av__central_quarantine={"host": "::1", "port": dead})
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]

    def deferred():
        return central_events(home, Action.DEFERRED)

    await trio.to_thread.run_sync(send_infected, port, "first")
    await until(lambda: len(deferred()) == 1, flush=core.events.aflush)
    # the next copy wakes the forwarder and goes at once; the first waits for its next
    # attempt (core/scan/central_forwarder.py rule 1: 30 s, capped by the test home's
    # delivery.retry_max_seconds at 2 s), and its unchanged reason writes nothing more
    await trio.to_thread.run_sync(send_infected, port, "second")
    await until(lambda: len(deferred()) == 2, flush=core.events.aflush)
    first, second = deferred()
    assert first["queue_id"] != second["queue_id"]
    assert first["info"] == (f"virus quarantine copy not sent to [::1]:{dead}: connect to "
                             f"::1[::1]:{dead}: Connection refused; tried again every 2 s")
    data = json.loads(first["data"])
    original = data.pop("original_queue_id")            # the message's (rule 5)
    assert original in [e["queue_id"] for e in events_of(home, Action.ACCEPTED)]
    assert data == {"next_hop": f"relay:[::1]:{dead}", "remote_mta": None, "status": "4.4.1"}
    assert alert_key(first) == "smtp_connection_failure"
    spool = Spool(home.spool)
    kept = [spool.read_envelope(VIRUS_QUEUE, q).meta["central"]
            for q in spool.list(VIRUS_QUEUE)]
    assert [c["state"] for c in kept] == ["pending", "pending"]
    assert kept[0]["last_error"] == f"connect to ::1[::1]:{dead}: Connection refused"
    core.cancel_scope.cancel()


@pytest.mark.slow       # a copy tried again after the retry pause (~3.5 s)
async def test_a_copy_tried_again_for_the_same_reason_writes_no_second_event(
        tmp_path, sink, sink6, nursery):
    sink6.mail_reply = (451, "4.3.0 central quarantine busy")
    # the test home caps retries at 2 s (delivery.retry_max_seconds): the first copy's
    # second try comes within a few seconds
    home = routed_home(tmp_path, sink, av__quarantine="all",
                       av__central_quarantine={"host": "::1", "port": sink6.port})
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]

    def deferred():
        return central_events(home, Action.DEFERRED)

    await trio.to_thread.run_sync(send_infected, port, "first")
    await until(lambda: len(deferred()) == 1, flush=core.events.aflush)
    await trio.to_thread.run_sync(send_infected, port, "second")
    await until(lambda: len(deferred()) == 2, flush=core.events.aflush)
    await until(lambda: sum(c.commands.count("MAIL") for c in sink6.connections) >= 3)
    await core.events.aflush()              # the first copy twice, the second once by now
    [first, second] = deferred()
    assert first["queue_id"] != second["queue_id"]      # one event per copy, not per try
    assert first["info"].endswith(": 451 4.3.0 central quarantine busy; tried again every 2 s")
    assert json.loads(first["data"])["remote_mta"] == "::1"
    core.cancel_scope.cancel()
