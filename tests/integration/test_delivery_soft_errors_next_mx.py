"""A 4xx after MAIL was accepted sends the recipients the host did not take on to the next
candidate address in the same attempt — the host's other addresses, then the less preferred
MX hosts (core/delivery/deliver.py rule 1, as Postfix's smtp(8) "will try to deliver the
mail to an alternate host"); 2xx and 5xx answers stand at the host that gave them. Only
connections to a best-preference host are pooled, each for at most 300 s. MX hosts are
scripted hops on loopback (127.0.0.3 and 127.0.0.1) named by the local DNS server.

The changes this pins: rule 1 let every answer after an accepted MAIL stand, so a recipient
a primary greylisted (450 at RCPT), or a message it could not take just then (451 at DATA
or after the final dot), waited for the retry although the backup MX would have taken it.
Then (mxfail findings 1-4) a 4xx never went to a host's other address; a connection to the
backup, pooled while the primary was down a moment, kept the domain's mail and handed its
4xx only to hosts after it; the primary's connection was closed at every hand-on; and the
conversation log noted the backup's close twice.
"""

from __future__ import annotations

import random
from types import MappingProxyType

import pytest

from core.delivery import Deliverer
from core.delivery.mx import Resolver
from core.delivery.pool import REUSE_TIME_LIMIT_SECONDS
from core.delivery.routing import route
from shared.events import CONNECTION_ACTUAL, CONNECTION_CACHED, CONNECTION_SUCCEEDED, Action
from shared.spool import Envelope
from tests.support.next_hop import (CLOSE, MESSAGE, Recorder, ScriptedHop, deliver, relay_to,
                                    snapshot, two_mx_hosts)

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

PIPELINING = b"250-hop.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES"
R450 = b"450 4.2.1 greylisted, try again later"
BOB, CAROL, DAVE = "bob@dest.test", "carol@dest.test", "dave@dest.test"


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


@pytest.mark.parametrize("backup_script", [
    {"ehlo": b"550 5.7.1 go away", "helo": b"550 5.7.1 go away"},
    {f"rcpt_{CAROL}": b"550 5.7.1 relay access denied"}])
async def test_a_backups_5xx_leaves_the_primarys_4xx_standing(tmp_path, nursery, dns_server,
                                                             backup_script):
    # review16 B2: a backup refusing HELO, or relaying for nobody, failed a recipient the
    # primary only greylisted, and the sender got a bounce for mail the primary would take
    # at the retry. The backup's refusal is in the text, for the admin.
    primary = ScriptedHop(**{f"rcpt_{CAROL}": R450})
    backup = ScriptedHop(**backup_script)
    results, _ = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                     [BOB, CAROL])
    assert outcomes(results) == [(BOB, "delivered", "mx1.dest.test"),
                                 (CAROL, "deferred", "mx1.dest.test")]
    carol = results[1]
    assert (carol.status, carol.is_remote_reply) == ("4.2.1", True)
    assert carol.text == R450.decode()      # the note apart (review19 r2 D1)
    assert carol.full_text.startswith(R450.decode() + " (then mx2.dest.test")
    assert carol.full_text.endswith(": 550 5.7.1 go away)" if "ehlo" in backup_script else
                                    " answered 550 5.7.1 relay access denied)")
    assert len(backup.connections) == 1


BACKUP_REFUSALS = [{"ehlo": b"550 5.7.1 go away", "helo": b"550 5.7.1 go away"},
                   {"rcpt": b"550 5.7.1 relay access denied"}]


@pytest.mark.parametrize("backup_script", BACKUP_REFUSALS)
@pytest.mark.parametrize("primary_down", ["connection refused", "421 greeting", "421 to EHLO"])
async def test_a_backups_5xx_leaves_the_unreachable_primary_standing(
        tmp_path, nursery, dns_server, primary_down, backup_script):
    # review16b B1: a primary that could not be reached or was busy (421 at its greeting or
    # to EHLO) gave no session, and the backup's 5xx bounced mail the primary takes at the
    # retry; the same 5xx after the primary's 451 to MAIL left the recipient deferred
    backup = ScriptedHop(**backup_script)
    port = await nursery.start(backup.serve)
    if primary_down != "connection refused":    # nothing listens on 127.0.0.3 then
        primary = ScriptedHop(**({"greeting": b"421 4.3.2 busy|close"}
                                 if primary_down == "421 greeting"
                                 else {"ehlo": b"421 4.3.2 busy|close"}))
        await nursery.start(primary.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    results, _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB, CAROL])
    assert [r.outcome for r in results] == ["deferred", "deferred"]
    mx1 = f"mx1.dest.test[127.0.0.3]:{port}"
    why = {"connection refused": f"connect to {mx1}: Connection refused",
           "421 greeting": f"{mx1} greeted with 421 4.3.2 busy",
           "421 to EHLO": f"{mx1} refused EHLO/HELO: 421 4.3.2 busy"}[primary_down]
    for result in results:
        assert result.text == why
        assert result.full_text.startswith(why + " (then ")
        assert result.full_text.endswith(": 550 5.7.1 go away)" if "ehlo" in backup_script
                                         else " answered 550 5.7.1 relay access denied)")
    assert backup.messages == []


async def test_a_refused_helo_stands_where_no_more_preferred_host_failed_temporarily(
        tmp_path, nursery, dns_server):
    # B1's limit: the primary refusing us for good fails the recipients, though the backup
    # after it could not be reached (nothing listens on 127.0.0.4)
    primary = ScriptedHop(**BACKUP_REFUSALS[0])
    port = await nursery.start(primary.serve, "127.0.0.3")
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.4")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    results, _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert [(r.outcome, r.remote_mta) for r in results] == [("failed", "mx1.dest.test")]


async def test_the_hand_on_note_tells_deferred_from_untried(tmp_path, nursery, dns_server):
    # review16 C8: "deferred 3 recipient(s)" counted dave, whom the primary refused only for
    # its limit of recipients before it closed the connection at the dot: untried there, he
    # goes on with the others (C7: rule 1 said such a recipient never does)
    primary = ScriptedHop(**{f"rcpt_{DAVE}": b"452 4.5.3 too many recipients",
                             "end": b"421 4.3.2 shutting down|close"})
    settings = await two_mx_hosts(nursery, dns_server, primary, ScriptedHop())
    settings = MappingProxyType({**settings, "diagnostics.conversation.outbound": "all"})
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    diagnostics = tmp_path / "diagnostics"
    deliverer, _ = new_deliverer(settings, diagnostics_dir=diagnostics)
    try:
        results = await send(deliverer, settings, path, [BOB, CAROL, DAVE])
    finally:
        await deliverer.aclose()
    assert outcomes(results) == [(BOB, "delivered", "mx2.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test"),
                                 (DAVE, "delivered", "mx2.dest.test")]
    [log] = list(diagnostics.rglob("outbound-*.log"))
    [note] = [line for line in log.read_text().splitlines() if "the next address" in line]
    assert note.endswith("deferred 2 recipient(s) without taking the message and left 1 "
                         "untried (the connection closed): the next address is tried")


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


# --- a host's other addresses (rule 1) ------------------------------------------------------

async def one_host_two_addresses(nursery, dns_server, first: ScriptedHop, second: ScriptedHop,
                                 relay: bool):
    """dest.test's one host (its MX, or a routing.local relay host) at 127.0.0.3, `first`,
    and 127.0.0.1, `second`, in that order; the settings."""
    port = await nursery.start(second.serve)
    await nursery.start(first.serve, "127.0.0.3", port)
    host = "relayhost.test" if relay else "mx.dest.test"
    if not relay:
        dns_server.add_mx("dest.test", 10, host)
    dns_server.add_a(host, "127.0.0.3").add_a(host, "127.0.0.1")
    entry = {"match": "dest.test", "port": port} | ({"relay": host} if relay else {})
    return snapshot(dns_server, routing__local=[entry]), host


@pytest.mark.parametrize("relay", [False, True], ids=["mx", "relay"])
async def test_a_4xx_at_one_address_sends_the_recipient_to_the_hosts_next_address(
        tmp_path, nursery, dns_server, relay):
    # mxfail finding 2: carol, greylisted at the first address, waited for the retry; the
    # host's other address, maybe a node that does not share the greylisting, was never
    # asked. bob's dot is never answered: he stays deferred, with no second copy at once;
    # dave's 5xx stands.
    first = ScriptedHop(**{f"rcpt_{CAROL}": R450, f"rcpt_{DAVE}": b"550 5.1.1 no such user",
                           "end": CLOSE})
    second = ScriptedHop()
    settings, host = await one_host_two_addresses(nursery, dns_server, first, second, relay)
    results, events = await deliver(tmp_path, settings, route("dest.test", settings),
                                    [BOB, CAROL, DAVE])
    assert [(r.address, r.outcome) for r in results] == [
        (BOB, "deferred"), (CAROL, "delivered"), (DAVE, "failed")]
    assert {r.remote_mta for r in results} == {host}
    assert rcpts(first) == [[BOB, CAROL, DAVE]] and rcpts(second) == [[CAROL]]
    assert first.messages == second.messages == [MESSAGE]
    assert [f["data"]["address"] for action, f in events.events
            if action is Action.CONNECTED_TO] == ["127.0.0.3", "127.0.0.1"]


# --- the connection pool (rule 1) -----------------------------------------------------------

def new_deliverer(settings, diagnostics_dir=None, rng=None):
    """A Deliverer kept for several messages, so that its pool is used, and its events."""
    events = Recorder()
    return Deliverer(settings=lambda: settings, events=events,
                     resolver=Resolver(lambda: settings, rng=rng),
                     diagnostics_dir=diagnostics_dir), events


async def send(deliverer, settings, path, recipients, domain="dest.test"):
    envelope = Envelope.new("Q1", "alice@sender.test", list(recipients))
    envelope.size = len(MESSAGE)
    return await deliverer.deliver(route(domain, settings), envelope, list(recipients), path)


def connected(events) -> list[tuple[str, str]]:
    return [(f["data"]["host"], f["data"]["connection"]) for action, f in events.events
            if action is Action.CONNECTED_TO and f["result"] == CONNECTION_SUCCEEDED]


async def test_the_primarys_connection_is_pooled_and_the_backups_is_not(tmp_path, nursery,
                                                                       dns_server):
    # the primary greylisted carol only: it keeps its connection for the next message
    # (mxfail finding 3: it was closed, and 200 messages opened 200 connections to it),
    # and the next message goes to it, not to the backup over a pooled connection
    primary, backup = ScriptedHop(**{f"rcpt_{CAROL}": R450}), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    deliverer, events = new_deliverer(settings)
    try:
        first = await send(deliverer, settings, path, [BOB, CAROL])
        [second] = await send(deliverer, settings, path, [BOB])
    finally:
        await deliverer.aclose()
    assert outcomes(first) == [(BOB, "delivered", "mx1.dest.test"),
                               (CAROL, "delivered", "mx2.dest.test")]
    assert (second.outcome, second.remote_mta) == ("delivered", "mx1.dest.test")
    assert backup.verbs == [["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]]
    assert rcpts(primary) == [[BOB, CAROL, BOB]]         # one connection, both messages
    assert connected(events) == [("mx1.dest.test", CONNECTION_ACTUAL),
                                 ("mx2.dest.test", CONNECTION_ACTUAL),
                                 ("mx1.dest.test", CONNECTION_CACHED)]


async def test_a_connection_opened_to_the_backup_while_the_primary_was_down_is_not_pooled(
        tmp_path, nursery, dns_server):
    # mxfail finding 1: the primary was unreachable for a moment, and the backup's pooled
    # connection took every later message of the domain while the primary was back
    primary, backup = ScriptedHop(), ScriptedHop()
    port = await nursery.start(backup.serve)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    deliverer, events = new_deliverer(settings)
    try:
        [first] = await send(deliverer, settings, path, [BOB])
        await nursery.start(primary.serve, "127.0.0.3", port)       # the primary is back
        [second] = await send(deliverer, settings, path, [BOB])
    finally:
        await deliverer.aclose()
    assert (first.outcome, first.remote_mta) == ("delivered", "mx2.dest.test")
    assert (second.outcome, second.remote_mta) == ("delivered", "mx1.dest.test")
    assert backup.verbs == [["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]]


class InDnsOrder(random.Random):
    """MX hosts of equal preference in the order the DNS server lists them, not shuffled."""

    def shuffle(self, x):
        pass


async def test_a_pooled_connection_hands_its_deferrals_to_the_hosts_before_it(
        tmp_path, nursery, dns_server):
    # mxfail finding 1 (c): mxa and mxb have one preference, mxb first in this order. mxb
    # was down a moment, so mxa's connection is pooled, as it may be: mxa is a best host.
    # Reused, mxa greylists carol, and mxb, up again, was never asked (no host after mxa).
    mxb, mxa = ScriptedHop(), ScriptedHop(**{f"rcpt_{CAROL}": R450})
    port = await nursery.start(mxa.serve)
    dns_server.add_mx("dest.test", 10, "mxb.dest.test").add_mx("dest.test", 10, "mxa.dest.test")
    dns_server.add_a("mxb.dest.test", "127.0.0.3").add_a("mxa.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    deliverer, events = new_deliverer(settings, rng=InDnsOrder())
    try:
        [first] = await send(deliverer, settings, path, [BOB])
        await nursery.start(mxb.serve, "127.0.0.3", port)
        second = await send(deliverer, settings, path, [BOB, CAROL])
    finally:
        await deliverer.aclose()
    assert (first.outcome, first.remote_mta) == ("delivered", "mxa.dest.test")
    assert outcomes(second) == [(BOB, "delivered", "mxa.dest.test"),
                                (CAROL, "delivered", "mxb.dest.test")]
    assert rcpts(mxa) == [[BOB, BOB, CAROL]] and rcpts(mxb) == [[CAROL]]
    assert connected(events) == [("mxa.dest.test", CONNECTION_ACTUAL),
                                 ("mxa.dest.test", CONNECTION_CACHED),
                                 ("mxb.dest.test", CONNECTION_ACTUAL)]


async def test_a_connection_is_not_reused_past_its_reuse_time_limit(tmp_path, nursery,
                                                                   mock_clock):
    # mxfail finding 1: with mail at least every 30 s, one connection (and the host it
    # went to) served a next hop for good; Postfix ends one after 300 s
    hop = ScriptedHop()
    settings = snapshot()
    next_hop = await relay_to(nursery, hop)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", [BOB])
    envelope.size = len(MESSAGE)
    deliverer, _ = new_deliverer(settings)
    try:
        for wait in (0, REUSE_TIME_LIMIT_SECONDS - 1, 1):
            mock_clock.jump(wait)
            [result] = await deliverer.deliver(next_hop, envelope, [BOB], path)
            assert result.outcome == "delivered"
    finally:
        await deliverer.aclose()
    # reused once, 299 s after it opened; at 300 s it is closed and a new one opened
    assert hop.verbs == [["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
                          "QUIT"], ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]]


@pytest.mark.parametrize("max_outgoing", [1, 30])
async def test_the_conversation_log_notes_each_close_once(tmp_path, nursery, dns_server,
                                                          max_outgoing):
    # mxfail finding 4: the backup's connection was noted closed twice (one QUIT). With one
    # connection allowed, the primary's, given back, is closed to open the backup's.
    primary, backup = ScriptedHop(**{f"rcpt_{CAROL}": R450}), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    settings = MappingProxyType({**settings, "smtp.max_outgoing": max_outgoing,
                                 "diagnostics.conversation.outbound": "all"})
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    diagnostics = tmp_path / "diagnostics"
    deliverer, _ = new_deliverer(settings, diagnostics_dir=diagnostics)
    try:
        results = await send(deliverer, settings, path, [BOB, CAROL])
    finally:
        await deliverer.aclose()
    assert outcomes(results) == [(BOB, "delivered", "mx1.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test")]
    [log] = list(diagnostics.rglob("outbound-*.log"))
    closed = [line for line in log.read_text().splitlines() if line.endswith(" closed")]
    # the primary's went back to the pool and left the log (rule 6)
    assert len(closed) == 1 and "mx2.dest.test[127.0.0.1]" in closed[0]
    assert [verbs[-1] for verbs in primary.verbs + backup.verbs] == ["QUIT", "QUIT"]


class ReconnectRefused(ScriptedHop):
    """A host that takes one connection; every later one it closes without a word."""

    async def _handle(self, stream) -> None:
        if self.connections:
            self.connections.append([])
            await stream.aclose()
            return
        await super()._handle(stream)


@pytest.mark.parametrize("bob, ends", [
    (b"250 2.1.5 ok", {"end": b"250 2.0.0 queued|close"}),        # stale at the next MAIL
    (b"550 5.1.1 no such user", {"rset": b"421 4.7.0 too many errors|close"}),
])
async def test_a_replacement_connection_at_the_backup_gets_the_primarys_deferrals_too(
        tmp_path, nursery, dns_server, bob, ends):
    """review19 r5 R3: the primary greylists carol, stops dave at its limit of recipients
    per transaction (rule 7), and hangs up after the transaction: after taking bob's
    message, or at the RSET after refusing bob. The fresh connection for dave, refused by
    the primary, lands on the backup: carol went on waiting for the retry with the
    primary's 450 though the backup was asked anyway."""
    primary = ReconnectRefused(**{f"rcpt_{BOB}": bob, f"rcpt_{CAROL}": R450,
                                  f"rcpt_{DAVE}": b"452 4.5.3 Too many recipients", **ends})
    backup = ScriptedHop()
    results, _events = await deliver_to_mx(tmp_path, nursery, dns_server, primary, backup,
                                           [BOB, CAROL, DAVE])
    bob_taken = bob.startswith(b"250")
    assert outcomes(results) == [(BOB, "delivered" if bob_taken else "failed", "mx1.dest.test"),
                                 (CAROL, "delivered", "mx2.dest.test"),
                                 (DAVE, "delivered", "mx2.dest.test")]
    assert rcpts(primary) == [[BOB, CAROL, DAVE], []]
    assert rcpts(backup) == [[CAROL, DAVE]]
    assert primary.messages == ([MESSAGE] if bob_taken else [])
    assert backup.messages == [MESSAGE]
