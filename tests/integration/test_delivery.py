"""The deliverer and MX lookup against loopback servers: the local DNS server and sinks.

MX hosts resolve to 127.0.0.x; the sinks listen on 127.0.0.1 only, so 127.0.0.2 is a host
that refuses connections. Nothing leaves the machine.
"""

from __future__ import annotations

import random
from functools import partial
from types import MappingProxyType

import pytest
import trio

from core.delivery import Deliverer, LookupFailed, NextHop, candidates
from core.delivery.routing import route
from core.delivery.session import Timeouts
from shared.settings import defaults
from shared.spool import Envelope
from tests.support.next_hop import Recorder, silent_host
from tests.support.scripted_server import command_lines, serve_on_loopback, size_limited_server

pytest_plugins = ["tests.support.fixtures"]

MESSAGE = b"Subject: t\r\n\r\n.one\r\n..two\r\nthree\r\n"


def snapshot(dns_server=None, **overrides):
    values = dict(defaults())
    values.update({"smtp.hostname": "gw.test", "dns.timeout_seconds": 1,
                   "dns.resolvers": [dns_server.resolver] if dns_server else ["127.0.0.1:9"]})
    values.update(overrides)
    return MappingProxyType(values)


@pytest.fixture
def message(tmp_path):
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@x.test", ["bob@mx.test"])
    envelope.size = len(MESSAGE)
    return envelope, path


async def deliver(settings, hop, envelope, path, recipients=None, **kw):
    deliverer = Deliverer(settings=lambda: settings, events=Recorder(), **kw)
    try:
        return await deliverer.deliver(hop, envelope,
                                       recipients or [r.address for r in envelope.recipients],
                                       path)
    finally:
        await deliverer.aclose()


# --- MX lookup -------------------------------------------------------------------------------

async def test_mx_sorted_by_preference_and_addresses(dns_server):
    dns_server.add_mx("mx.test", 20, "b.mx.test").add_mx("mx.test", 10, "a.mx.test")
    dns_server.add_a("a.mx.test", "127.0.0.1").add_aaaa("a.mx.test", "::1")
    dns_server.add_a("b.mx.test", "127.0.0.2")
    found = await candidates(NextHop("mx", "mx.test", 2525), snapshot(dns_server),
                             rng=random.Random(1))
    assert [(c.host, c.port, c.addresses) for c in found] == [
        ("a.mx.test", 2525, ("127.0.0.1", "::1")), ("b.mx.test", 2525, ("127.0.0.2",))]


async def test_no_mx_falls_back_to_the_domain_address(dns_server):
    dns_server.add_a("plain.test", "127.0.0.1")
    [found] = await candidates(NextHop("mx", "plain.test"), snapshot(dns_server))
    assert (found.host, found.addresses) == ("plain.test", ("127.0.0.1",))


@pytest.mark.parametrize("setup, permanent, status", [
    (lambda d: d.add_mx("null.test", 0, "."), True, "5.1.10"),
    (lambda d: None, True, "5.1.2"),                          # NXDOMAIN
    (lambda d: d.fail("null.test", "servfail"), False, "4.4.3"),
    (lambda d: d.fail("null.test", "timeout"), False, "4.4.3"),
])
async def test_lookup_failures_are_permanent_or_temporary(dns_server, setup, permanent, status):
    setup(dns_server)
    with pytest.raises(LookupFailed) as info:
        await candidates(NextHop("mx", "null.test"), snapshot(dns_server))
    assert (info.value.is_permanent, info.value.status) == (permanent, status)


async def test_unresolvable_relay_is_only_temporary(dns_server):
    with pytest.raises(LookupFailed) as info:
        await candidates(NextHop("relay", "typo.test"), snapshot(dns_server))
    assert not info.value.is_permanent


# --- delivering ---------------------------------------------------------------------------------

async def test_next_mx_when_the_first_refuses_connections(dns_server, sink, message):
    dns_server.add_mx("mx.test", 10, "down.mx.test").add_mx("mx.test", 20, "up.mx.test")
    dns_server.add_a("down.mx.test", "127.0.0.2").add_a("up.mx.test", "127.0.0.1")
    settings = snapshot(dns_server, **{"routing.local": [{"match": "mx.test", "port": sink.port}]})
    envelope, path = message
    [result] = await deliver(settings, route("mx.test", settings), envelope, path)
    assert result.outcome == "delivered" and result.remote_mta == "up.mx.test"
    assert sink.messages[0].data == MESSAGE


async def test_a_421_greeting_defers(dns_server, make_sink, message):
    busy = make_sink()
    busy.greeting = (421, "4.3.2 too busy")
    dns_server.add_mx("mx.test", 10, "busy.mx.test").add_a("busy.mx.test", "127.0.0.1")
    settings = snapshot(dns_server, **{"routing.local": [{"match": "mx.test",
                                                          "port": busy.port}]})
    envelope, path = message
    [result] = await deliver(settings, route("mx.test", settings), envelope, path)
    assert result.outcome == "deferred" and "421" in result.text
    assert result.status.startswith("4.")


async def test_unreachable_relay_defers_everything(message):
    settings = snapshot()
    envelope, path = message
    hop = NextHop("relay", "127.0.0.2", 9)
    results = await deliver(settings, hop, envelope, path, ["a@x.test", "b@x.test"])
    assert [r.outcome for r in results] == ["deferred", "deferred"]
    assert "connect to" in results[0].text


async def test_without_pipelining_one_command_at_a_time(make_sink, message):
    sink = make_sink(pipelining=False)
    sink.rcpt_replies["no@x.test"] = (550, "5.1.1 unknown")
    settings = snapshot()
    envelope, path = message
    results = await deliver(settings, NextHop("relay", "127.0.0.1", sink.port), envelope, path,
                            ["yes@x.test", "no@x.test"])
    assert [r.outcome for r in results] == ["delivered", "failed"]
    assert sink.messages[0].recipients == ["yes@x.test"]


async def test_data_rejected_fails_every_recipient(sink, message):
    sink.data_reply = (554, "5.6.0 content rejected")
    envelope, path = message
    results = await deliver(snapshot(), NextHop("relay", "127.0.0.1", sink.port), envelope,
                            path, ["a@x.test", "b@x.test"])
    assert [(r.outcome, r.status) for r in results] == [("failed", "5.6.0")] * 2


async def test_tls_required_but_not_offered_defers(sink, message):
    envelope, path = message
    [result] = await deliver(snapshot(**{"smtp.tls.outbound": "required"}),
                             NextHop("relay", "127.0.0.1", sink.port), envelope, path)
    assert result.outcome == "deferred" and "TLS required" in result.text
    assert sink.messages == []


async def test_tls_off_never_starttls(tls_sink, message):
    envelope, path = message
    [result] = await deliver(snapshot(**{"smtp.tls.outbound": "off"}),
                             NextHop("relay", "127.0.0.1", tls_sink.port), envelope, path)
    assert result.outcome == "delivered" and not tls_sink.messages[0].is_tls


async def test_connection_reused_across_messages_without_rset_while_fresh(sink, message):
    envelope, path = message
    settings = snapshot()
    deliverer = Deliverer(settings=lambda: settings, events=Recorder())
    hop = NextHop("relay", "127.0.0.1", sink.port)
    for _ in range(3):
        [result] = await deliverer.deliver(hop, envelope, ["a@x.test"], path)
        assert result.outcome == "delivered"
    await deliverer.aclose()
    assert sink.transactions_per_connection == [3]
    # RFC 5321 §4.1.1.4: the reply to the data ended each transaction; no RSET needed
    assert sink.connections[0].commands.count("RSET") == 0
    assert sink.connections[0].commands[-1] == "QUIT"



async def test_a_transaction_with_every_recipient_refused_is_reset_before_reuse(sink, message):
    """The server's transaction stays open when DATA is refused for want of recipients: the
    next message on the connection needs RSET even moments later. Before, it got "503 nested
    MAIL", a permanent failure, and its RCPT and DATA went into the refused message's
    transaction with that message's sender."""
    sink.rcpt_replies["no@x.test"] = (550, "5.1.1 unknown")
    envelope, path = message
    settings = snapshot()
    deliverer = Deliverer(settings=lambda: settings, events=Recorder())
    hop = NextHop("relay", "127.0.0.1", sink.port)
    outcomes = [(await deliverer.deliver(hop, envelope, [to], path))[0].outcome
                for to in ("a@x.test", "no@x.test", "b@x.test")]
    await deliverer.aclose()
    assert outcomes == ["delivered", "failed", "delivered"]
    assert [m.recipients for m in sink.messages] == [["a@x.test"], ["b@x.test"]]
    assert sink.transactions_per_connection == [2]
    assert sink.connections[0].commands.count("RSET") == 1


async def test_data_accepted_after_a_refused_mail_sends_nothing_in_that_transaction(
        message, nursery):
    """A server that refuses MAIL yet takes the pipelined RCPT and DATA has a transaction
    open that is not ours (another sender's): the connection is dropped without the data,
    which would otherwise go out under that sender."""
    lines: list[bytes] = []

    async def handle(stream):
        await stream.send_all(b"220 odd.test ESMTP\r\n")
        async for line in command_lines(stream):
            lines.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                await stream.send_all(b"250-odd.test\r\n250 PIPELINING\r\n")
            elif verb == b"MAIL":
                await stream.send_all(b"503 5.5.1 nested MAIL command\r\n")
            elif verb == b"RCPT":
                await stream.send_all(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                await stream.send_all(b"354 go ahead\r\n")
            elif line == b".":
                await stream.send_all(b"250 2.0.0 queued as someone else's\r\n")
            elif verb == b"QUIT":
                await stream.send_all(b"221 bye\r\n")
                return

    async def server(task_status=trio.TASK_STATUS_IGNORED):
        await serve_on_loopback(handle, task_status)

    port = await nursery.start(server)
    envelope, path = message
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", port), envelope, path)
    assert result.outcome != "delivered"
    assert lines[-1].upper() == b"DATA"     # nothing after it: no content, no final "."

async def test_idle_connection_is_checked_with_rset_before_reuse(sink, message, monkeypatch):
    import core.delivery.session as session_module
    monkeypatch.setattr(session_module, "FRESH_SECONDS", 0.0)
    envelope, path = message
    settings = snapshot()
    deliverer = Deliverer(settings=lambda: settings, events=Recorder())
    hop = NextHop("relay", "127.0.0.1", sink.port)
    for _ in range(3):
        [result] = await deliverer.deliver(hop, envelope, ["a@x.test"], path)
        assert result.outcome == "delivered"
    await deliverer.aclose()
    assert sink.transactions_per_connection == [3]
    assert sink.connections[0].commands.count("RSET") == 2


async def test_stale_pooled_connection_is_replaced(make_sink, message):
    sink = make_sink()
    envelope, path = message
    settings = snapshot()
    deliverer = Deliverer(settings=lambda: settings, events=Recorder(),
                          timeouts=Timeouts(rset=1))
    hop = NextHop("relay", "127.0.0.1", sink.port)
    await deliverer.deliver(hop, envelope, ["a@x.test"], path)
    for slots in deliverer.pool._idle.values():     # the idle connection dies under us
        for slot in slots:
            slot.session.stream.socket.close()
    [result] = await deliverer.deliver(hop, envelope, ["b@x.test"], path)
    await deliverer.aclose()
    assert result.outcome == "delivered"
    assert len(sink.messages) == 2


async def test_our_own_refusal_on_a_pooled_connection_keeps_it(message, nursery):
    """review14 B5: a message over the host's SIZE, refused by us on a pooled connection,
    closed it and opened another that got the same refusal, while the pooled one's
    CONNECTED_TO read "succeeded" (deliver.py rule 5)."""
    connections: list[list[str]] = []
    port = await nursery.start(partial(size_limited_server, extensions=(b"8BITMIME",)), 10,
                              connections)
    envelope, path = message
    settings = snapshot()
    events = Recorder()
    deliverer = Deliverer(settings=lambda: settings, events=events)
    hop = NextHop("relay", "127.0.0.1", port)
    for _ in range(2):
        [result] = await deliverer.deliver(hop, envelope, ["a@x.test"], path)
        assert (result.outcome, result.status) == ("failed", "5.3.4")
    await deliverer.aclose()
    assert connections == [["EHLO", "RSET", "QUIT"]]     # RSET: the check before reuse
    assert [(fields["data"]["connection"], fields["result"]) for _, fields in events.events
            if fields.get("connection_id")] == [("actual", "succeeded"),
                                                ("cached", "succeeded")]


async def _silent_server(task_status=trio.TASK_STATUS_IGNORED):
    """Greets, then reads commands and never answers one."""
    async def handle(stream):
        await stream.send_all(b"220 silent.test ESMTP\r\n")
        while await stream.receive_some(4096):
            pass
    await serve_on_loopback(handle, task_status)


async def test_a_next_hop_that_stops_answering_defers_after_the_timeout(message, nursery):
    port = await nursery.start(_silent_server)
    envelope, path = message
    started = trio.current_time()
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", port), envelope, path,
                             timeouts=Timeouts(helo=0.5))
    assert result.outcome == "deferred"
    assert result.text.startswith("timeout waiting for 127.0.0.1")
    assert trio.current_time() - started < 5


@pytest.mark.parametrize("greets, said", [(False, "no greeting in 0.5 s"),
                                          (True, "no reply to EHLO in 0.5 s")])
async def test_a_timeout_says_what_it_waited_for(message, nursery, greets, said):
    """outbound19 C3: "timeout waiting for host" did not say that the host never greeted
    (core/delivery/session.py rule 11)."""
    if greets:
        port = await nursery.start(_silent_server)
    else:
        port, _reached = await silent_host(nursery)
    envelope, path = message
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", port), envelope, path,
                             timeouts=Timeouts(greeting=0.5, helo=0.5))
    assert result.outcome == "deferred"
    assert result.text == f"timeout waiting for 127.0.0.1[127.0.0.1]:{port}: {said}"


# --- SMTPUTF8 (RFC 6531): what a message needs, not what its client said --------------------

def _spooled(tmp_path, data, *, sender="alice@x.test", recipient="bob@x.test", **fields):
    path = tmp_path / "utf8-message"
    path.write_bytes(data)
    envelope = Envelope.new("Q2", sender, [recipient], **fields)
    envelope.size = len(data)
    return envelope, path


@pytest.mark.parametrize("data, body", [
    (b"Subject: plain\r\n\r\nplain text\r\n", "7BIT"),
    (b"Subject: plain\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n",
     "8BITMIME"),                                     # UTF-8 in the body only
])
async def test_smtputf8_parameter_alone_does_not_need_a_host_with_smtputf8(make_sink, tmp_path,
                                                                            data, body):
    # delivery.md defect 4: an all-ASCII header with SMTPUTF8 given was bounced 5.6.7
    sink = make_sink()
    sink.without_extensions = {"SMTPUTF8"}
    envelope, path = _spooled(tmp_path, data, smtputf8=True, body=body)
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", sink.port), envelope,
                             path)
    assert (result.outcome, result.status) == ("delivered", "2.0.0")
    [received] = sink.messages
    assert "SMTPUTF8" not in received.mail_params and received.data == data


@pytest.mark.parametrize("data, sender, recipient", [
    (b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nx\r\n", "alice@x.test", "bob@x.test"),
    (b"Subject: a\r\nX-Long: " + b"b" * 40000 + b"\xc3\xa9\r\n\r\nx\r\n", "alice@x.test",
     "bob@x.test"),                                 # the UTF-8 is past the first reads
    (b"Subject: plain\r\n\r\nx\r\n", "alice@x.test", "j\u00f6rg@x.test"),
    (b"Subject: plain\r\n\r\nx\r\n", "\u00e5sa@x.test", "bob@x.test"),
])
async def test_utf8_in_header_or_address_fails_5_6_7_without_smtputf8(make_sink, tmp_path, data,
                                                                        sender, recipient):
    sink = make_sink()
    sink.without_extensions = {"SMTPUTF8"}
    envelope, path = _spooled(tmp_path, data, sender=sender, recipient=recipient, smtputf8=True)
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", sink.port), envelope,
                             path)
    assert (result.outcome, result.status) == ("failed", "5.6.7")
    assert "does not support SMTPUTF8" in result.text and sink.connections[0].commands.count(
        "MAIL") == 0


async def test_smtputf8_parameter_is_passed_on_to_a_host_that_offers_it(sink, tmp_path):
    envelope, path = _spooled(tmp_path, b"Subject: plain\r\n\r\nx\r\n", smtputf8=True)
    [result] = await deliver(snapshot(), NextHop("relay", "127.0.0.1", sink.port), envelope,
                             path)
    assert result.outcome == "delivered" and "SMTPUTF8" in sink.messages[0].mail_params


async def _tls_breaking_server(task_status=trio.TASK_STATUS_IGNORED):
    """Offers STARTTLS, answers it with 220, then the ClientHello with plain garbage."""
    async def handle(stream):
        await stream.send_all(b"220 broken.test ESMTP\r\n")
        async for line in command_lines(stream):
            if line.upper().startswith(b"EHLO"):
                await stream.send_all(b"250-broken.test\r\n250 STARTTLS\r\n")
            elif line.upper() == b"STARTTLS":
                await stream.send_all(b"220 2.0.0 go ahead\r\n")
                await stream.receive_some(4096)              # the ClientHello
                await stream.send_all(b"garbage, not TLS\r\n")
                while await stream.receive_some(4096):    # until the client hangs up
                    pass
                return
    await serve_on_loopback(handle, task_status)


async def test_a_failed_tls_handshake_says_why(message, nursery):
    # delivery.md defect 6: the text ended in "failed: " with nothing after it
    port = await nursery.start(_tls_breaking_server)
    envelope, path = message
    [result] = await deliver(snapshot(**{"smtp.tls.outbound": "required"}),
                             NextHop("relay", "127.0.0.1", port), envelope, path,
                             timeouts=Timeouts(tls_handshake=5))
    assert (result.outcome, result.status) == ("deferred", "4.7.0"), result.text
    prefix = f"TLS required, but the TLS handshake with 127.0.0.1[127.0.0.1]:{port} failed: "
    assert result.text.startswith(prefix)
    assert "SSL" in result.text[len(prefix):]        # the ssl error under trio's wrapper
