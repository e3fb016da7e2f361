"""Several DNS servers: a dead one is passed over for the next within one lookup's time
limit (ipv6 finding 1: the first server had the whole limit, so the second was never
asked, and a listed client got 250 and every MX delivery was deferred)."""

from __future__ import annotations

import socket

import pytest

from core.delivery import LookupFailed, NextHop, Resolver
from shared.settings import defaults
from tests.support.dnsserver import DnsServer


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


@pytest.fixture
def silent_server():
    """A DNS server address that takes queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.slow       # waits out a dead DNS server's time limit (~4 s)
@pytest.mark.parametrize("order", ["dead first", "dead second"])
async def test_a_dead_dns_server_is_passed_over_within_the_time_limit(dns, silent_server,
                                                                      order):
    dns.add_mx("example.test", 10, "mx.example.test").add_a("mx.example.test", "127.0.0.8")
    servers = [silent_server, dns.resolver]
    values = {**defaults(), "dns.timeout_seconds": 2,
              "dns.resolvers": servers if order == "dead first" else servers[::-1]}
    resolver = Resolver(lambda: values)
    [candidate] = await resolver.candidates(NextHop("mx", "example.test", 25), values)
    assert candidate.addresses == ("127.0.0.8",)
    assert await resolver.confirmed_ptr("127.0.0.8") is None    # answered, not timed out
    assert ("8.0.0.127.in-addr.arpa", "PTR") in dns.queries


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
async def test_slow_servers_that_answer_within_the_time_limit_are_waited_for():
    """Each server had only its share of the limit (regress11 finding 1): two servers that
    answer in 2.5 s failed a 4-second lookup that either of them answers in time."""
    with DnsServer() as first, DnsServer() as second:
        for server in (first, second):
            server.add_a("slow.example.test", "127.0.0.9")
            server.delay_seconds = 2.5
        values = {**defaults(), "dns.timeout_seconds": 4,
                  "dns.resolvers": [first.resolver, second.resolver]}
        resolver = Resolver(lambda: values)
        assert await resolver.addresses("slow.example.test") == ("127.0.0.9",)


async def test_an_nxdomain_from_the_first_server_decides():
    with DnsServer() as first, DnsServer() as second:
        second.add_a("gone.example.test", "127.0.0.9")     # the first knows no such name
        values = {**defaults(), "dns.timeout_seconds": 4,
                  "dns.resolvers": [first.resolver, second.resolver]}
        with pytest.raises(LookupFailed) as failed:
            await Resolver(lambda: values).addresses("gone.example.test")
        assert failed.value.is_permanent
        assert second.queries == []                 # answered at once: nobody else asked
