"""SMTP-time policy follows the settings in force at each command, on sessions already open
too (SPEC §3: every setting applies live within 2 seconds; smtp18 A1).

smtp18 A1: each session answered RCPT TO by the snapshot taken at its connect, so a client
removed from relay.allowed went on relaying on its open connection (for up to the hour a
session may last), address_chars turned on did not reach it, and delivery.reject_incoming
refused new connections only. The core runs in-process (run_core); the settings change
through the settings store, as the console and `config set` change them, and each test
waits until the core reads the change before its next command (`_in_force`); the client is
a raw trio socket client that stays connected throughout.
"""

from __future__ import annotations

import pytest

from core.app import run_core
from core.smtp import replies as R
from core.smtp.rbl import query_name
from shared.events import RECIPIENT_REFUSED, Action
from tests.integration.test_smtp_hostile_clients import _Client
from tests.support.core import make_home, set_settings
from tests.support.waiting import at_least, events_of, until

pytestmark = pytest.mark.trio

CHANGE_SECONDS = 10     # SPEC §3's 2 s, with room for a busy machine


async def _session(nursery, home) -> tuple[object, _Client]:
    core = await nursery.start(run_core, home)
    client = await _Client.connect(core.smtp_addresses[0][1])
    assert (await client.command(b"EHLO client.test")).startswith(b"250-")
    return core, client


async def _in_force(core, home, **changes) -> None:
    """Change settings through the store, then wait until the core reads them (the session
    under test is served in the core's process, by that watcher)."""
    set_settings(home, **changes)
    await until(lambda: all(core.settings()[key.replace("__", ".")] == value
                            for key, value in changes.items()), CHANGE_SECONDS)


async def test_a_client_removed_from_relay_allowed_relays_no_more_on_its_open_session(
        tmp_path, nursery):
    home = make_home(tmp_path, relay__allowed=["127.0.0.1"])
    core, client = await _session(nursery, home)
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith(b"250")
    assert (await client.command(b"RCPT TO:<x@victim.test>")).startswith(b"250")
    assert (await client.command(b"RSET")).startswith(b"250")
    await _in_force(core, home, relay__allowed=[])
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith(b"250")
    assert await client.command(b"RCPT TO:<x@victim.test>") == R.R550_RELAY_DENIED.to_bytes()
    assert (await client.command(b"QUIT")).startswith(b"221")
    await core.events.aflush()
    [refused] = events_of(home, Action.REJECTED)
    assert refused["rule"] == "relay.allowed"
    core.cancel_scope.cancel()


async def test_address_characters_turned_on_reach_an_open_session(tmp_path, nursery):
    home = make_home(tmp_path, routing__local=[{"match": "local.test"}])
    core, client = await _session(nursery, home)
    await _in_force(core, home, address_chars__enabled=True)
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith(b"250")
    assert await client.command(b"RCPT TO:<b%x.test@local.test>") == (
        R.R553_BAD_ADDRESS_CHARS.to_bytes())
    core.cancel_scope.cancel()


_TRANSACTION = [b"MAIL FROM:<a@client.test>", b"RCPT TO:<b@local.test>", b"DATA"]


@pytest.mark.parametrize("refused_at", range(len(_TRANSACTION)),
                         ids=[c.split()[0].split(b":")[0].decode() for c in _TRANSACTION])
async def test_reject_incoming_refuses_the_next_mail_of_an_open_session_with_421(
        tmp_path, nursery, refused_at):
    home = make_home(tmp_path, routing__local=[{"match": "local.test"}])
    core, client = await _session(nursery, home)
    for command in _TRANSACTION[:refused_at]:      # a transaction begun before the change
        assert (await client.command(command)).startswith(b"250")
    await _in_force(core, home, delivery__reject_incoming=True)
    assert await client.command(_TRANSACTION[refused_at]) == (
        R.R421_SERVICE_NOT_AVAILABLE.to_bytes())
    assert await client.reply() == b""                  # and closed, as at the connect
    await core.events.aflush()
    [refused] = events_of(home, Action.REJECTED)
    assert (refused["rule"], refused["result"]) == ("delivery.reject_incoming", "421")
    assert refused["sender"] == "a@client.test"
    assert len(events_of(home, Action.DISCONNECTED)) == 1
    assert not list(home.queue("fast").iterdir())
    core.cancel_scope.cancel()


async def test_a_recipient_refused_before_reject_incoming_is_no_second_rejected_message(
        tmp_path, nursery):
    """review18b R4: the relay refusal waited for the transaction's end to learn whether it
    rejected a message; the 421 of delivery.reject_incoming at the next RCPT TO recorded
    the message's rejection, and the session's end then recorded the waiting refusal as a
    second one (two `rejected` events with a reply code, Rejected counted twice)."""
    home = make_home(tmp_path, routing__local=[{"match": "local.test"}])
    core, client = await _session(nursery, home)
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith(b"250")
    assert await client.command(b"RCPT TO:<x@elsewhere.test>") == (
        R.R550_RELAY_DENIED.to_bytes())
    await _in_force(core, home, delivery__reject_incoming=True)
    assert await client.command(b"RCPT TO:<b@local.test>") == (
        R.R421_SERVICE_NOT_AVAILABLE.to_bytes())
    assert await client.reply() == b""
    # the session's end is on record: so would be a refusal it settled then
    await at_least(home, Action.DISCONNECTED, 1, CHANGE_SECONDS, flush=core.events.aflush)
    rows = events_of(home, Action.REJECTED)
    assert sorted((row["rule"], row["result"]) for row in rows) == [
        ("delivery.reject_incoming", "421"), ("relay.allowed", RECIPIENT_REFUSED)]
    assert core.counters.values["rejected"] == 1
    core.cancel_scope.cancel()


ZONE = "bl.test"
RELAY_HOST = "relay1.mail.own.test"


async def test_a_relay_host_named_by_ptr_after_the_connect_is_exempt_from_the_rbl_at_mail(
        tmp_path, nursery, dns_server):
    """review18b D4: with host names added to relay.allowed after the connect, RCPT TO
    asked the client's PTR name but MAIL FROM's RBL exemption used the name asked at
    connect (none), so the organisation's own relay host was refused for its listing at
    MAIL FROM and would have been recognised at RCPT TO. Both read one PTR name, asked
    once a session, at the first command that needs it (core/smtp/session.py rules)."""
    dns_server.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    dns_server.add_ptr("127.0.0.1", RELAY_HOST).add_a(RELAY_HOST, "127.0.0.1")
    home = make_home(tmp_path, dns__resolvers=[dns_server.resolver], rbl__action="reject",
                     rbl__zones=[{"enabled": True, "zone": ZONE, "return_codes": []}])
    core, client = await _session(nursery, home)
    assert not [name for name, rdtype in dns_server.queries if rdtype == "PTR"]
    await _in_force(core, home, relay__allowed=["*.mail.own.test"])
    assert (await client.command(b"MAIL FROM:<a@own.test>")).startswith(b"250")
    assert (await client.command(b"RCPT TO:<x@elsewhere.test>")).startswith(b"250")
    assert len([name for name, rdtype in dns_server.queries if rdtype == "PTR"]) == 1
    assert core.counters.values["spam_rbl"] == 0
    core.cancel_scope.cancel()
