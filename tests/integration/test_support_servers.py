"""The test servers themselves: the sink speaks correct SMTP, the DNS server answers."""

import errno
import smtplib
import socket

import dns.resolver
import pytest
import trio

from tests.support.dnsserver import DnsServer
from tests.support.next_hop import ScriptedHop
from tests.support.scripted_server import HOP_ADDRESSES
from tests.support.sink import Sink, client_tls_context


def _resolver(dns_server):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_server.port
    r.lifetime = 2
    return r


def test_sink_records_message_unstuffed_and_counts_reuse():
    with Sink() as sink:
        with smtplib.SMTP(*sink.address) as client:
            client.sendmail("a@x.test", ["b@y.test", "c@y.test"],
                            b"Subject: hi\r\n\r\n.dot line\r\nbody\r\n")
            client.sendmail("", ["d@y.test"], b"Subject: two\r\n\r\nx\r\n")
        messages = sink.wait_for(2)
    assert messages[0].sender == "a@x.test"
    assert messages[0].recipients == ["b@y.test", "c@y.test"]
    assert messages[0].data == b"Subject: hi\r\n\r\n.dot line\r\nbody\r\n"
    assert messages[1].sender == ""
    assert sink.transactions_per_connection == [2]
    assert sink.max_open_connections == 1


def test_sink_configurable_replies_and_runtime_tempfail():
    with Sink() as sink:
        sink.rcpt_replies["bad@y.test"] = (550, "5.1.1 no such user")
        with smtplib.SMTP(*sink.address) as client:
            refused = client.sendmail("a@x.test", ["bad@y.test", "ok@y.test"], b"\r\nx\r\n")
            assert refused == {"bad@y.test": (550, b"5.1.1 no such user")}
            sink.tempfail_all = True
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@x.test", ["ok@y.test"], b"\r\nx\r\n")
            client.rset()
            sink.tempfail_all = False
            sink.data_reply = (554, "5.6.0 rejected content")
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail("a@x.test", ["ok@y.test"], b"\r\nx\r\n")
        assert len(sink.messages) == 1 and len(sink.rejected) == 1


def test_sink_starttls():
    with Sink(require_tls=True) as sink:
        with smtplib.SMTP(*sink.address) as client:
            client.ehlo()
            assert client.has_extn("starttls") and client.has_extn("pipelining")
            client.starttls(context=client_tls_context())
            client.sendmail("a@x.test", ["b@y.test"], b"\r\nsecret\r\n")
        assert sink.wait_for(1)[0].is_tls


def test_dns_server_answers_records_and_failures():
    with DnsServer() as server:
        server.add_mx("example.test", 20, "mx2.example.test")
        server.add_mx("example.test", 10, "mx1.example.test")
        server.add_a("mx1.example.test", "127.0.0.1")
        server.add_txt("example.test", "v=spf1 -all")
        server.add_ptr("127.0.0.2", "host.example.test")
        server.fail("broken.test", "servfail")
        r = _resolver(server)
        mx = sorted((rr.preference, str(rr.exchange)) for rr in r.resolve("example.test", "MX"))
        assert mx == [(10, "mx1.example.test."), (20, "mx2.example.test.")]
        assert [str(rr) for rr in r.resolve("mx1.example.test", "A")] == ["127.0.0.1"]
        assert str(r.resolve("2.0.0.127.in-addr.arpa", "PTR")[0]) == "host.example.test."
        with pytest.raises(dns.resolver.NXDOMAIN):
            r.resolve("nothing.test", "A")
        with pytest.raises(dns.resolver.NoAnswer):
            r.resolve("example.test", "AAAA")
        with pytest.raises(dns.resolver.NoNameservers):
            r.resolve("broken.test", "A")
        tcp = r.resolve("example.test", "TXT", tcp=True)
        assert b"v=spf1 -all" in tcp[0].strings


async def test_a_hops_port_is_held_at_the_other_hop_addresses_while_it_serves():
    """Regression (flakefix22): a second hop at 127.0.0.3 on the first one's port failed
    with EADDRINUSE when another xdist worker's socket had got that number there: the
    port was free only at 127.0.0.1, where the first one listened."""
    first, second = ScriptedHop(), ScriptedHop()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(first.serve)
        for address in HOP_ADDRESSES:       # nobody else binds it there...
            with socket.socket() as other, pytest.raises(OSError) as refused:
                other.bind((address, port))
            assert refused.value.errno == errno.EADDRINUSE
        await nursery.start(second.serve, "127.0.0.3", port)    # ...another hop may
        greeted = {address: await trio.to_thread.run_sync(_greeting, address, port)
                   for address in HOP_ADDRESSES}
        nursery.cancel_scope.cancel()
    # nothing listens at 127.0.0.4: refused, as where nothing holds the port
    assert greeted == {"127.0.0.1": b"220 hop.test ESMTP", "127.0.0.3": b"220 hop.test ESMTP",
                       "127.0.0.4": None}
    assert len(first.connections) == len(second.connections) == 1
    for address in HOP_ADDRESSES:           # and let go when the hop stops
        with socket.socket() as other:
            other.bind((address, port))


def _greeting(address: str, port: int) -> bytes | None:
    """The first line a server at address:port says, or None when it refuses."""
    try:
        with socket.create_connection((address, port), timeout=5) as sock:
            return sock.recv(512).split(b"\r\n")[0]
    except ConnectionRefusedError:
        return None
