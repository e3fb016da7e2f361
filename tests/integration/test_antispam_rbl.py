"""Real-time blacklists against a real DNS server on loopback (tests/support/dnsserver.py):
RFC 5782 query names for IPv4 and IPv6, return-code filtering, TTL caching, time limits when
the DNS server does not answer — and, through the core over SMTP, the reject at MAIL FROM
(550 5.7.1, whitelisted senders pass) and the after-DATA actions."""

from __future__ import annotations

import ipaddress
import smtplib

import pytest
import trio

from core.app import run_core
from core.delivery.mx import Resolver
from core.smtp.rbl import (DEFAULT_NEGATIVE_SECONDS, FAILURES_TO_SUSPEND, RblChecker,
                           query_name)
from shared import db
from shared.events import Action
from shared.settings import defaults
from tests.support.core import make_home, set_settings
from tests.support.clock import FakeTime
from tests.support.dnsserver import DnsServer
from tests.support.waiting import events_of as _events, until



ZONE = "bl.test"


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


def _settings(dns, zones, **changes):
    values = defaults()
    values["dns.resolvers"] = [dns.resolver]
    values["dns.timeout_seconds"] = 1
    values["rbl.zones"] = zones
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def _checker(values, clock=None):
    return RblChecker(Resolver(lambda: values), clock=clock or trio.current_time)


def test_query_names_follow_rfc_5782():
    assert query_name("192.0.2.99", "bl.test") == "99.2.0.192.bl.test"
    # RFC 5782 §2.4 example: 2001:db8:1:2:3:4:567:89ab
    assert query_name("2001:db8:1:2:3:4:567:89ab", "ugly.example.com.") == (
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com")
    assert query_name("::ffff:192.0.2.99", "bl.test") == "99.2.0.192.bl.test"


async def test_listed_ipv4_and_ipv6_clients(dns):
    dns.add_a(query_name("192.0.2.99", ZONE), "127.0.0.2")
    dns.add_a(query_name("2001:db8::99", ZONE), "127.0.0.2")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    checker = _checker(values)
    listing = await checker.check("192.0.2.99", values)
    assert listing.zone == ZONE and listing.codes == ("127.0.0.2",)
    assert (await checker.check("2001:db8::99", values)).ip == "2001:db8::99"
    assert await checker.check("192.0.2.1", values) is None        # NXDOMAIN: not listed


async def test_return_codes_filter_which_answers_list(dns):
    dns.add_a(query_name("192.0.2.10", ZONE), "127.0.0.4")        # e.g. "dynamic IP"
    dns.add_a(query_name("192.0.2.11", ZONE), "127.0.0.2")
    dns.add_a(query_name("192.0.2.11", ZONE), "127.0.0.4")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": ["127.0.0.2"]}])
    checker = _checker(values)
    assert await checker.check("192.0.2.10", values) is None
    assert (await checker.check("192.0.2.11", values)).codes == ("127.0.0.2",)


async def test_answers_outside_127_8_and_disabled_zones_do_not_list(dns):
    dns.add_a(query_name("192.0.2.12", ZONE), "192.0.2.200")       # a hijacking resolver
    dns.add_a(query_name("192.0.2.13", "off.test"), "127.0.0.2")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []},
                             {"enabled": False, "zone": "off.test", "return_codes": []}])
    checker = _checker(values)
    assert await checker.check("192.0.2.12", values) is None
    assert await checker.check("192.0.2.13", values) is None


async def test_first_listing_zone_in_settings_order_names_the_rule(dns):
    dns.add_a(query_name("192.0.2.20", "one.test"), "127.0.0.2")
    dns.add_a(query_name("192.0.2.20", "two.test"), "127.0.0.3")
    values = _settings(dns, [{"enabled": True, "zone": "two.test", "return_codes": []},
                             {"enabled": True, "zone": "one.test", "return_codes": []}])
    assert (await _checker(values).check("192.0.2.20", values)).zone == "two.test"


async def test_results_are_cached_for_the_answer_ttl(dns):
    dns.add(query_name("192.0.2.30", ZONE), "A", __import__("dnslib").A("127.0.0.2"), ttl=30)
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    clock = FakeTime()
    checker = _checker(values, clock)
    assert await checker.check("192.0.2.30", values)
    assert await checker.check("192.0.2.30", values)
    assert checker.lookups == 1 and len(dns.queries) == 1       # second answer from the cache
    clock.now += 29
    assert await checker.check("192.0.2.30", values) and len(dns.queries) == 1
    dns.clear(query_name("192.0.2.30", ZONE))                   # delisted meanwhile
    clock.now += 2                                              # TTL expired: asked again
    assert await checker.check("192.0.2.30", values) is None
    assert len(dns.queries) == 2
    assert await checker.check("192.0.2.30", values) is None    # NXDOMAIN cached too
    assert len(dns.queries) == 2


async def test_not_listed_is_cached_for_the_soa_negative_ttl(dns):
    """RFC 2308 §5: an NXDOMAIN is cached for min(SOA TTL, SOA MINIMUM) — here 15 s."""
    dns.add_soa(ZONE, ttl=300, minimum=15)
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    clock = FakeTime()
    checker = _checker(values, clock)
    assert await checker.check("192.0.2.31", values) is None
    dns.add_a(query_name("192.0.2.31", ZONE), "127.0.0.2")      # listed meanwhile
    clock.now += 14
    assert await checker.check("192.0.2.31", values) is None    # still the cached NXDOMAIN
    assert len(dns.queries) == 1
    clock.now += 2
    assert (await checker.check("192.0.2.31", values)).codes == ("127.0.0.2",)
    assert len(dns.queries) == 2


async def test_not_listed_without_soa_is_cached_for_the_default(dns):
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    clock = FakeTime()
    checker = _checker(values, clock)
    assert await checker.check("192.0.2.32", values) is None
    dns.add_a(query_name("192.0.2.32", ZONE), "127.0.0.2")
    clock.now += DEFAULT_NEGATIVE_SECONDS - 1
    assert await checker.check("192.0.2.32", values) is None and len(dns.queries) == 1
    clock.now += 2
    assert await checker.check("192.0.2.32", values) and len(dns.queries) == 2


async def test_a_dead_dns_server_delays_by_the_time_limit_only(dns, autojump_clock):
    """On trio's virtual clock, which jumps ahead whenever every task waits, so the delay
    measured is the one the checker allows, not this machine's speed."""
    dns.fail(query_name("192.0.2.40", ZONE), "timeout")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}],
                       dns__timeout_seconds=3)
    checker = _checker(values)
    started = trio.current_time()
    assert await checker.check("192.0.2.40", values) is None
    assert trio.current_time() - started == pytest.approx(3.0, abs=0.01)
    assert not checker.cache                                     # failures are not cached


async def test_error_codes_are_not_listings_and_are_counted(dns):
    """Spamhaus answers 127.255.255.254 to every query that comes through a public resolver:
    taken as a listing, every client would be listed. An answer of only error codes is "not
    listed", counted, and cached like one; beside a real code it is ignored."""
    dns.add_a(query_name("192.0.2.50", ZONE), "127.255.255.254")
    dns.add_a(query_name("192.0.2.51", ZONE), "127.255.255.255")
    dns.add_a(query_name("192.0.2.51", ZONE), "127.0.0.4")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    refused = []
    checker = RblChecker(Resolver(lambda: values), on_refused=lambda: refused.append(1))
    assert await checker.check("192.0.2.50", values) is None
    assert await checker.check("192.0.2.50", values) is None and len(dns.queries) == 1
    listing = await checker.check("192.0.2.51", values)
    assert listing is not None and listing.codes == ("127.0.0.4",)
    assert len(refused) == 1


async def test_an_answer_of_127_0_0_1_is_an_error_code_not_a_listing(dns):
    """Antispam adversary C1: RFC 5782 §5 forbids a list to contain 127.0.0.1; URIBL and SURBL
    answer it when they refuse a query; it was taken as a listing, so through a refused
    resolver every client was listed (with reject: every sender refused 550)."""
    dns.add_a(query_name("192.0.2.52", ZONE), "127.0.0.1")
    dns.add_a(query_name("192.0.2.53", ZONE), "127.0.0.1")
    dns.add_a(query_name("192.0.2.53", ZONE), "127.0.0.2")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    refused = []
    checker = RblChecker(Resolver(lambda: values), on_refused=lambda: refused.append(1))
    assert await checker.check("192.0.2.52", values) is None
    assert (await checker.check("192.0.2.53", values)).codes == ("127.0.0.2",)
    assert len(refused) == 1


async def test_servfail_counts_as_not_listed(dns):
    dns.fail(query_name("192.0.2.41", ZONE), "servfail")
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    assert await _checker(values).check("192.0.2.41", values) is None


# --- through the core over SMTP ------------------------------------------------------------

def _home(tmp_path, sink, dns, **changes):
    return make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        dns__resolvers=[dns.resolver], **{
            "dns__timeout_seconds": 2,
            "rbl__zones": [{"enabled": True, "zone": ZONE, "return_codes": []}], **changes})




def _mail_from(port, sender):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        return client.mail(sender)


def _send(port, sender, subject="Hello"):
    body = (f"From: {sender}\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <rbl@client.test>\r\n\r\nHello there.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, ["user@local.test"], body)


async def _until(predicate, timeout=20.0):
    await until(predicate, timeout)


async def test_reject_refuses_listed_client_at_mail_from_unless_whitelisted(tmp_path, sink,
                                                                           dns, nursery):
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="reject", whitelist__custom__enabled=True,
                 whitelist__custom=["@friend.test"])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    code, text = await trio.to_thread.run_sync(_mail_from, port, "spammer@elsewhere.test")
    assert code == 550 and text.startswith(b"5.7.1")
    await trio.to_thread.run_sync(_send, port, "boss@friend.test")
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.sender == "boss@friend.test"
    await core.events.aflush()
    rejected = [e for e in _events(home, Action.REJECTED) if e["rule"] == f"rbl.zones {ZONE}"]
    assert rejected and rejected[0]["result"] == "550"
    # the refused sender is on record, so a detail report finds whose mail was refused
    assert rejected[0]["sender"] == "spammer@elsewhere.test"
    assert core.counters.values["spam_rbl"] == 1
    assert core.counters.values["spam_messages"] == 1
    core.cancel_scope.cancel()


@pytest.mark.parametrize("answer", ["127.255.255.254", "127.0.0.1"])
async def test_a_zone_refusing_queries_refuses_no_mail(tmp_path, sink, dns, nursery, answer):
    """rbl.action reject with a zone that answers every query with its "public resolver"
    error code (Spamhaus' 127.255.255.254; URIBL's and SURBL's 127.0.0.1): mail still flows,
    and the Status page counts the refused queries."""
    dns.add_a(query_name("127.0.0.1", ZONE), answer)
    home = _home(tmp_path, sink, dns, rbl__action="reject")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, "someone@elsewhere.test")
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.sender == "someone@elsewhere.test"
    assert core.counters.values["rbl_refused"] == 1
    assert core.counters.values["spam_rbl"] == 0
    core.cancel_scope.cancel()


@pytest.mark.parametrize("allowed", [["127.0.0.0/8"], ["*.mail.own.test"]])
async def test_own_mail_hosts_are_not_refused_for_an_rbl_listing(tmp_path, sink, dns, nursery,
                                                                allowed):
    """A client of relay.allowed (by address, or by host name through its PTR name) is one
    of the organisation's own mail hosts: were its address range listed (a policy list of
    dynamic ranges, say), refusing or dropping its mail would lose all outbound mail."""
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    dns.add_ptr("127.0.0.1", "relay1.mail.own.test").add_a("relay1.mail.own.test", "127.0.0.1")
    home = _home(tmp_path, sink, dns, rbl__action="reject", relay__allowed=allowed)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "ceo@own.test")
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.sender == "ceo@own.test"
    assert core.counters.values["spam_rbl"] == 0
    core.cancel_scope.cancel()


async def test_listener_processes_reject_unless_auto_whitelisted(tmp_path, sink, dns,
                                                                 nursery):
    """With SMTP listener processes the MAIL FROM reject consults the auto-generated
    whitelist too (each listener keeps a copy of the table the core writes)."""
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="reject", smtp__listener_processes=2,
                 whitelist__auto__enabled=True)
    conn = db.connect(home.db)
    with conn:
        conn.execute("INSERT INTO auto_whitelist (domain, count, first_seen, last_seen) "
                     "VALUES ('partner.test', 3, 1000, 1000)")
    conn.close()
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for _ in range(6):        # connections spread over both listener processes
        code, _text = await trio.to_thread.run_sync(_mail_from, port, "boss@partner.test")
        assert code == 250
        code, _text = await trio.to_thread.run_sync(_mail_from, port, "spammer@elsewhere.test")
        assert code == 550
    core.cancel_scope.cancel()


async def test_drop_action_applies_after_data_with_spam_list_block_event(tmp_path, sink, dns,
                                                                        nursery):
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="drop")
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "spammer@elsewhere.test")
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    await _until(lambda: _events(home, Action.DROPPED))
    [blocked] = _events(home, Action.SPAM_LIST_BLOCK)
    assert blocked["rule"] == f"rbl.zones {ZONE}" and "127.0.0.2" in blocked["info"]
    assert _events(home, Action.DROPPED)[0]["rule"] == f"rbl.zones {ZONE}"
    assert not sink.messages
    assert core.counters.values["spam_rbl"] == 1
    core.cancel_scope.cancel()


async def test_the_ptr_and_rbl_lookups_run_side_by_side(tmp_path, sink, dns, nursery):
    """A host name in relay.allowed needs the client's PTR name, and the RBL needs its
    listing; both are asked before the greeting, side by side, so a dead DNS server costs
    one time limit, not two. The DNS server answers the PTR query only once the RBL query
    has been asked: one after the other, the PTR lookup would time out first and the
    client's relaying would be refused."""
    dns.add_ptr("127.0.0.1", "client.trusted.test").add_a("client.trusted.test", "127.0.0.1")
    dns.hold(ipaddress.ip_address("127.0.0.1").reverse_pointer,
             until_asked=query_name("127.0.0.1", ZONE))
    home = _home(tmp_path, sink, dns, relay__allowed=["*.trusted.test"])

    def relay():
        with smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=30) as client:
            client.ehlo("client.test")
            client.mail("a@client.test")
            return client.rcpt("someone@elsewhere.example")

    core = await nursery.start(run_core, home)
    code, _text = await trio.to_thread.run_sync(relay)
    assert code == 250
    core.cancel_scope.cancel()


# --- settings changes reach open sessions; a dead zone stops holding up connections ------------

async def _settings_in_force(core, key, value):
    await _until(lambda: core.settings()[key] == value)


@pytest.mark.parametrize("zones", [
    [],                                                                    # removed
    [{"enabled": False, "zone": ZONE, "return_codes": []}],                # disabled
    [{"enabled": True, "zone": ZONE, "return_codes": ["127.0.0.4"]}],      # codes narrowed
])
async def test_a_zone_change_reaches_a_session_already_open(tmp_path, sink, dns, nursery,
                                                            zones):
    """SPEC §3: every setting applies live. The usual reason to remove a zone in a hurry is
    that it lists everybody; a peer that keeps its connection open (an MTA's connection
    cache) must not stay refused for as long as the session lasts."""
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="reject")
    core = await nursery.start(run_core, home)
    client = smtplib.SMTP(timeout=30)
    try:
        await trio.to_thread.run_sync(client.connect, "127.0.0.1", core.smtp_addresses[0][1])
        await trio.to_thread.run_sync(client.ehlo, "client.test")
        code, _text = await trio.to_thread.run_sync(client.mail, "someone@elsewhere.test")
        assert code == 550
        set_settings(home, rbl__zones=zones)
        await _settings_in_force(core, "rbl.zones", zones)
        code, _text = await trio.to_thread.run_sync(client.mail, "someone@elsewhere.test")
        assert code == 250
    finally:
        client.close()
    assert core.counters.values["spam_rbl"] == 1
    core.cancel_scope.cancel()


async def test_a_message_of_a_session_opened_before_a_zone_was_removed_is_not_dropped(
        tmp_path, sink, dns, nursery):
    """rbl.action drop: the session looked the client up while the zone was configured; the
    zone is removed before the message comes. Neither the session nor the pipeline applies
    a listing of a zone no longer in rbl.zones."""
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="drop")
    core = await nursery.start(run_core, home)
    body = ("From: someone@elsewhere.test\r\nTo: user@local.test\r\nSubject: Hello\r\n"
            "Message-ID: <rbl-open@client.test>\r\n\r\nHello there.\r\n")
    client = smtplib.SMTP(timeout=30)
    try:
        await trio.to_thread.run_sync(client.connect, "127.0.0.1", core.smtp_addresses[0][1])
        await trio.to_thread.run_sync(client.ehlo, "client.test")
        set_settings(home, rbl__zones=[])
        await _settings_in_force(core, "rbl.zones", [])
        await trio.to_thread.run_sync(client.sendmail, "someone@elsewhere.test",
                                      ["user@local.test"], body)
    finally:
        client.close()
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.sender == "someone@elsewhere.test"
    await core.events.aflush()
    assert not _events(home, Action.SPAM_LIST_BLOCK) and not _events(home, Action.DROPPED)
    assert core.counters.values["spam_rbl"] == 0
    core.cancel_scope.cancel()


@pytest.mark.slow       # waits out a silent zone's lookups (~3.5 s)
async def test_a_silent_zone_stops_holding_up_connections(tmp_path, sink, dns, nursery):
    """A zone whose DNS server never answers: each connection used to wait the whole time
    limit while holding its smtp.max_incoming slot, capping intake at max_incoming / limit.
    After FAILURES_TO_SUSPEND timeouts the zone is skipped (not listed) and every skip is
    counted for the Status page; no mail is refused either way."""
    name = query_name("127.0.0.1", ZONE)
    dns.fail(name, "timeout")
    home = _home(tmp_path, sink, dns, rbl__action="reject", dns__timeout_seconds=1)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for n in range(FAILURES_TO_SUSPEND):
        await trio.to_thread.run_sync(_send, port, "someone@elsewhere.test", f"slow {n}")
    asked = sum(1 for asked_name, _type in dns.queries if asked_name == name)
    assert asked >= FAILURES_TO_SUSPEND
    for n in range(5):
        await trio.to_thread.run_sync(_send, port, "someone@elsewhere.test", f"fast {n}")
    assert sum(1 for asked_name, _type in dns.queries if asked_name == name) == asked
    assert len(await trio.to_thread.run_sync(sink.wait_for, FAILURES_TO_SUSPEND + 5)) == (
        FAILURES_TO_SUSPEND + 5)
    assert core.counters.values["rbl_skipped"] == 5
    await core.events.aflush()                  # the administrator is told, once
    [suspended] = [row for row in _events(home, Action.SCAN_ERROR)
                   if row["rule"] == "rbl.zones"]
    assert suspended["result"] == "suspended" and ZONE in suspended["info"]
    core.cancel_scope.cancel()
