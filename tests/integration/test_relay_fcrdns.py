"""Host names in relay.allowed trust only a forward-confirmed PTR name (FCrDNS), against a
real DNS server on loopback (tests/support/dnsserver.py) and the core over real SMTP.

Whoever holds an address block writes its PTR records: a client at 127.0.0.3 whose PTR says
fake.someplace.test, a name whose A record is elsewhere, must not relay under
`*.someplace.test` (policy finding A1), nor be exempted from the RBL, nor be named in the
Received field. Loopback gives the test many client addresses: smtplib binds 127.0.0.2,
127.0.0.3 … as its source address, and ::1 for IPv6.
"""

from __future__ import annotations

import smtplib

import pytest
import trio

from core.app import run_core
from core.delivery.mx import Resolver
from core.smtp.rbl import query_name
from shared.events import Action
from shared.settings import defaults
from tests.support.core import make_home
from tests.support.dnsserver import DnsServer
from tests.support.waiting import events_of

CONFIRMED = "127.0.0.2"       # PTR mx.someplace.test, whose A is 127.0.0.2
SPOOFED = "127.0.0.3"         # PTR fake.someplace.test, whose A is 10.9.9.9


@pytest.fixture
def dns():
    with DnsServer() as server:
        server.add_ptr(CONFIRMED, "mx.someplace.test").add_a("mx.someplace.test", CONFIRMED)
        server.add_ptr(SPOOFED, "fake.someplace.test").add_a("fake.someplace.test", "10.9.9.9")
        yield server


def _values(dns, **changes):
    values = defaults()
    values["dns.resolvers"] = [dns.resolver]
    values["dns.timeout_seconds"] = 1
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def _home(tmp_path, sink, dns, **changes):
    return make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        dns__resolvers=[dns.resolver], dns__timeout_seconds=1, relay__mode="deny_except",
        **changes)


def _rcpt(port, source, recipient="carol@other.test", host="127.0.0.1"):
    with smtplib.SMTP(host, port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("client.test")
        client.mail("alice@sender.test")
        return client.rcpt(recipient)


def _mail_from(port, source):
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("client.test")
        return client.mail("alice@sender.test")


def _send(port, source, subject):
    body = (f"From: alice@sender.test\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@sender.test>\r\n\r\nHello.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.sendmail("alice@sender.test", ["user@local.test"], body)


async def _refused_by_relay(core, home):
    """The relay refusals on record once the sessions have ended (a refusal's event is
    written when its transaction ends)."""
    rows: list = []
    with trio.fail_after(10):
        while not rows:
            await core.events.aflush()
            rows = [row for row in events_of(home, Action.REJECTED)
                    if row["rule"] == "relay.allowed"]
            await trio.sleep(0.02)
    return rows


# --- the resolver: which PTR name is confirmed --------------------------------------------

async def test_a_ptr_name_counts_only_when_it_resolves_back_to_the_client(dns):
    resolver = Resolver(lambda: _values(dns))
    assert await resolver.confirmed_ptr(CONFIRMED) == "mx.someplace.test"
    assert await resolver.confirmed_ptr(SPOOFED) is None
    assert await resolver.confirmed_ptr("127.0.0.9") is None          # no PTR at all
    assert await resolver.confirmed_ptr(f"::ffff:{CONFIRMED}") == "mx.someplace.test"


@pytest.mark.parametrize("forward", ["nxdomain", "servfail", "timeout", "aaaa_only"])
async def test_a_forward_lookup_that_fails_confirms_nothing(dns, forward):
    """Today's rule for a PTR lookup that fails (no name, relaying refused with 550) holds
    for the forward lookup too: nothing confirms the name, so it is not the client's."""
    dns.add_ptr("127.0.0.7", "broken.someplace.test")
    if forward == "aaaa_only":      # the name exists, but has no IPv4 address
        dns.add_aaaa("broken.someplace.test", "::1")
    elif forward != "nxdomain":
        dns.add_a("broken.someplace.test", "127.0.0.7")
        dns.fail("broken.someplace.test", forward)
    resolver = Resolver(lambda: _values(dns))
    assert await resolver.confirmed_ptr("127.0.0.7") is None
    assert ("broken.someplace.test", "A") in dns.queries


async def test_the_name_confirmed_is_the_one_that_resolves_back(dns):
    """A client may have several PTR names: the first that resolves back is its name, and
    a name that does not resolve back counts for nothing even when listed first."""
    dns.add_ptr("127.0.0.4", "other.elsewhere.test").add_a("other.elsewhere.test", "10.0.0.1")
    dns.add_ptr("127.0.0.4", "ok.someplace.test").add_a("ok.someplace.test", "127.0.0.4")
    dns.add_ptr("127.0.0.5", "x.someplace.test").add_a("x.someplace.test", "10.9.9.9")
    dns.add_ptr("127.0.0.5", "y.elsewhere.test").add_a("y.elsewhere.test", "127.0.0.5")
    resolver = Resolver(lambda: _values(dns))
    assert await resolver.confirmed_ptr("127.0.0.4") == "ok.someplace.test"
    assert await resolver.confirmed_ptr("127.0.0.5") == "y.elsewhere.test"


async def test_an_ipv6_ptr_name_is_confirmed_by_its_aaaa_records(dns):
    dns.add_ptr("2001:db8::25", "v6.someplace.test").add_aaaa("v6.someplace.test",
                                                              "2001:db8:0:0::25")
    dns.add_ptr("2001:db8::26", "v6fake.someplace.test").add_aaaa("v6fake.someplace.test",
                                                                  "2001:db8::99")
    dns.add_a("v6fake.someplace.test", "127.0.0.1")
    resolver = Resolver(lambda: _values(dns))
    assert await resolver.confirmed_ptr("2001:db8::25") == "v6.someplace.test"
    assert await resolver.confirmed_ptr("2001:db8::26") is None


# --- through the core over SMTP -------------------------------------------------------------

@pytest.mark.parametrize("allowed", [["*.someplace.test"],
                                     ["mx.someplace.test", "fake.someplace.test"]])
async def test_a_client_whose_ptr_name_does_not_resolve_back_may_not_relay(
        tmp_path, sink, dns, nursery, allowed):
    home = _home(tmp_path, sink, dns, relay__allowed=allowed)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    code, text = await trio.to_thread.run_sync(_rcpt, port, SPOOFED)
    assert (code, text[:5]) == (550, b"5.7.1")
    code, _text = await trio.to_thread.run_sync(_rcpt, port, CONFIRMED)
    assert code == 250
    refused = await _refused_by_relay(core, home)
    assert [row["client_ip"] for row in refused] == [SPOOFED]
    core.cancel_scope.cancel()


async def test_the_received_field_names_only_a_confirmed_client(tmp_path, sink, dns, nursery):
    home = _home(tmp_path, sink, dns, relay__allowed=["*.someplace.test"])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, CONFIRMED, "confirmed")
    await trio.to_thread.run_sync(_send, port, SPOOFED, "spoofed")
    messages = await trio.to_thread.run_sync(sink.wait_for, 2)
    received = {m.message["Subject"]: " ".join(m.message["Received"].split())
                for m in messages}
    assert "(mx.someplace.test [127.0.0.2])" in received["confirmed"]
    assert "fake.someplace.test" not in received["spoofed"]
    assert "([127.0.0.3])" in received["spoofed"]
    core.cancel_scope.cancel()


async def test_an_unconfirmed_name_does_not_exempt_a_client_from_the_rbl(tmp_path, sink, dns,
                                                                        nursery):
    """A client of relay.allowed is not refused for an RBL listing (its own mail host);
    a name it merely claims in its PTR record does not make it one."""
    for client in (CONFIRMED, SPOOFED):
        dns.add_a(query_name(client, "bl.test"), "127.0.0.2")
    home = _home(tmp_path, sink, dns, relay__allowed=["*.someplace.test"],
                 rbl__action="reject",
                 rbl__zones=[{"enabled": True, "zone": "bl.test", "return_codes": []}])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    code, _text = await trio.to_thread.run_sync(_mail_from, port, SPOOFED)
    assert code == 550
    code, _text = await trio.to_thread.run_sync(_mail_from, port, CONFIRMED)
    assert code == 250
    core.cancel_scope.cancel()


async def test_an_ipv6_client_relays_only_under_a_confirmed_name(tmp_path, sink, dns,
                                                                nursery):
    dns.add_ptr("::1", "v6.someplace.test")
    home = _home(tmp_path, sink, dns, relay__allowed=["*.someplace.test"],
                 smtp__listen=["::1"])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    dns.add_aaaa("v6.someplace.test", "2001:db8::1")      # elsewhere: not confirmed
    code, _text = await trio.to_thread.run_sync(_rcpt, port, "::1", "carol@other.test", "::1")
    assert code == 550
    dns.add_aaaa("v6.someplace.test", "::1")
    code, _text = await trio.to_thread.run_sync(_rcpt, port, "::1", "carol@other.test", "::1")
    assert code == 250
    core.cancel_scope.cancel()


async def test_the_forward_lookups_of_several_ptr_names_run_side_by_side(dns):
    """One after another, each with the whole DNS limit, five names that do not resolve made
    the greeting wait six limits (regress11 finding 3). Here the name that confirms answers
    only once the other name is asked: one after another it timed out first."""
    dns.add_ptr("127.0.0.6", "first.someplace.test")
    dns.add_ptr("127.0.0.6", "second.someplace.test")
    dns.add_a("first.someplace.test", "127.0.0.6").add_a("second.someplace.test", "10.0.0.6")
    dns.hold("first.someplace.test", until_asked="second.someplace.test")
    resolver = Resolver(lambda: _values(dns))
    assert await resolver.confirmed_ptr("127.0.0.6") == "first.someplace.test"
