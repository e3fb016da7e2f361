"""The test servers themselves: the sink speaks correct SMTP, the DNS server answers."""

import smtplib

import dns.resolver
import pytest

from tests.support.dnsserver import DnsServer
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
