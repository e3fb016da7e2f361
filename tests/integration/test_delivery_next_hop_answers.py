"""What each answer of a next hop does to a delivery (core/delivery/deliver.py rule 1,
core/delivery/session.py rules 2 and 6, core/smtp/client.py), against hops scripted here
on loopback — plain bytes, nothing shared with core/smtp — and the local DNS server for
hops with several MX hosts.

Regressions (findings 15, delivery client):
    1. A 5xx to EHLO and to HELO was deferred as a busy host (4.4.1) and retried for
       delivery.retry_days, with a delay notice, instead of failing.
    2. A 4xx to MAIL (421 or 451) from the first MX host deferred the message, and the
       next MX host, which would have taken it, was never tried.
    3. A 421 to a RCPT without PIPELINING: the client went on sending on the closed
       connection, and the other recipients were deferred with "internal error ... RCPT
       not allowed in state CLOSED" (4.3.0) instead of the hop's 421.
    4. A 354 to the final dot counted as delivery (status 5.0.0): the message was deleted
       though the hop never said it took it.
    7. A pooled connection closed (or silent) after the whole message and its dot were
       sent was taken as gone stale "before the next hop took the message", and the
       message was sent again at once on a new connection: a second copy.
    6. Opportunistic TLS: a session that broke after a good handshake (closed, or EHLO and
       HELO refused, over TLS) was deferred every time; plain text was never tried.
"""

from __future__ import annotations

import ssl

import pytest

from core.delivery import Deliverer
from core.delivery.routing import route
from shared.events import CONNECTION_SUCCEEDED, Action
from shared.spool import Envelope
from tests.support.next_hop import (CLOSE, MESSAGE, Recorder, ScriptedHop, deliver,
                                    relay_to, snapshot, two_mx_hosts)
from tests.support.sink import test_tls_files as tls_files

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

# --- 1. EHLO and HELO refused ------------------------------------------------------------

R550_HELLO = b"550 5.7.1 you are not welcome"


async def test_a_5xx_to_ehlo_and_helo_fails_the_recipients_with_the_hops_reply(
        tmp_path, nursery):
    hop = ScriptedHop(ehlo=R550_HELLO, helo=R550_HELLO)
    [result], _ = await deliver(tmp_path, snapshot(), await relay_to(nursery, hop))
    assert (result.outcome, result.status, result.remote_mta) == ("failed", "5.7.1",
                                                                  "127.0.0.1")
    assert result.text.endswith("refused EHLO/HELO: " + R550_HELLO.decode())
    assert hop.verbs == [["EHLO", "HELO"]]     # one connection: nothing asked again


async def test_a_4xx_to_helo_defers(tmp_path, nursery):
    hop = ScriptedHop(ehlo=R550_HELLO, helo=b"450 4.7.1 try again later")
    [result], _ = await deliver(tmp_path, snapshot(), await relay_to(nursery, hop))
    assert (result.outcome, result.status) == ("deferred", "4.4.1")
    assert result.text.endswith("450 4.7.1 try again later")


async def test_a_host_refusing_helo_is_passed_over_for_the_next_mx(tmp_path, nursery,
                                                                    dns_server):
    refusing, taking = ScriptedHop(ehlo=R550_HELLO, helo=R550_HELLO), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, refusing, taking)
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.remote_mta) == ("delivered", "mx2.dest.test")
    assert taking.messages == [MESSAGE]


async def test_the_refusal_of_helo_decides_when_the_host_after_it_cannot_be_reached(
        tmp_path, nursery, dns_server):
    # mx2 is reached (its greeting is 421): a busy host after the refusing one does not
    # make the refusal a reason to wait; Postfix bounces at the refusal without trying it
    refusing, busy = ScriptedHop(ehlo=R550_HELLO, helo=R550_HELLO), ScriptedHop(
        greeting=b"421 4.3.2 busy|close")
    settings = await two_mx_hosts(nursery, dns_server, refusing, busy)
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.status, result.remote_mta) == ("failed", "5.7.1",
                                                                  "mx1.dest.test")
    assert len(busy.connections) == 1


# --- 2. MAIL deferred by one MX host -----------------------------------------------------

@pytest.mark.parametrize("refusal", [b"451 4.3.0 temporary local problem",
                                     b"421 4.3.2 shutting down|close"])
async def test_a_4xx_to_mail_sends_the_transaction_to_the_next_mx_host(
        tmp_path, nursery, dns_server, refusal):
    deferring, taking = ScriptedHop(mail=refusal), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, deferring, taking)
    results, _ = await deliver(tmp_path, settings, route("dest.test", settings),
                               ["bob@dest.test", "carol@dest.test"])
    assert [(r.outcome, r.remote_mta) for r in results] == [("delivered", "mx2.dest.test")] * 2
    assert taking.messages == [MESSAGE] and deferring.messages == []
    assert deferring.verbs[0][:2] == ["EHLO", "MAIL"] and "RCPT" not in deferring.verbs[0]


async def test_the_last_mx_hosts_4xx_to_mail_stands(tmp_path, nursery, dns_server):
    first, last = (ScriptedHop(mail=b"451 4.3.0 first is busy"),
                   ScriptedHop(mail=b"452 4.3.1 last is full"))
    settings = await two_mx_hosts(nursery, dns_server, first, last)
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.text, result.status, result.remote_mta,
            result.is_remote_reply) == ("deferred", "452 4.3.1 last is full", "4.3.1",
                                        "mx2.dest.test", True)


async def test_a_4xx_to_mail_stands_when_no_later_host_answers(tmp_path, nursery,
                                                              dns_server):
    deferring = ScriptedHop(mail=b"451 4.3.0 temporary local problem")
    port = await nursery.start(deferring.serve)
    dns_server.add_mx("dest.test", 10, "mx1.dest.test").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx1.dest.test", "127.0.0.1").add_a("mx2.dest.test", "127.0.0.3")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    # mx2 refuses the connection: the answer of the host that said something is kept
    assert (result.outcome, result.text, result.remote_mta) == (
        "deferred", "451 4.3.0 temporary local problem", "mx1.dest.test")


async def test_a_5xx_to_mail_stands(tmp_path, nursery, dns_server):
    # a 4xx after MAIL was accepted goes to the next host too: test_delivery_soft_errors_next_mx
    answering, backup = ScriptedHop(mail=b"550 5.7.1 sender refused"), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, answering, backup)
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings))
    assert (result.outcome, result.text, result.remote_mta) == (
        "failed", "550 5.7.1 sender refused", "mx1.dest.test")
    assert backup.connections == []


# --- 3. A 421 to RCPT ----------------------------------------------------------------------

R421 = b"421 4.3.2 too busy, closing"


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("closing", ["carol@dest.test", "dave@dest.test"])   # mid, last
async def test_a_421_to_rcpt_defers_every_recipient_with_the_hops_421(tmp_path, nursery,
                                                                      pipelining, closing):
    ehlo = b"250-hop.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES" if pipelining \
        else ScriptedHop.DEFAULTS["ehlo"]
    hop = ScriptedHop(ehlo=ehlo, **{f"rcpt_{closing}": R421 + b"|close"})
    recipients = ["bob@dest.test", "carol@dest.test", "dave@dest.test"]
    results, _ = await deliver(tmp_path, snapshot(), await relay_to(nursery, hop), recipients)
    assert [(r.outcome, r.text, r.status, r.is_remote_reply) for r in results] == [
        ("deferred", R421.decode(), "4.3.2", True)] * 3
    if not pipelining:          # nothing sent after the 421
        assert hop.connections[0][-2:] == [f"C: RCPT TO:<{closing}>", "S: " + R421.decode()]


# --- 4. A reply of a class its command cannot have -------------------------------------

@pytest.mark.parametrize("stage, reply, verbs", [
    ("end", b"354 what", ["EHLO", "MAIL", "RCPT", "DATA"]),
    ("mail", b"354 what", ["EHLO", "MAIL"]),
    ("rcpt", b"354 what", ["EHLO", "MAIL", "RCPT"]),
    ("data", b"250 2.0.0 ok", ["EHLO", "MAIL", "RCPT", "DATA"])])
async def test_an_unexpected_reply_is_a_protocol_error_that_defers(tmp_path, nursery, stage,
                                                                   reply, verbs):
    hop = ScriptedHop(**{stage: reply})
    next_hop = await relay_to(nursery, hop)
    [result], events = await deliver(tmp_path, snapshot(), next_hop)
    assert (result.outcome, result.status, result.remote_mta) == ("deferred", "4.4.2",
                                                                  "127.0.0.1")
    what = "the end of data" if stage == "end" else stage.upper()
    assert result.text.endswith(f"unexpected reply to {what}: {reply.decode()}")
    assert result.text.startswith("protocol error from ")
    assert hop.verbs == [verbs]     # nothing more on that connection: it is dropped


# --- 7. A pooled connection lost after the final dot --------------------------------------

@pytest.mark.parametrize("end", [CLOSE, b"421 4.3.2 shutting down|close"])
async def test_a_pooled_connection_lost_after_the_dot_is_not_sent_again_at_once(
        tmp_path, nursery, end):
    hop = ScriptedHop(**{"end#2": end})
    next_hop = await relay_to(nursery, hop)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", ["bob@dest.test"])
    envelope.size = len(MESSAGE)
    events = Recorder()
    deliverer = Deliverer(settings=snapshot, events=events)
    try:
        [first] = await deliverer.deliver(next_hop, envelope, ["bob@dest.test"], path)
        [second] = await deliverer.deliver(next_hop, envelope, ["bob@dest.test"], path)
    finally:
        await deliverer.aclose()
    assert first.outcome == "delivered"
    # the hop may have taken it: the retry, with its backoff, sends it again, not this attempt
    expected = "closed the connection" if end == CLOSE else end.removesuffix(b"|close").decode()
    assert (second.outcome, second.status) == (
        "deferred", "4.4.2" if end == CLOSE else "4.3.2") and second.text.endswith(expected)
    assert hop.messages == [MESSAGE, MESSAGE] and len(hop.connections) == 1
    # the pooled connection did its work: it is not reported as dead
    assert [fields["result"] for action, fields in events.events
            if action is Action.CONNECTED_TO] == [CONNECTION_SUCCEEDED] * 2


# --- 6. A TLS session that breaks after the handshake --------------------------------------

def server_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files())
    return context


OFFERING_TLS = b"250-hop.test\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES"
BROKEN_OVER_TLS = [{"ehlo": CLOSE}, {"ehlo": R550_HELLO, "helo": R550_HELLO}]


@pytest.mark.parametrize("after_tls", BROKEN_OVER_TLS)
async def test_opportunistic_tls_broken_after_the_handshake_is_tried_again_in_plain_text(
        tmp_path, nursery, after_tls):
    hop = ScriptedHop(ehlo=OFFERING_TLS, starttls=b"220 go ahead", tls=server_tls(),
                      after_tls=after_tls)
    [result], events = await deliver(tmp_path, snapshot(smtp__tls__outbound="opportunistic"),
                                     await relay_to(nursery, hop))
    assert result.outcome == "delivered" and hop.messages == [MESSAGE]
    assert [verbs[:2] for verbs in hop.verbs] == [["EHLO", "STAR"], ["EHLO", "MAIL"]]
    assert "-- TLS" in hop.connections[0] and "-- TLS" not in hop.connections[1]


@pytest.mark.parametrize("after_tls, outcome", list(zip(
    BROKEN_OVER_TLS, [("deferred", "4.4.1"), ("failed", "5.7.1")])))
async def test_required_tls_broken_after_the_handshake_never_falls_back(tmp_path, nursery,
                                                                        after_tls, outcome):
    hop = ScriptedHop(ehlo=OFFERING_TLS, starttls=b"220 go ahead", tls=server_tls(),
                      after_tls=after_tls)
    [result], _ = await deliver(tmp_path, snapshot(smtp__tls__outbound="required"),
                                await relay_to(nursery, hop))
    assert (result.outcome, result.status) == outcome and hop.messages == []
    assert len(hop.connections) == 1
