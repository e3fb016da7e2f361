"""A 4xx after MAIL was accepted sends the recipients the host did not take on to the next,
less preferred MX host in the same attempt (core/delivery/deliver.py rule 1, as Postfix's
smtp(8) "will try to deliver the mail to an alternate host"); 2xx and 5xx answers stand at
the host that gave them. MX hosts are scripted hops on loopback (127.0.0.3 and 127.0.0.1)
named by the local DNS server.

The change this pins: rule 1 let every answer after an accepted MAIL stand, so a recipient
a primary greylisted (450 at RCPT), or a message it could not take just then (451 at DATA
or after the final dot), waited for the retry although the backup MX would have taken it.
"""

from __future__ import annotations

import pytest

from core.delivery import Deliverer
from core.delivery.routing import route
from shared.events import CONNECTION_ACTUAL, CONNECTION_SUCCEEDED, Action
from shared.spool import Envelope
from tests.support.next_hop import (CLOSE, MESSAGE, Recorder, ScriptedHop, deliver, snapshot,
                                    two_mx_hosts)

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

PIPELINING = b"250-hop.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES"
R450 = b"450 4.2.1 greylisted, try again later"
BOB, CAROL = "bob@dest.test", "carol@dest.test"


def rcpts(hop: ScriptedHop) -> list[list[str]]:
    """Each connection's RCPT addresses."""
    return [[line.partition("<")[2].rstrip(">") for line in lines
             if line.startswith("C: RCPT")] for lines in hop.connections]


async def deliver_to_mx(tmp_path, nursery, dns_server, first, second, recipients=(BOB,)):
    settings = await two_mx_hosts(nursery, dns_server, first, second)
    return await deliver(tmp_path, settings, route("dest.test", settings), list(recipients))


def outcomes(results) -> list[tuple[str, str, str | None]]:
    return [(r.address, r.outcome, r.remote_mta) for r in results]


# --- recipients the primary deferred are delivered by the backup ------------------------------

@pytest.mark.parametrize("ehlo", [ScriptedHop.DEFAULTS["ehlo"], PIPELINING])
async def test_a_4xx_to_one_rcpt_sends_that_recipient_to_the_backup(tmp_path, nursery,
                                                                    dns_server, ehlo):
    primary = ScriptedHop(ehlo=ehlo, **{f"rcpt_{CAROL}": R450})
    backup = ScriptedHop(ehlo=ehlo)
    results, events = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                          [BOB, CAROL])
    assert outcomes(results) == [(BOB, "delivered", "mx1.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test")]
    # one copy each: bob's from the primary, carol's from the backup, and nothing else
    assert primary.messages == [MESSAGE] and backup.messages == [MESSAGE]
    assert rcpts(primary) == [[BOB, CAROL]] and rcpts(backup) == [[CAROL]]
    # each connection the attempt used has its CONNECTED_TO (rule 5)
    assert [(f["data"]["host"], f["data"]["connection"], f["result"])
            for action, f in events.events if action is Action.CONNECTED_TO] == [
        ("mx1.dest.test", CONNECTION_ACTUAL, CONNECTION_SUCCEEDED),
        ("mx2.dest.test", CONNECTION_ACTUAL, CONNECTION_SUCCEEDED)]


@pytest.mark.parametrize("stage, reply", [
    ("data", b"451 4.3.0 try again later"),
    ("end", b"451 4.3.0 queue full, try again later"),
    ("end", b"421 4.3.2 shutting down|close")])
async def test_a_4xx_to_data_or_the_dot_sends_every_recipient_to_the_backup(
        tmp_path, nursery, dns_server, stage, reply):
    primary, backup = ScriptedHop(**{stage: reply}), ScriptedHop()
    results, _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                     [BOB, CAROL])
    assert outcomes(results) == [(BOB, "delivered", "mx2.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test")]
    assert rcpts(backup) == [[BOB, CAROL]] and backup.messages == [MESSAGE]


async def test_a_connection_closed_before_the_dot_sends_the_recipients_to_the_backup(
        tmp_path, nursery, dns_server):
    # the primary accepted bob and hung up at carol's RCPT: it cannot have the message
    primary, backup = ScriptedHop(**{f"rcpt_{CAROL}": CLOSE}), ScriptedHop()
    results, _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                     [BOB, CAROL])
    assert outcomes(results) == [(BOB, "delivered", "mx2.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test")]
    assert primary.messages == [] and backup.messages == [MESSAGE]


async def test_the_primary_takes_all_its_transactions_before_the_backup_gets_its_deferrals(
        tmp_path, nursery, dns_server):
    # 101 recipients: two transactions (deliver.py MAX_RECIPIENTS_PER_TRANSACTION), both at
    # the primary; then the one it greylisted goes to the backup, and no other
    recipients = [f"r{n}@dest.test" for n in range(101)]
    primary = ScriptedHop(**{"rcpt_r0@dest.test": R450})
    backup = ScriptedHop()
    results, _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                     recipients)
    assert outcomes(results) == [("r0@dest.test", "delivered", "mx2.dest.test")] + [
        (r, "delivered", "mx1.dest.test") for r in recipients[1:]]
    assert rcpts(primary) == [recipients] and len(primary.messages) == 2
    assert rcpts(backup) == [["r0@dest.test"]] and backup.messages == [MESSAGE]


# --- deferred when no later host takes them ------------------------------------------------

@pytest.mark.parametrize("stage", ["rcpt", "data", "end"])
async def test_deferred_by_every_host_keeps_the_last_hosts_reply(tmp_path, nursery,
                                                                 dns_server, stage):
    first = ScriptedHop(**{stage: b"451 4.3.0 first is busy"})
    last = ScriptedHop(**{stage: b"452 4.3.1 last is full"})
    [result], _ = await deliver_to_mx(tmp_path, nursery, dns_server, first, last)
    # Postfix reports the last server's reply; the primary's is superseded
    assert (result.outcome, result.text, result.status, result.remote_mta,
            result.is_remote_reply) == ("deferred", "452 4.3.1 last is full", "4.3.1",
                                        "mx2.dest.test", True)
    assert len(first.connections) == len(last.connections) == 1


async def test_a_backup_that_cannot_be_reached_leaves_the_primarys_4xx(tmp_path, nursery,
                                                                       dns_server):
    primary = ScriptedHop(rcpt=R450)
    port = await nursery.start(primary.serve)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.1").add_a("mx2.dest.test", "127.0.0.3")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], events = await deliver(tmp_path, settings, route("dest.test", settings))
    # mx2 refuses the connection: the answer of the host that said something is kept
    assert (result.outcome, result.text, result.status, result.remote_mta) == (
        "deferred", R450.decode(), "4.2.1", "mx1.dest.test")
    assert [(f["data"]["host"], f["result"]) for action, f in events.events
            if action is Action.CONNECTED_TO] == [("mx1.dest.test", CONNECTION_SUCCEEDED),
                                                  ("mx2.dest.test", "failed")]


async def test_a_connection_lost_after_the_dot_defers_without_a_second_copy(
        tmp_path, nursery, dns_server):
    # the primary may have taken the message: the retry, with its backoff, decides
    primary, backup = ScriptedHop(end=CLOSE), ScriptedHop()
    [result], _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup)
    assert (result.outcome, result.status, result.remote_mta) == ("deferred", "4.4.2",
                                                                  "mx1.dest.test")
    assert primary.messages == [MESSAGE] and backup.connections == []


# --- 2xx and 5xx stand at the host that gave them -------------------------------------------

@pytest.mark.parametrize("stage, reply", [
    ("rcpt", b"550 5.1.1 no such user"),
    ("data", b"554 5.7.1 not from you"),
    ("end", b"554 5.7.1 message refused")])
async def test_a_5xx_at_the_primary_fails_without_the_backup(tmp_path, nursery, dns_server,
                                                             stage, reply):
    primary, backup = ScriptedHop(**{stage: reply}), ScriptedHop()
    [result], _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup)
    assert (result.outcome, result.text, result.remote_mta) == ("failed", reply.decode(),
                                                                "mx1.dest.test")
    assert backup.connections == []


async def test_only_the_deferred_recipient_goes_on_when_another_is_refused_for_good(
        tmp_path, nursery, dns_server):
    primary = ScriptedHop(**{f"rcpt_{BOB}": b"550 5.1.1 no such user", f"rcpt_{CAROL}": R450})
    backup = ScriptedHop()
    results, _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                     [BOB, CAROL])
    assert outcomes(results) == [(BOB, "failed", "mx1.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test")]
    assert rcpts(backup) == [[CAROL]]


# --- loops (rule 8) -------------------------------------------------------------------------

async def test_an_mx_host_that_is_us_is_never_the_next_host(tmp_path, nursery, dns_server):
    # mx1 is another server on our port, at an address we do not listen on; mx2 is our own
    # listener: mx1's 4xx at RCPT stands instead of a call to ourselves
    other, us = ScriptedHop(rcpt=R450), ScriptedHop()
    port = await nursery.start(us.serve)
    await nursery.start(other.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "gw.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("gw.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, smtp__port=port, smtp__listen=["127.0.0.1"],
                        routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.text, result.remote_mta) == (
        "deferred", R450.decode(), "mx1.dest.test")
    assert len(other.connections) == 1 and us.connections == []


async def test_a_primary_that_is_us_still_fails_at_once(tmp_path, nursery, dns_server):
    us, backup = ScriptedHop(rcpt=R450), ScriptedHop()
    port = await nursery.start(us.serve)
    await nursery.start(backup.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "gw.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("gw.dest.test", "127.0.0.1").add_a("mx2.dest.test", "127.0.0.3")
    settings = snapshot(dns_server, smtp__port=port, smtp__listen=["127.0.0.1"],
                        routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.status) == ("failed", "5.4.6")
    assert us.connections == [] and backup.connections == []


# --- the connection pool (rule 5) -----------------------------------------------------------

async def test_the_backups_connection_is_not_reused_for_the_next_message(tmp_path, nursery,
                                                                         dns_server):
    # the primary greylisted carol only: the next message goes to it again, not to the
    # backup over a pooled connection
    primary, backup = ScriptedHop(**{f"rcpt_{CAROL}": R450}), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", [BOB, CAROL])
    envelope.size = len(MESSAGE)
    events = Recorder()
    deliverer = Deliverer(settings=lambda: settings, events=events)
    hop = route("dest.test", settings)
    try:
        first = await deliverer.deliver(hop, envelope, [BOB, CAROL], path)
        [second] = await deliverer.deliver(hop, envelope, [BOB], path)
    finally:
        await deliverer.aclose()
    assert outcomes(first) == [(BOB, "delivered", "mx1.dest.test"),
                               (CAROL, "delivered", "mx2.dest.test")]
    assert (second.outcome, second.remote_mta) == ("delivered", "mx1.dest.test")
    assert backup.verbs == [["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]]
    assert rcpts(primary) == [[BOB, CAROL], [BOB]]
    assert [(f["data"]["host"], f["data"]["connection"]) for action, f in events.events
            if action is Action.CONNECTED_TO] == [("mx1.dest.test", CONNECTION_ACTUAL),
                                                  ("mx2.dest.test", CONNECTION_ACTUAL),
                                                  ("mx1.dest.test", CONNECTION_ACTUAL)]
