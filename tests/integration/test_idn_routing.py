"""The organisation's own internationalised domain, end to end (i18n finding 1 and 6): smtplib
with SMTPUTF8 -> the core on loopback -> loopback sinks, with a loopback DNS server.

RFC 6531 senders commonly write the domain as U-labels (user@münchen.de), others as A-labels
(user@xn--mnchen-3ya.de), in capitals or with an ideographic full stop (例子。广告). Whichever
form routing.local and relay.allowed hold, and whichever the mail carries, the destination is
local: accepted without relaying, delivered by the local route, no outbound disclaimer. The
detail report finds the events under either form.
"""

from __future__ import annotations

import smtplib

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import Action
from shared.report import DetailFilter, iter_detail
from shared.report_time import ReportRange
from tests.support.core import make_home
from tests.support.dnsserver import DnsServer
from tests.support.waiting import at_least, events_of

DISCLAIMER = "Outbound disclaimer for IDN tests."
MUNICH = "xn--mnchen-3ya.de"                   # münchen.de
EXAMPLE_CN = "xn--fsqu00a.xn--4rr70v"          # 例子.广告


def _send(port, recipient, *, sender="alice@sender.test", source="127.0.0.1", utf8=True):
    body = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: idn\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo("client.test")
        client.sendmail(sender, [recipient], body.encode(),
                        mail_options=["SMTPUTF8"] if utf8 else [])


async def test_mail_to_the_own_idn_domain_in_any_form_is_local(tmp_path, make_sink, nursery):
    """routing.local as an earlier release stored it (A-labels); relaying refused to this
    client. Each form of the address is accepted and goes to the internal server without
    the disclaimer; the report finds the events under either form of the domain."""
    internal, outbound = make_sink(), make_sink()
    home = make_home(tmp_path, routing__local=[
        {"match": MUNICH, "relay": "127.0.0.1", "port": internal.port},
        {"match": EXAMPLE_CN, "relay": "127.0.0.1", "port": internal.port}],
        routing__default={"host": "127.0.0.1", "port": outbound.port},
        relay__mode="deny_except", disclaimer__enabled=True, disclaimer__text=DISCLAIMER)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    recipients = ["user@münchen.de", "user@MÜNCHEN.DE", "用户@例子。广告", f"ascii@{MUNICH}"]
    for recipient in recipients:
        await trio.to_thread.run_sync(_send, port, recipient)
    received = await trio.to_thread.run_sync(internal.wait_for, len(recipients))
    assert sorted(r for m in received for r in m.recipients) == sorted(recipients)
    assert all(DISCLAIMER.encode() not in m.data for m in received)
    assert outbound.messages == []
    rows = await at_least(home, Action.DELIVERED, len(recipients))
    assert {row["rule"] for row in rows} == {f"routing.local:{MUNICH}",
                                             f"routing.local:{EXAMPLE_CN}"}
    assert events_of(home, Action.REJECTED) == []

    await core.events.aflush()
    conn = db.connect(home.db)
    try:
        def found(term):
            rng = ReportRange(0, 2 ** 40)
            return {row.recipients for row in iter_detail(conn, DetailFilter(
                rng, actions=frozenset({Action.DELIVERED}), search=term))}
        munich = {row["recipients"] for row in rows if "例子" not in row["recipients"]}
        assert found(MUNICH) == found("münchen.de") == found("MÜNCHEN.DE") == munich
        assert len(munich) == 3
        assert found("例子.广告") == found(EXAMPLE_CN) != set()
    finally:
        conn.close()
    core.cancel_scope.cancel()


async def test_a_client_that_may_relay_still_delivers_the_own_idn_domain_locally(
        tmp_path, make_sink, nursery):
    """Relaying allowed, a default route out and the disclaimer on: user@münchen.de is not
    sent out through routing.default with the outbound disclaimer; mail elsewhere is."""
    internal, outbound = make_sink(), make_sink()
    home = make_home(tmp_path, routing__local=[
        {"match": MUNICH, "relay": "127.0.0.1", "port": internal.port}],
        routing__default={"host": "127.0.0.1", "port": outbound.port},
        relay__allowed=["127.0.0.1"], disclaimer__enabled=True, disclaimer__text=DISCLAIMER)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, "jörg@münchen.de")
    await trio.to_thread.run_sync(_send, port, "carol@elsewhere.test")
    [inside] = await trio.to_thread.run_sync(internal.wait_for, 1)
    [outside] = await trio.to_thread.run_sync(outbound.wait_for, 1)
    assert inside.recipients == ["jörg@münchen.de"] and "SMTPUTF8" in inside.mail_params
    assert DISCLAIMER.encode() not in inside.data
    assert outside.recipients == ["carol@elsewhere.test"] and DISCLAIMER.encode() in outside.data
    core.cancel_scope.cancel()


async def test_a_local_route_typed_in_u_labels_is_found_by_its_mx_in_either_form(
        tmp_path, make_sink, nursery):
    """`münchen.de` typed as written, without a relay: the core asks DNS for the MX of the
    A-label form (what DNS holds) for mail in either form, on the entry's port."""
    internal = make_sink()
    with DnsServer() as dns:
        dns.add_mx(MUNICH, 10, f"mx.{MUNICH}").add_a(f"mx.{MUNICH}", "127.0.0.1")
        home = make_home(tmp_path, routing__local=[{"match": "münchen.de",
                                                    "port": internal.port}],
                         dns__resolvers=[dns.resolver])
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        await trio.to_thread.run_sync(_send, port, "user@münchen.de")
        await trio.to_thread.run_sync(_send, port, f"user@{MUNICH}")
        received = await trio.to_thread.run_sync(internal.wait_for, 2)
        assert sorted(r for m in received for r in m.recipients) == sorted(
            ["user@münchen.de", f"user@{MUNICH}"])
        assert {name for name, rtype in dns.queries if rtype == "MX"} == {MUNICH}
        rows = await at_least(home, Action.DELIVERED, 2)
        assert {row["rule"] for row in rows} == {f"routing.local:{MUNICH}"}
        core.cancel_scope.cancel()


async def test_relay_entry_star_dot_idn_domain_matches_the_clients_confirmed_ptr_name(
        tmp_path, make_sink, nursery):
    """relay.allowed `*.münchen.de`, typed as written: a client whose forward-confirmed PTR
    name is mx.xn--mnchen-3ya.de (DNS holds A-labels) may relay; another may not."""
    outbound = make_sink()
    with DnsServer() as dns:
        dns.add_ptr("127.0.0.2", f"mx.{MUNICH}").add_a(f"mx.{MUNICH}", "127.0.0.2")
        dns.add_ptr("127.0.0.3", "mx.elsewhere.test").add_a("mx.elsewhere.test", "127.0.0.3")
        home = make_home(tmp_path, relay__mode="deny_except", relay__allowed=["*.münchen.de"],
                         routing__default={"host": "127.0.0.1", "port": outbound.port},
                         dns__resolvers=[dns.resolver])
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        def send_from(source):
            _send(port, "carol@other.test", source=source)
        await trio.to_thread.run_sync(send_from, "127.0.0.2")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await trio.to_thread.run_sync(send_from, "127.0.0.3")
        [received] = await trio.to_thread.run_sync(outbound.wait_for, 1)
        assert received.recipients == ["carol@other.test"]
        core.cancel_scope.cancel()


async def test_postmaster_mail_goes_to_an_admin_address_typed_with_an_idn_domain(
        tmp_path, make_sink, nursery):
    """admin.emails `Admin@MÜNCHEN.DE` is kept as admin@xn--mnchen-3ya.de: mail Mailmoat
    sends to it needs no SMTPUTF8, so a next hop without it takes it."""
    internal = make_sink()
    internal.without_extensions = {"SMTPUTF8"}
    home = make_home(tmp_path, admin__emails=["Admin@MÜNCHEN.DE"], routing__local=[
        {"match": "MÜNCHEN.DE", "relay": "127.0.0.1", "port": internal.port}])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(lambda: _send(port, "postmaster", utf8=False))
    [received] = await trio.to_thread.run_sync(internal.wait_for, 1)
    assert received.recipients == [f"Admin@{MUNICH}"]
    core.cancel_scope.cancel()


async def test_postmaster_at_the_gateway_s_idn_host_name_in_u_labels_is_its_postmaster(
        tmp_path, make_sink, nursery):
    """smtp.hostname is kept as A-labels; a client writes the name in U-labels."""
    internal = make_sink()
    home = make_home(tmp_path, smtp__hostname="gw.münchen.de", admin__emails=[
        f"admin@{MUNICH}"], routing__local=[
        {"match": MUNICH, "relay": "127.0.0.1", "port": internal.port}])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(lambda: _send(port, "Postmaster@GW.MÜNCHEN.DE"))
    [received] = await trio.to_thread.run_sync(internal.wait_for, 1)
    assert received.recipients == [f"admin@{MUNICH}"]
    core.cancel_scope.cancel()
