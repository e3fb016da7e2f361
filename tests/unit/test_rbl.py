"""Real-time blacklists (core/smtp/rbl.py, core/pipeline/checks/rbl.py): the cache's bound and
cost, the per-zone circuit breaker against a real DNS server on loopback
(tests/support/dnsserver.py) that stays silent or fails, and listings judged by the settings
of the moment — after a zone is removed, disabled or given other return codes."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import trio

from core.delivery.mx import Resolver
from core.smtp.rbl import (FAILURE_WINDOW_SECONDS, FAILURES_TO_SUSPEND, SUSPEND_SECONDS,
                           RblAnswers, RblChecker, query_name)
from shared.settings import defaults
from tests.support.clock import FakeTime
from tests.support.dnsserver import DnsServer
from tests.unit.pipeline.support import message, settings as pipeline_settings, verdict_of

ZONE = "bl.test"


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


def _settings(dns, zones=None, **changes):
    values = defaults()
    values["dns.resolvers"] = [dns.resolver]
    values["dns.timeout_seconds"] = 1
    values["rbl.zones"] = zones if zones is not None else [
        {"enabled": True, "zone": ZONE, "return_codes": []}]
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def _asked(dns, ip, zone=ZONE):
    return sum(1 for name, _type in dns.queries if name == query_name(ip, zone))


# --- the cache (rule 3) -----------------------------------------------------------------------

class _CountingDict(OrderedDict):
    """Counts the entries any scan of the cache visits (items, keys, values, iteration)."""

    visited = 0

    def _count(self, iterable):
        for item in iterable:
            self.visited += 1
            yield item

    def items(self):
        return self._count(super().items())

    def keys(self):
        return self._count(super().keys())

    def values(self):
        return self._count(super().values())

    def __iter__(self):
        return self._count(super().__iter__())


def test_a_full_cache_stores_without_scanning_its_entries():
    """Once full, the old code listed every entry at each store looking for expired ones:
    ~20 ms per new client IP per zone at 50,000 entries, on the event loop. Entries scanned
    over 2,000 stores into a full cache of 1,000: now at most a rebuild or two of the expiry
    heap (O(n) per n stores), then 2,000,000."""
    clock = FakeTime()
    checker = RblChecker(None, clock=clock, max_entries=1000)
    checker.cache = _CountingDict()
    for i in range(1000):
        checker._store((ZONE, f"10.0.{i >> 8}.{i & 255}"), (), 3600)
    checker.cache.visited = 0
    for i in range(2000):
        clock.now += 0.001
        checker._store((ZONE, f"10.1.{i >> 8}.{i & 255}"), (), 3600)
    assert len(checker.cache) == 1000
    assert checker.cache.visited <= 3 * 1000


def test_the_bound_holds_and_expired_entries_go_first_then_the_oldest():
    clock = FakeTime()
    checker = RblChecker(None, clock=clock, max_entries=3)
    checker._store((ZONE, "192.0.2.1"), ("127.0.0.2",), 100)    # oldest, still valid
    checker._store((ZONE, "192.0.2.2"), (), 10)                 # expires first
    checker._store((ZONE, "192.0.2.3"), (), 100)
    clock.now += 20
    checker._store((ZONE, "192.0.2.4"), (), 100)
    assert [ip for _zone, ip in checker.cache] == ["192.0.2.1", "192.0.2.3", "192.0.2.4"]
    checker._store((ZONE, "192.0.2.5"), (), 100)                # none expired: the oldest goes
    assert [ip for _zone, ip in checker.cache] == ["192.0.2.3", "192.0.2.4", "192.0.2.5"]
    for i in range(500):                                        # churn, same keys stored again
        clock.now += 1
        checker._store((ZONE, f"192.0.2.{i % 7}"), (), 5)
        assert len(checker.cache) <= 3
    assert len(checker._expiries) <= 2 * len(checker.cache) + 64   # the heap stays bounded


# --- listings judged by the settings of the moment (rule 2) ----------------------------------

async def test_connect_time_answers_follow_later_zone_and_return_code_changes(dns):
    """The session keeps the zones' answers from connect and asks at each MAIL FROM what
    they mean under the current settings: a removed or disabled zone no longer lists the
    client, changed return codes apply, a zone added since (not asked) does not count."""
    dns.add_a(query_name("192.0.2.60", ZONE), "127.0.0.2")
    dns.add_a(query_name("192.0.2.60", "new.test"), "127.0.0.2")
    values = _settings(dns)
    answers = await RblChecker(Resolver(lambda: values)).answers("192.0.2.60", values)
    assert isinstance(answers, RblAnswers)
    assert answers.listing(values).zone == ZONE
    zone = {"enabled": True, "zone": ZONE, "return_codes": []}
    assert answers.listing({**values, "rbl.zones": []}) is None
    assert answers.listing({**values, "rbl.zones": [{**zone, "enabled": False}]}) is None
    assert answers.listing({**values, "rbl.zones": [{**zone,
                                                     "return_codes": ["127.0.0.4"]}]}) is None
    assert answers.listing({**values, "rbl.zones": [{**zone, "zone": "BL.test."}]}).codes == (
        "127.0.0.2",)
    added = {"enabled": True, "zone": "new.test", "return_codes": []}
    assert answers.listing({**values, "rbl.zones": [added]}) is None
    assert [name for name, _type in dns.queries] == [query_name("192.0.2.60", ZONE)]


LISTED = {"meta": {"rbl": {"ip": "192.0.2.10", "zone": ZONE, "codes": ["127.0.0.2"]}}}


@pytest.mark.parametrize("zones", [
    [],                                                                    # removed
    [{"enabled": False, "zone": ZONE, "return_codes": []}],                # disabled
    [{"enabled": True, "zone": "other.test", "return_codes": []}],         # replaced
    [{"enabled": True, "zone": ZONE, "return_codes": ["127.0.0.4"]}],      # codes no longer match
])
def test_after_data_a_listing_counts_only_under_the_zones_in_force(zones):
    """A message queued (or accepted in a session opened) before the change is processed
    with the settings of its own snapshot: the carried listing no longer blocks it."""
    _view, findings, verdict = verdict_of(message(), LISTED, rbl__action="drop",
                                          rbl__zones=zones)
    assert verdict.disposition == "deliver" and not findings


def test_after_data_the_listing_of_a_zone_still_in_force_applies():
    zones = [{"enabled": True, "zone": "bl.TEST", "return_codes": ["127.0.0.2", "127.0.0.3"]}]
    _view, findings, verdict = verdict_of(message(), LISTED, rbl__action="drop",
                                          rbl__zones=zones)
    assert verdict.disposition == "drop"
    assert findings[0].rule == f"rbl.zones {ZONE}" and findings[0].data["codes"] == ["127.0.0.2"]
    assert pipeline_settings()["rbl.zones"] == []      # the defaults list no zone


# --- the circuit breaker (rule 5) ---------------------------------------------------------------

async def test_a_silent_zone_is_skipped_after_repeated_timeouts(dns, autojump_clock):
    """On trio's virtual clock. A zone that never answers costs every connection the whole
    time limit — while the session holds its smtp.max_incoming slot. After
    FAILURES_TO_SUSPEND timeouts in a row it is skipped at once (not listed) and counted."""
    ip = "192.0.2.70"
    dns.fail(query_name(ip, ZONE), "timeout")
    values = _settings(dns)
    skipped = []
    checker = RblChecker(Resolver(lambda: values), on_skipped=lambda: skipped.append(1))
    for _ in range(FAILURES_TO_SUSPEND):
        started = trio.current_time()
        assert await checker.check(ip, values) is None
        assert trio.current_time() - started == pytest.approx(1.0, abs=0.01)
    # (the lookups this side sent: on the virtual clock the server thread may not have
    # logged the last query yet)
    assert checker.lookups == FAILURES_TO_SUSPEND and checker.suspended(ZONE)
    for _ in range(5):
        started = trio.current_time()
        assert await checker.check(ip, values) is None
        assert trio.current_time() == started                     # no wait at all
    assert checker.lookups == FAILURES_TO_SUSPEND and skipped == [1] * 5


async def test_after_the_suspension_one_probe_decides(dns):
    """Failures here are SERVFAIL (instant); the breaker runs on a fake clock. A probe that
    fails suspends the zone again; one that gets an answer ends the suspension."""
    ip = "192.0.2.71"
    name = query_name(ip, ZONE)
    dns.fail(name, "servfail")
    values = _settings(dns)
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    for _ in range(FAILURES_TO_SUSPEND):
        assert await checker.check(ip, values) is None
    asked = _asked(dns, ip)
    clock.now += SUSPEND_SECONDS - 1
    assert await checker.check(ip, values) is None and _asked(dns, ip) == asked
    clock.now += 1                                    # suspension over: probed, fails again
    assert await checker.check(ip, values) is None and _asked(dns, ip) > asked
    asked = _asked(dns, ip)
    assert checker.suspended(ZONE)
    assert await checker.check(ip, values) is None and _asked(dns, ip) == asked
    dns.clear(name)
    dns.add_a(name, "127.0.0.2")
    clock.now += SUSPEND_SECONDS
    assert (await checker.check(ip, values)).codes == ("127.0.0.2",)    # the probe answers
    assert not checker.suspended(ZONE) and ZONE not in checker.health


async def test_only_one_lookup_probes_a_suspended_zone(dns, autojump_clock):
    ip = "192.0.2.72"
    dns.fail(query_name(ip, ZONE), "timeout")
    values = _settings(dns)
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    for _ in range(FAILURES_TO_SUSPEND):
        await checker.check(ip, values)
    clock.now += SUSPEND_SECONDS
    async with trio.open_nursery() as nursery:       # ten connections at once
        for _ in range(10):
            nursery.start_soon(checker.check, ip, values)
    assert checker.lookups == FAILURES_TO_SUSPEND + 1
    assert checker.suspended(ZONE)


async def test_scattered_failures_do_not_suspend_a_zone(dns):
    ip = "192.0.2.73"
    dns.fail(query_name(ip, ZONE), "servfail")
    values = _settings(dns)
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    for _ in range(FAILURES_TO_SUSPEND + 2):
        await checker.check(ip, values)
        clock.now += FAILURE_WINDOW_SECONDS + 1
    assert not checker.suspended(ZONE)


async def test_an_answer_between_failures_restarts_the_count(dns):
    values = _settings(dns)
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    dns.fail(query_name("192.0.2.74", ZONE), "servfail")
    for _ in range(FAILURES_TO_SUSPEND - 1):
        await checker.check("192.0.2.74", values)
    assert await checker.check("192.0.2.75", values) is None      # NXDOMAIN: it answers
    for _ in range(FAILURES_TO_SUSPEND - 1):
        await checker.check("192.0.2.74", values)
    assert not checker.suspended(ZONE)


async def test_new_dns_servers_end_a_suspension(dns):
    """The operator repairs `dns.resolvers`: zones are asked again at once, not after the
    suspension (SPEC §3: settings apply live)."""
    ip = "192.0.2.76"
    values = _settings(dns)
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    with DnsServer() as broken:
        broken.fail(query_name(ip, ZONE), "servfail")
        values["dns.resolvers"] = [broken.resolver]
        for _ in range(FAILURES_TO_SUSPEND):
            await checker.check(ip, values)
        assert checker.suspended(ZONE)
    dns.add_a(query_name(ip, ZONE), "127.0.0.2")
    values["dns.resolvers"] = [dns.resolver]
    assert (await checker.check(ip, values)).zone == ZONE


async def test_a_suspended_zone_still_answers_from_the_cache(dns):
    values = _settings(dns, [{"enabled": True, "zone": ZONE, "return_codes": []}])
    dns.add_a(query_name("192.0.2.77", ZONE), "127.0.0.2")
    dns.fail(query_name("192.0.2.78", ZONE), "servfail")
    clock = FakeTime()
    checker = RblChecker(Resolver(lambda: values), clock=clock)
    assert await checker.check("192.0.2.77", values)
    for _ in range(FAILURES_TO_SUSPEND):
        await checker.check("192.0.2.78", values)
    assert checker.suspended(ZONE)
    assert (await checker.check("192.0.2.77", values)).codes == ("127.0.0.2",)


async def test_a_suspension_is_reported_once_until_the_zone_answers_again(dns):
    """An administrator learns that a zone went dark from one event per suspension (core/smtp/
    server.py records it), not one per renewal by a failed probe."""
    ip = "192.0.2.73"
    name = query_name(ip, ZONE)
    dns.fail(name, "servfail")
    values = _settings(dns)
    clock = FakeTime()
    reported = []
    checker = RblChecker(Resolver(lambda: values), clock=clock,
                         on_suspended=lambda zone, failures: reported.append((zone, failures)))
    for _ in range(FAILURES_TO_SUSPEND):
        await checker.check(ip, values)
    assert reported == [(ZONE, FAILURES_TO_SUSPEND)]
    clock.now += SUSPEND_SECONDS                     # the probe fails: suspended again
    await checker.check(ip, values)
    assert checker.suspended(ZONE) and len(reported) == 1
    dns.clear(name)
    dns.add_a(name, "127.0.0.2")
    clock.now += SUSPEND_SECONDS                     # it answers: the episode is over
    await checker.check(ip, values)
    dns.fail(query_name("192.0.2.74", ZONE), "servfail")
    for _ in range(FAILURES_TO_SUSPEND):
        await checker.check("192.0.2.74", values)
    assert reported == [(ZONE, FAILURES_TO_SUSPEND)] * 2
