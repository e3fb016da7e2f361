"""A local routing entry that is an IP address, end to end (tester guide36, finding 3): smtplib
-> the core on loopback -> loopback sinks.

Guide §3 "Configuring local routing": an entry (host name, domain, or IP address) makes the
mail addressed to it local, which matters for the relay restrictions. Mail to an IP address
is written as an RFC 5321 §4.1.3 address literal: user@[192.0.2.10], user@[IPv6:2001:db8::10].
Such mail is local under the entry for that address — accepted from a client that may not
relay, routed by the entry and not by routing.default, without the outbound disclaimer —
and an IPv4 entry with a wildcard (`127.0.0.*`) covers the addresses its text matches, and
no domain name. The addresses in the literals other than 127.0.0.1 are documentation ones
(RFC 5737, RFC 3849): every route names a loopback sink, so nothing leaves the machine.
"""

from __future__ import annotations

import smtplib

import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import make_home
from tests.support.waiting import at_least

DISCLAIMER = "Outbound disclaimer for address literal tests."


def _rcpt_replies(port, recipients):
    """(code, text) of each RCPT TO, then the message sent to those the core took."""
    body = b"From: alice@sender.test\r\nSubject: literal\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("alice@sender.test")
        replies = [client.rcpt(recipient) for recipient in recipients]
        if any(code == 250 for code, _text in replies):
            client.data(body)
    return replies


async def test_mail_to_the_literal_of_an_ip_entry_is_local_and_goes_by_that_entry(
        tmp_path, make_sink, nursery):
    """Entries typed as an address and as a literal; relaying refused to this client; a
    default route out and the disclaimer on. The literal of each entry's address, in
    another spelling too, is accepted and goes to the internal server without the
    disclaimer; the literal of an address with no entry is relaying, refused."""
    internal, outbound = make_sink(), make_sink()
    home = make_home(tmp_path, routing__local=[
        {"match": "192.0.2.10", "relay": "127.0.0.1", "port": internal.port},
        {"match": "[IPv6:2001:DB8::10]", "relay": "127.0.0.1", "port": internal.port}],
        routing__default={"host": "127.0.0.1", "port": outbound.port},
        relay__mode="deny_except", relay__allowed=[],
        disclaimer__enabled=True, disclaimer__text=DISCLAIMER)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    local = ["u@[192.0.2.10]", "v@[IPv6:2001:db8:0:0::10]"]
    replies = await trio.to_thread.run_sync(_rcpt_replies, port, [*local, "w@[192.0.2.11]"])
    assert [code for code, _text in replies] == [250, 250, 550]
    assert replies[2][1].startswith(b"5.7.1")
    rows = await at_least(home, Action.DELIVERED, 2)
    assert {row["rule"] for row in rows} == {"routing.local:[192.0.2.10]",
                                             "routing.local:[IPv6:2001:db8::10]"}
    received = internal.messages     # a transaction per entry: its rule is part of the next hop
    assert sorted(r for m in received for r in m.recipients) == sorted(local)
    assert all(DISCLAIMER.encode() not in m.data for m in received)
    assert outbound.messages == []
    core.cancel_scope.cancel()


async def test_an_ip_wildcard_entry_without_relay_sends_to_the_literal_address(
        tmp_path, make_sink, nursery):
    """`127.0.0.*` with a port and no relay: mail to user@[127.0.0.1] is local (accepted
    under deny_except) and goes to 127.0.0.1 on the entry's port — the host the literal
    names (RFC 5321 §5.1) — not to routing.default."""
    internal, outbound = make_sink(), make_sink()
    home = make_home(tmp_path, routing__local=[{"match": "127.0.0.*", "port": internal.port}],
                     routing__default={"host": "127.0.0.1", "port": outbound.port},
                     relay__mode="deny_except", relay__allowed=[])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    replies = await trio.to_thread.run_sync(_rcpt_replies, port, ["u@[127.0.0.1]"])
    assert [code for code, _text in replies] == [250]
    [received] = await trio.to_thread.run_sync(internal.wait_for, 1)
    assert received.recipients == ["u@[127.0.0.1]"]
    [row] = await at_least(home, Action.DELIVERED, 1)
    assert row["rule"] == "routing.local:[127.0.0.*]"
    assert outbound.messages == []
    core.cancel_scope.cancel()


async def test_an_ip_wildcard_entry_does_not_make_domains_that_begin_with_its_digits_local(
        tmp_path, make_sink, nursery):
    """Review 13, B1: entry `127.0.0.*` was also a domain pattern whose `*` crosses dots, so
    under deny_except the gateway took mail for 127.0.0.attacker.example from anyone and
    sent it to that domain's MX: an open relay. The RCPT is relaying now, refused; the
    literal the entry names is still local and goes by it."""
    internal = make_sink()
    home = make_home(tmp_path, routing__local=[{"match": "127.0.0.*", "port": internal.port}],
                     relay__mode="deny_except", relay__allowed=[])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    replies = await trio.to_thread.run_sync(
        _rcpt_replies, port, ["x@127.0.0.attacker.example", "u@[127.0.0.1]"])
    assert [code for code, _text in replies] == [550, 250]
    assert replies[0][1].startswith(b"5.7.1")
    [received] = await trio.to_thread.run_sync(internal.wait_for, 1)
    assert received.recipients == ["u@[127.0.0.1]"]
    [row] = await at_least(home, Action.DELIVERED, 1)
    assert row["rule"] == "routing.local:[127.0.0.*]"
    core.cancel_scope.cancel()
