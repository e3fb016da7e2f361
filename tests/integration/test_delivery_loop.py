"""Mail routed back to this gateway fails at once with 5.4.6 "mail for <next hop> loops back
to myself" (core/delivery/deliver.py rule 8): a candidate that is our own listener (address
and port) is never called. Another server on this machine is no loop, nor is a next hop
that greets with our name (a generic machine name, a backup MX behind NAT).

Regression (findings 15, delivery client, 5): a local route to the gateway's own domain
without a relay (the MX of that domain is the gateway) went round a hundred times, each
pass accepted and delivered, until the hop limit refused it.
"""

from __future__ import annotations

import smtplib

import pytest
import trio

from core.app import run_core
from core.delivery import NextHop
from core.delivery.routing import route
from shared.events import Action
from tests.support.next_hop import MESSAGE, ScriptedHop, deliver, snapshot
from tests.support.core import free_port, make_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]


def ours(dns_server=None, port=None, listen=("127.0.0.1",), **overrides):
    """The settings of a gateway named gw.test listening on `listen`, port `port`."""
    return snapshot(dns_server, smtp__port=port or free_port(), smtp__listen=list(listen),
                    **overrides)


@pytest.mark.parametrize("listen", [["127.0.0.1"], ["0.0.0.0", "::"]])
async def test_a_relay_that_is_our_own_listener_fails_without_a_connection(tmp_path,
                                                                           nursery, listen):
    hop = ScriptedHop()            # on our port, as our listener would be
    port = await nursery.start(hop.serve)
    [result], _ = await deliver(tmp_path, ours(port=port, listen=listen),
                                NextHop("relay", "127.0.0.1", port))
    assert (result.outcome, result.status) == ("failed", "5.4.6")
    assert result.text == (f"mail for 127.0.0.1 loops back to myself: "
                           f"127.0.0.1[127.0.0.1]:{port} is this gateway's own SMTP listener")
    assert hop.connections == []


async def test_an_mx_host_that_is_us_and_those_after_it_are_dropped(tmp_path, nursery,
                                                                      dns_server):
    # mx1 is another server on our port, at an address we do not listen on: it is
    # called; mx2 is us, so its 451 at mx1 stands instead of a call to ourselves
    other, us = ScriptedHop(mail=b"451 4.3.0 busy"), ScriptedHop()
    port = await nursery.start(us.serve)
    await nursery.start(other.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "gw.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("gw.dest.test", "127.0.0.1")
    settings = ours(dns_server, port, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.text, result.remote_mta) == (
        "deferred", "451 4.3.0 busy", "mx1.dest.test")
    assert len(other.connections) == 1 and us.connections == []


@pytest.mark.parametrize("first", [
    {"greeting": b"220 gw.test ESMTP Mailmoat"},                  # named as we are
    {"greeting": b"220 gw.test ESMTP Mailmoat", "mail": b"451 4.3.0 busy"}])
async def test_an_mx_host_greeting_with_our_name_is_not_taken_for_us(tmp_path, nursery,
                                                                     dns_server, first):
    # the name is not compared (rule 8): a host named like us takes the mail, and one that
    # defers leaves it to the next MX host, never failing it as a loop
    one, two = ScriptedHop(**first), ScriptedHop(greeting=b"220 gw.test ESMTP")
    port = await nursery.start(two.serve)
    await nursery.start(one.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.1")
    settings = ours(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert result.outcome == "delivered"
    assert (one.messages or two.messages) == [MESSAGE]


async def test_another_server_on_this_machine_is_no_loop(tmp_path, nursery):
    # our listener on 127.0.0.1 too, on another port; the hop's name is its own
    hop = ScriptedHop(greeting=b"220 hop.test ESMTP Mailmoat")
    port = await nursery.start(hop.serve)
    [result], _ = await deliver(tmp_path, ours(listen=["0.0.0.0"]),
                                NextHop("relay", "127.0.0.1", port))
    assert result.outcome == "delivered" and hop.messages == [MESSAGE]


async def test_a_relay_named_in_the_settings_may_greet_with_our_name(tmp_path, nursery):
    # an MTA on this machine behind the gateway greets with the machine's name, which is ours
    hop = ScriptedHop(greeting=b"220 gw.test ESMTP Postfix",
                      ehlo=b"250-gw.test\r\n250 ENHANCEDSTATUSCODES")
    port = await nursery.start(hop.serve)
    [result], _ = await deliver(tmp_path, ours(), NextHop("relay", "127.0.0.1", port))
    assert result.outcome == "delivered" and hop.messages == [MESSAGE]


async def test_a_route_to_the_gateways_own_domain_fails_on_the_first_pass(
        tmp_path, nursery, dns_server):
    # the finding's setup: routing.local for the gateway's own domain without a relay, so
    # "the MX of the matched name" is the gateway itself
    port = free_port()
    dns_server.add_a("self.test", "127.0.0.1")           # no MX: the domain's own address
    home = make_home(tmp_path, smtp__port=port, dns__resolvers=[dns_server.resolver],
                     routing__local=[{"match": "self.test", "port": port}])
    core = await nursery.start(run_core, home)

    def send():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("sender@client.test", ["user@self.test"],
                            b"Subject: round\r\n\r\nbody\r\n")

    await trio.to_thread.run_sync(send)
    await until(lambda: events_of(home, Action.DELIVERY_FAILED))
    await core.events.aflush()
    [failed] = [e for e in events_of(home, Action.DELIVERY_FAILED)
                if "user@self.test" in e["recipients"]]
    assert failed["info"] == (f"mail for self.test loops back to myself: self.test"
                              f"[127.0.0.1]:{port} is this gateway's own SMTP listener")
    assert len(events_of(home, Action.ACCEPTED)) == 1       # not a hundred passes
    assert events_of(home, Action.DELIVERED) == []
    core.cancel_scope.cancel()


async def test_a_loop_through_two_gateways_still_ends_at_the_hop_limit(tmp_path, nursery):
    # two gateways, each its own name and port, routing local.test to the other: neither
    # sees itself, and the hop limit (core/smtp/reception.py MAX_HOPS) ends it
    from core.smtp.reception import MAX_HOPS
    port_a, port_b = free_port(), free_port()
    home_a = make_home(tmp_path / "a", smtp__port=port_a, smtp__hostname="a.test",
                       routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                        "port": port_b}])
    home_b = make_home(tmp_path / "b", smtp__port=port_b, smtp__hostname="b.test",
                       routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                        "port": port_a}])
    core_a = await nursery.start(run_core, home_a)
    core_b = await nursery.start(run_core, home_b)

    def send():
        with smtplib.SMTP("127.0.0.1", port_a, timeout=10) as client:
            client.sendmail("sender@client.test", ["user@local.test"],
                            b"Subject: round\r\n\r\nbody\r\n")

    await trio.to_thread.run_sync(send)
    homes = (home_a, home_b)
    await until(lambda: any(events_of(home, Action.DELIVERY_FAILED) for home in homes),
                timeout=60)
    for core in (core_a, core_b):
        await core.events.aflush()
    [refused] = [e for home in homes for e in events_of(home, Action.REJECTED)
                 if e["rule"] == "mail_loop"]
    assert refused["result"] == "554"
    assert sum(len(events_of(home, Action.ACCEPTED)) for home in homes) == MAX_HOPS
    core_a.cancel_scope.cancel()
    core_b.cancel_scope.cancel()
