"""Fixtures every integration test module gets: the loopback servers of
tests/support/fixtures.py (`sink`, `tls_sink`, `make_sink`, `dns_server`)."""

from tests.support.fixtures import dns_server, make_sink, sink, tls_sink  # noqa: F401
