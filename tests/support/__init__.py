"""Test support: real servers on loopback that tests talk to (never the Internet).

- `sink.Sink` — an SMTP sink (stdlib only, independent of core/smtp) that records messages.
- `dnsserver.DnsServer` — a DNS server serving the records a test declares.
- `fixtures` — pytest fixtures built on both (`pytest_plugins = ["tests.support.fixtures"]`).
"""

from tests.support.dnsserver import DnsServer
from tests.support.sink import ConnectionRecord, ReceivedMessage, Sink

__all__ = ["Sink", "ReceivedMessage", "ConnectionRecord", "DnsServer"]
