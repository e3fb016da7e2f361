"""What `smtp.tls.outbound required` means, as docs/settings.md and docs/operations.md say it
(outbound19 finding B4, a documentation gap; core/delivery/deliver.py rule 2): it covers the
routing.local relays too, where bounces and notices to the gateway's own users go, and it
encrypts without verifying the next hop's certificate. These pin that behaviour.
"""

from __future__ import annotations

from core.delivery import route
from tests.support.next_hop import deliver, snapshot


def _settings(port: int):
    return snapshot(smtp__tls__outbound="required", routing__local=[
        {"match": "corp.test", "relay": "127.0.0.1", "port": port}])


async def test_required_covers_a_routing_local_relay(sink, tmp_path):
    settings = _settings(sink.port)
    [result], _events = await deliver(tmp_path, settings, route("corp.test", settings),
                                      ["alice@corp.test"])
    assert (result.outcome, result.status) == ("deferred", "4.7.0")
    assert "TLS required" in result.text
    assert sink.messages == []


async def test_required_takes_a_certificate_it_cannot_verify(tls_sink, tmp_path):
    """The sink's certificate is self-signed and for "localhost", not 127.0.0.1."""
    settings = _settings(tls_sink.port)
    [result], _events = await deliver(tmp_path, settings, route("corp.test", settings),
                                      ["alice@corp.test"])
    assert result.outcome == "delivered"
    assert [m.is_tls for m in tls_sink.messages] == [True]
