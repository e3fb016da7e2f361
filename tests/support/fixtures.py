"""pytest fixtures for the loopback test servers.

Use from a conftest or a test module: `pytest_plugins = ["tests.support.fixtures"]`
(or `from tests.support.fixtures import sink, tls_sink, dns_server`).

- `sink`      — a started `Sink` (plain SMTP), stopped after the test.
- `tls_sink`  — a started `Sink(tls=True)` offering STARTTLS with the test certificate.
- `dns_server` — a started `DnsServer`; `dns_server.resolver` is the `dns.resolvers` entry.
- `make_sink` — a factory for more sinks: `make_sink(tls=True, require_tls=True)`.
"""

from __future__ import annotations

import pytest

from tests.support.dnsserver import DnsServer
from tests.support.sink import Sink

__all__ = ["sink", "tls_sink", "dns_server", "make_sink"]


@pytest.fixture
def make_sink():
    started: list[Sink] = []

    def make(**options) -> Sink:
        server = Sink(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sink(make_sink) -> Sink:
    return make_sink()


@pytest.fixture
def tls_sink(make_sink) -> Sink:
    return make_sink(tls=True)


@pytest.fixture
def dns_server():
    with DnsServer() as server:
        yield server
