"""Central quarantine copies (guide finding 1): what a copy is, who gets it, and what
another Mailmoat does with it. Real cores, real SMTP on loopback.

Before: the copy was the unmodified original, sent with the original sender to the original
recipients and no marker, so an ordinary SMTP host used as the central quarantine delivered
the virus to the very recipient Mailmoat had protected, and another Mailmoat scanned the copy
and delivered what was left to that recipient again. Now a copy goes with the null sender to
the quarantine mailbox, under X-Mailmoat-Quarantine-* fields signed with
quarantine.reinsertion_key; a Mailmoat with the same key files it in its virus quarantine,
one with another key scans it as ordinary mail addressed to that mailbox.

A copy the central host refused could not be sent again once that host was put right; now
Antivirus Policy › Virus Quarantine's "Send to central quarantine again" has the core send it
(core/scan/central_forwarder.py rule 4), every failed copy at once if need be, and the
detail report finds how each copy's sending went by the message's subject or queue id.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import time

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import Action
from shared.report import DetailFilter, iter_detail, summarise
from shared.report_time import ReportRange
from shared.spool import SUBJECT_META, Envelope, Spool, new_queue_id
from tests.support.console import console_on
from tests.support.core import routed_home
from tests.support.mail import EICAR, send_infected
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

VIRUS_QUEUE = "quarantine/virus"
KEY = "central-quarantine-shared-key-1"
OTHER_KEY = "another-installation-key-22"



def infected(received) -> bool:
    """Does the message the sink received carry EICAR in any part (decoded)?"""
    return any(EICAR in (part.get_payload(decode=True) or b"")
               for part in received.message.walk() if not part.is_multipart())


def quarantine_fields(message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in message.items():
        if name.lower().startswith("x-mailmoat-quarantine"):
            out.setdefault(name.lower(), []).append(str(value))
    return out


def entries(home) -> list:
    spool = Spool(home.spool)
    return [spool.read_envelope(VIRUS_QUEUE, q) for q in spool.list(VIRUS_QUEUE)]


async def settled(core, home) -> None:
    await until(lambda: not list(home.queue("fast").iterdir()), 30)
    await core.events.aflush()


async def test_an_ordinary_smtp_host_gets_the_copy_for_its_quarantine_mailbox_not_the_user(
        tmp_path, sink, nursery):
    # the organisation's own mail server is the central quarantine (the tester's case)
    home = routed_home(tmp_path, sink, av__quarantine="all", smtp__hostname="gw.test",
                       quarantine__reinsertion_key=KEY,
                       av__central_quarantine={"host": "127.0.0.1", "port": sink.port})
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1])
    received = await trio.to_thread.run_sync(sink.wait_for, 2, 30.0)
    [to_user] = [m for m in received if m.recipients == ["user@local.test"]]
    [copy] = [m for m in received if m is not to_user]
    assert not infected(to_user)                          # the cleaned message only
    assert copy.sender == ""                              # nothing bounces to a forged sender
    assert copy.recipients == ["quarantine@[127.0.0.1]"]  # the default mailbox
    assert infected(copy)
    fields = quarantine_fields(copy.message)
    await core.events.aflush()
    [accepted] = events_of(home, Action.ACCEPTED)
    assert fields["x-mailmoat-quarantine"] == [
        "copy of an infected message, not for delivery (format 1)"]
    assert fields["x-mailmoat-quarantine-gateway"] == ["gw.test"]
    assert fields["x-mailmoat-quarantine-queue-id"] == [accepted["queue_id"]]
    assert fields["x-mailmoat-quarantine-sender"] == ["<sender@client.test>"]
    assert fields["x-mailmoat-quarantine-recipient"] == ["<user@local.test>"]
    assert fields["x-mailmoat-quarantine-virus"] == ["Mailmoat.Test.EICAR"]
    assert fields["x-mailmoat-quarantine-file"] == ["eicar.com"]
    [date] = fields["x-mailmoat-quarantine-date"]
    assert date.endswith(" +0000"), date                  # as every date we write
    [signature] = fields["x-mailmoat-quarantine-signature"]
    assert signature.startswith("hmac-sha256=") and KEY not in copy.data.decode("latin-1")
    # the headers come first: a reader of the mailbox sees what it is before anything else
    assert copy.data.startswith(b"X-Mailmoat-Quarantine: ")
    [forwarded] = await until(lambda: [
        e for e in events_of(home, Action.FORWARDED) if e["rule"] == "av.central_quarantine"],
        30, flush=core.events.aflush)
    assert forwarded["info"] == ("virus quarantine copy sent to quarantine@[127.0.0.1] at "
                                 f"127.0.0.1:{sink.port}")
    assert not list(home.tmp.glob("central-copy-*"))      # the copy as sent is not kept
    core.cancel_scope.cancel()


async def test_the_copy_goes_to_the_configured_mailbox(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, av__quarantine="unrepaired",
                       av__central_quarantine={"host": "127.0.0.1", "port": sink.port,
                                               "mailbox": "virus-vault@local.test"})
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1])
    received = await trio.to_thread.run_sync(sink.wait_for, 2, 30.0)
    assert sorted((m.sender, tuple(m.recipients)) for m in received) == [
        ("", ("virus-vault@local.test",)), ("sender@client.test", ("user@local.test",))]
    core.cancel_scope.cancel()


async def two_gateways(tmp_path, sink, nursery, central_key: str):
    """A central Mailmoat (its own sink is `sink`, local.test) and a gateway sending it
    copies for quarantine@local.test; (gateway core, gateway home, central core, central
    home)."""
    central_home = routed_home(tmp_path / "central", sink, quarantine__reinsertion_key=central_key,
                               smtp__hostname="central.test")
    central = await nursery.start(run_core, central_home)
    gateway_home = routed_home(
        tmp_path / "gateway", sink, av__quarantine="all", smtp__hostname="gw.test",
        quarantine__reinsertion_key=KEY,
        av__central_quarantine={"host": "127.0.0.1", "port": central.smtp_addresses[0][1],
                                "mailbox": "quarantine@local.test"})
    gateway = await nursery.start(run_core, gateway_home)
    return gateway, gateway_home, central, central_home


async def test_a_mailmoat_with_the_same_key_files_the_copy_in_its_virus_quarantine(
        tmp_path, sink, nursery):
    gateway, gateway_home, central, central_home = await two_gateways(
        tmp_path, sink, nursery, KEY)
    await trio.to_thread.run_sync(send_infected, gateway.smtp_addresses[0][1], "worm")
    # its event, not only its entry: the queue manager moves the copy in, then writes it
    await until(lambda: events_of(central_home, Action.QUARANTINED), 30,
                flush=central.events.aflush)
    await settled(central, central_home)
    await settled(gateway, gateway_home)
    [filed] = entries(central_home)
    # listed as the infected message it is a copy of, with what the gateway found
    assert filed.sender == "sender@client.test"
    assert [r.address for r in filed.recipients] == ["user@local.test"]
    [original] = events_of(gateway_home, Action.ACCEPTED)
    assert filed.meta["virus"] == ["Mailmoat.Test.EICAR"]
    assert filed.meta["files"] == ["eicar.com"]
    assert filed.meta["original_queue_id"] == original["queue_id"]
    assert filed.meta["received"]["gateway"] == "gw.test"
    assert filed.meta["received"]["sender"] == ""
    assert filed.meta["received"]["recipients"] == ["quarantine@local.test"]
    assert "central" not in filed.meta                    # never sent on from here
    kept = email.message_from_bytes(
        Spool(central_home.spool).message_path(VIRUS_QUEUE, filed.queue_id).read_bytes(),
        policy=email.policy.default)
    assert quarantine_fields(kept)["x-mailmoat-quarantine-gateway"] == ["gw.test"]
    assert any(EICAR == part.get_payload(decode=True) for part in kept.iter_attachments())
    [quarantined] = events_of(central_home, Action.QUARANTINED)
    assert quarantined["rule"] == "quarantine.reinsertion_key"
    assert quarantined["sender"] == "sender@client.test"
    assert "from gw.test (Mailmoat.Test.EICAR)" in quarantined["info"]
    # not scanned, not delivered: the central Mailmoat sent nothing to anyone
    assert not events_of(central_home, Action.FILE_DELETED)
    assert not events_of(central_home, Action.DELIVERED)
    assert central.counters.as_dict()["quarantined"] == 1
    assert [m.recipients for m in sink.messages] == [["user@local.test"]]   # the cleaned one
    gateway.cancel_scope.cancel()
    central.cancel_scope.cancel()


async def test_a_copy_signed_with_another_key_is_scanned_as_ordinary_mail(
        tmp_path, sink, nursery):
    gateway, gateway_home, central, central_home = await two_gateways(
        tmp_path, sink, nursery, OTHER_KEY)
    await trio.to_thread.run_sync(send_infected, gateway.smtp_addresses[0][1], "worm")
    received = await trio.to_thread.run_sync(sink.wait_for, 2, 30.0)
    await settled(central, central_home)
    assert not entries(central_home)
    [scanned] = events_of(central_home, Action.FILE_DELETED)     # its own antivirus acted
    assert scanned["recipients"] == "quarantine@local.test"
    assert sorted((m.sender, tuple(m.recipients)) for m in received) == [
        ("", ("quarantine@local.test",)), ("sender@client.test", ("user@local.test",))]
    assert not any(infected(m) for m in received)
    await settled(gateway, gateway_home)
    assert len(sink.messages) == 2                       # nothing more, to anyone
    gateway.cancel_scope.cancel()
    central.cancel_scope.cancel()


async def test_status_quarantined_counts_the_copies_the_summary_counts(tmp_path, sink,
                                                                         nursery):
    """Guide finding 4: the Status page's Quarantined stayed 0 for virus quarantine copies
    while the summary's Messages Quarantined counted them."""
    home = routed_home(tmp_path, sink, av__quarantine="all")
    core = await nursery.start(run_core, home)
    for subject in ("one", "two"):
        await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], subject)
    await until(lambda: len(entries(home)) == 2, 30)
    await settled(core, home)
    conn = db.connect(home.db)
    try:
        summary = summarise(conn, ReportRange(0, 4_000_000_000, "UTC"), premium=False)
    finally:
        conn.close()
    assert summary.figure("message", "Messages Quarantined") == 2
    assert core.counters.as_dict()["quarantined"] == 2
    core.cancel_scope.cancel()


def _console_send_again(home, queue_id: str) -> int:
    """Press "Send to central quarantine again" for `queue_id` on a console on the same
    home, as the page offers it; the response status."""
    with console_on(home) as console:
        page = console.get("/antivirus/quarantine").get_data(as_text=True)
        [action] = re.findall(r'formaction="([^"]+)"[^>]*value="Send to central quarantine '
                              r'again"', page)
        return console.post(action, {"ids": [queue_id],
                                     "csrf_token": console.token_from(page)}).status_code


def _resend_command(home) -> tuple:
    conn = db.connect(home.db)
    try:
        [(state, result)] = conn.execute(
            "SELECT state, result FROM commands WHERE kind = 'virus_quarantine.central_resend'")
    finally:
        conn.close()
    return state, result


async def test_a_refused_copy_sent_again_from_the_console_reaches_the_central_host(
        tmp_path, sink, make_sink, nursery):
    central = make_sink()
    central.rcpt_reply = lambda address: (550, "5.1.1 no such mailbox")
    home = routed_home(tmp_path, sink, av__quarantine="all", quarantine__reinsertion_key=KEY,
                       av__central_quarantine={"host": "127.0.0.1", "port": central.port})
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], "worm")
    await until(lambda: [c.meta["central"]["state"] for c in entries(home)] == ["failed"], 30)
    [copy] = entries(home)
    assert not central.messages
    central.rcpt_reply = None                   # the central host's mailbox is put right
    assert await trio.to_thread.run_sync(_console_send_again, home, copy.queue_id) == 302
    [received] = await trio.to_thread.run_sync(central.wait_for, 1, 30.0)
    assert (received.sender, received.recipients) == ("", ["quarantine@[127.0.0.1]"])
    assert infected(received)
    assert quarantine_fields(received.message)["x-mailmoat-quarantine-queue-id"] == [
        copy.meta["original_queue_id"]]
    await until(lambda: entries(home)[0].meta["central"]["state"] == "sent")
    await until(lambda: _resend_command(home)[0] == "done")
    assert _resend_command(home) == (
        "done", "1 virus quarantine copy sent to the central quarantine again")

    def forwarded() -> list:
        return [e for e in events_of(home, Action.FORWARDED)
                if e["rule"] == "av.central_quarantine"]

    # the copy's state is written before its event is recorded
    assert [e["queue_id"] for e in await until(forwarded, 30, flush=core.events.aflush)] == [copy.queue_id]
    # guide45 finding 4: the detail report, searched by the message's subject or by its
    # queue id (its own events', the copy's X-Mailmoat-Quarantine-Queue-Id), finds how
    # the copy's sending went, the resend that worked too (central_forwarder.py rule 5)
    for term in ("worm", copy.meta["original_queue_id"]):
        assert [(row.action, row.queue_id, row.subject, row.sender)
                for row in _detail(home, term) if row.rule == "av.central_quarantine"] == [
            ("delivery_failed", copy.queue_id, "worm", "sender@client.test"),
            ("forwarded", copy.queue_id, "worm", "sender@client.test")], term
    core.cancel_scope.cancel()


def _detail(home, term: str) -> list:
    """The detail report's rows for the search `term`, over all time."""
    conn = db.connect(home.db)
    try:
        return list(iter_detail(conn, DetailFilter(ReportRange(0, 4_000_000_000, "UTC"),
                                                   search=term)))
    finally:
        conn.close()


def _failed_copies(home, count: int, port: int) -> list[str]:
    """`count` copies of infected messages whose sending to the central quarantine (on
    `port`) failed, as a long outage leaves them; their queue ids, oldest first."""
    spool = Spool(home.spool)
    ids = []
    for n in range(count):
        queue_id, original = new_queue_id(), new_queue_id()
        incoming = spool.open_incoming(queue_id)
        incoming.write(b"From: sender@client.test\r\nTo: user@local.test\r\n"
                       b"Subject: worm %d\r\n\r\n" % n + EICAR + b"\r\n")
        envelope = Envelope.new(queue_id, "sender@client.test", ["user@local.test"], meta={
            "kind": "virus_quarantine", "virus": ["Mailmoat.Test.EICAR"], "files": ["message"],
            "actions": ["drop"], "original_queue_id": original,
            "quarantined_at": time.time(), SUBJECT_META: f"worm {n}",
            "central": {"host": "127.0.0.1", "port": port, "state": "failed",
                        "last_error": "expired after 5 days: 421 4.3.2 down"}})
        spool.commit([incoming.prepare(envelope)], VIRUS_QUEUE)
        ids.append(queue_id)
    return ids


def _hidden_fields(page: str) -> dict:
    return dict(re.findall(r'<input id="[^"]+" name="([^"]+)" type="hidden" value="([^"]*)"',
                           page))


def _console_send_every_failed_copy_again(home) -> tuple[str, int]:
    """On a console on the same home: show the failed copies, press "Send all N of them
    to the central quarantine again…" and confirm; (the button's text, the last status)."""
    with console_on(home) as console:
        page = console.get("/antivirus/quarantine?central=failed").get_data(as_text=True)
        [form] = re.findall(r'id="virus-quarantine-all" novalidate>(.*?)</form>', page, re.S)
        [(url, text)] = re.findall(r'formaction="([^"]+)" id="central-resend-all">([^<]+)<',
                                   form)
        confirmation = console.post(html.unescape(url), _hidden_fields(form))
        fields = _hidden_fields(confirmation.get_data(as_text=True))
        return text, console.post(html.unescape(url), {**fields, "confirm": "1"}).status_code


@pytest.mark.slow       # 105 copies through a real core and host (~6 s)
async def test_every_failed_copy_beyond_the_first_page_is_sent_again_from_the_console(
        tmp_path, sink, make_sink, nursery):
    """guide45 finding 2: the page listed the newest 500 copies and no more, so after a long
    central outage the oldest failed copies could not be sent again from the console. Now
    "Send all N of them … again" on the failed copies names every one (IDS_PER_COMMAND to a
    command), not only the page's."""
    from console.antivirus.service import PAGE_SIZE
    central = make_sink()
    central.rcpt_reply = lambda address: (550, "5.7.1 relay denied")
    home = routed_home(tmp_path, sink, av__quarantine="all", quarantine__reinsertion_key=KEY,
                       av__central_quarantine={"host": "127.0.0.1", "port": central.port})
    older = _failed_copies(home, PAGE_SIZE + 4, central.port)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_infected, core.smtp_addresses[0][1], "newest")
    await until(lambda: sum(c.meta["central"]["state"] == "failed"
                            for c in entries(home)) == len(older) + 1, 30)
    assert not central.messages
    central.rcpt_reply = None                   # the central host is put right
    text, status = await trio.to_thread.run_sync(_console_send_every_failed_copy_again, home)
    assert (text, status) == (f"Send all {len(older) + 1} of them to the central quarantine "
                              f"again…", 302)
    received = await trio.to_thread.run_sync(central.wait_for, len(older) + 1, 60.0)
    assert sorted(m.message["Subject"] for m in received) == sorted(
        ["newest"] + [f"worm {n}" for n in range(len(older))])
    assert all(m.recipients == ["quarantine@[127.0.0.1]"] for m in received)
    await until(lambda: {c.meta["central"]["state"] for c in entries(home)} == {"sent"}, 30)
    await until(lambda: _resend_command(home)[0] == "done")
    assert _resend_command(home)[1] == (f"{len(older) + 1} virus quarantine copies sent to "
                                        f"the central quarantine again")
    core.cancel_scope.cancel()
