"""Two forward findings on one message, through the core over SMTP on loopback: a custom
blacklist entry and an RBL listing served by a loopback DNS server (tests/support/dnsserver.py),
each with its own forward address, and a sink receiving what is forwarded.

guide45 finding 5: only the first finding's address got the message, yet both findings'
events said "forwarded", so the spam-trap administrator read in the detail report that mail
had been forwarded to the spam trap. Every forward a message asks for is carried out now
(core/pipeline/verdict.py rule 6): one copy to each address, with that forward's Subject.
"""

from __future__ import annotations

import json
import smtplib

import pytest
import trio

from core.app import run_core
from core.notify import fill_metatags, metatags
from core.pipeline.findings import Finding
from core.pipeline.run import WorkerOutcome
from core.pipeline.verdict import decide
from core.smtp.rbl import query_name
from shared.events import Action
from shared.settings import DEFAULT_NOTIFY_ADMIN_BODY
from shared.spool import Envelope
from tests.support.core import routed_home
from tests.support.dnsserver import DnsServer
from tests.support.waiting import at_least, events_of

ZONE = "rbl1.test"
ABUSE = "abuse-desk@local.test"
TRAP = "spamtrap@local.test"


@pytest.fixture
def dns():
    with DnsServer() as server:
        server.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")   # the client is listed
        yield server


def _home(tmp_path, sink, dns, blacklist_subject, rbl_subject, *, rbl_to=TRAP):
    return routed_home(
        tmp_path, sink, dns__resolvers=[dns.resolver], dns__timeout_seconds=2,
        blacklist__enabled=True, blacklist__entries=["spammer@bad.test"],
        blacklist__action="forward", blacklist__forward_to=ABUSE,
        blacklist__forward_subject=blacklist_subject,
        rbl__zones=[{"enabled": True, "zone": ZONE, "return_codes": []}],
        rbl__action="forward", rbl__forward_to=rbl_to, rbl__forward_subject=rbl_subject)


def _send(port):
    body = ("From: spammer@bad.test\r\nTo: user@local.test\r\nSubject: two forwards\r\n"
            "Message-ID: <two-forwards@bad.test>\r\n\r\nBuy now.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("spammer@bad.test", ["user@local.test"], body)


async def _forwarded(tmp_path, sink, dns, nursery, blacklist_subject, rbl_subject, copies,
                     **options):
    """Send the message; the sink's messages by recipient, and the events of its findings
    and of its disposition, once the `copies` messages it became are delivered."""
    home = _home(tmp_path, sink, dns, blacklist_subject, rbl_subject, **options)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1])
    received = await sink.await_messages(copies)
    await at_least(home, Action.COMPLETED, copies)
    await core.events.aflush()
    core.cancel_scope.cancel()
    by_recipient = {r: m for m in received for r in m.recipients}
    assert len(by_recipient) == sum(len(m.recipients) for m in received)    # one copy each
    [blocked] = events_of(home, Action.SENDER_BLOCKED)
    [listed] = events_of(home, Action.SPAM_LIST_BLOCK)
    [forwarded] = events_of(home, Action.FORWARDED)
    return by_recipient, blocked, listed, forwarded


@pytest.mark.parametrize("blacklist_subject, rbl_subject, copies", [
    ("Blacklisted sender", "RBL hit", 2),       # two subjects: two messages
    ("", "RBL hit", 2),                          # one keeps the message's own Subject
    ("Blacklisted sender", "", 2),
    ("", "", 1),                                 # one message to both addresses
    ("Spam", "Spam", 1),
])
async def test_each_forward_address_gets_the_message_with_its_subject(
        tmp_path, sink, dns, nursery, blacklist_subject, rbl_subject, copies):
    by_recipient, blocked, listed, forwarded = await _forwarded(
        tmp_path, sink, dns, nursery, blacklist_subject, rbl_subject, copies)
    assert set(by_recipient) == {ABUSE, TRAP}                  # not user@local.test
    for address, subject in ((ABUSE, blacklist_subject), (TRAP, rbl_subject)):
        message = by_recipient[address]
        assert message.message["Subject"] == (subject or "two forwards")
        assert message.sender == ""                            # the null sender, as before
        assert "Buy now." in message.message.get_content()
    # each finding's event says what became of it, and to whom it went
    assert (blocked["result"], json.loads(blocked["data"])["forward_to"]) == (
        "forwarded", ABUSE)
    assert (listed["result"], json.loads(listed["data"])["forward_to"]) == ("forwarded", TRAP)
    assert blocked["rule"] == "blacklist.entries" and forwarded["rule"] == "blacklist.entries"
    assert sorted(json.loads(forwarded["data"])["forward_to"]) == sorted([ABUSE, TRAP])


async def test_two_forwards_to_one_address_send_one_copy(tmp_path, sink, dns, nursery):
    """The first forward naming an address gives its Subject; the second finding's event
    says it was forwarded there too (it was: in the same copy)."""
    by_recipient, blocked, listed, forwarded = await _forwarded(
        tmp_path, sink, dns, nursery, "Blacklisted sender", "RBL hit", 1,
        rbl_to=ABUSE.upper())
    assert list(by_recipient) == [ABUSE]
    assert by_recipient[ABUSE].message["Subject"] == "Blacklisted sender"
    assert blocked["result"] == listed["result"] == "forwarded"
    assert json.loads(forwarded["data"])["forward_to"] == [ABUSE]


def test_the_administrator_notification_names_every_forward_address():
    findings = [Finding(rule="subject.lines", action="forward", event="subject_blocked",
                        reason="r", notify="content", forward_to="review@local.test",
                        data={"pattern": "*win*"}),
                Finding(rule="encrypted.action", action="forward", event="encrypted_container",
                        reason="r", notify="encrypted", forward_to="security@local.test",
                        data={"file": "s.zip"})]
    outcome = WorkerOutcome(findings=findings, verdict=decide(findings), subject="You win")
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    text = fill_metatags(DEFAULT_NOTIFY_ADMIN_BODY, metatags(envelope, outcome))
    assert text.rstrip().endswith(
        "The message was forwarded to review@local.test, security@local.test")
