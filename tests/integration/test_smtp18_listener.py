"""The SMTP listener against the smtp18 findings B1, C1, C2 and C3: a client's errors are
bounded (and so are the events they write), <Postmaster>'s addresses count toward the
1000 recipients, postmaster@[the address the client connected to] is ours, and a TLS
handshake that never comes is closed without plaintext.

A real `SmtpServer` on loopback with raw trio socket clients (the harness of
test_smtp_hostile_clients.py).
"""

from __future__ import annotations

import ssl

import pytest
import trio

from core.smtp import replies as R
from core.smtp.events import ViolationKind
from core.smtp.session import TLS_HANDSHAKE_SECONDS
from shared.events import RECIPIENT_REFUSED, Action
from tests.integration.test_smtp_hostile_clients import _Client, _listen
from tests.support import sink as sink_support

pytestmark = pytest.mark.trio

TOO_MANY = R.R421_TOO_MANY_ERRORS.to_bytes()


async def _replies(client: _Client, count: int) -> list[bytes]:
    return [await client.reply() for _ in range(count)]


async def test_relay_denied_recipients_count_as_errors_and_their_events_are_bounded(
        tmp_path, nursery):
    # smtp18 B1: 5000 relay-denied RCPTs were 5000 replies 550 and 5000 rejected events
    listener = await _listen(nursery, tmp_path, relay__mode="deny_except")
    client = await _Client.connect(listener.port)
    await client.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                      + b"".join(b"RCPT TO:<u%d@victim.test>\r\n" % n for n in range(500)))
    replies = await _replies(client, 24)
    assert [r[:3] for r in replies[:2]] == [b"250", b"250"]
    assert replies[2:22] == [R.R550_RELAY_DENIED.to_bytes()] * 20
    assert replies[22] == TOO_MANY and replies[23] == b""       # and closed
    await trio.testing.wait_all_tasks_blocked()
    events = listener.events
    rejected = events.of(Action.REJECTED)
    assert len(rejected) == 20
    assert [e["result"] for e in rejected].count(RECIPIENT_REFUSED) == 19
    [closing] = events.of(Action.PROTOCOL_VIOLATION)
    assert closing["rule"] == ViolationKind.TOO_MANY_ERRORS and closing["result"] == "421"
    assert "error 21 since the last accepted message" in closing["info"]
    assert len(events.of(Action.DISCONNECTED)) == 1


async def test_bad_sequence_commands_end_the_session_after_20(tmp_path, nursery):
    # smtp18 B1: 20,000 RCPTs without MAIL: 20,000 events in 3.7 s, and the session stayed
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    await client.send(b"EHLO client.test\r\n" + b"RCPT TO:<x@y.test>\r\n" * 2000)
    replies = await _replies(client, 23)
    assert replies[1:21] == [R.R503_BAD_SEQUENCE.to_bytes()] * 20
    assert replies[21:] == [TOO_MANY, b""]
    await trio.testing.wait_all_tasks_blocked()
    violations = listener.events.of(Action.PROTOCOL_VIOLATION)
    assert [v["rule"] for v in violations] == ["bad_sequence"] * 20 + ["too_many_errors"]


async def test_postmaster_addresses_count_toward_the_1000_recipients(tmp_path, nursery):
    # smtp18 C1: <Postmaster> with 3 admin.emails and 1000 more made a message of 1002
    admins = ["adm1@local.test", "adm2@local.test", "adm3@local.test"]
    listener = await _listen(nursery, tmp_path, admin__emails=admins)
    client = await _Client.connect(listener.port)
    others = b"".join(b"RCPT TO:<r%d@local.test>\r\n" % n for n in range(1000))
    await client.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                      b"RCPT TO:<postmaster>\r\n" + others)
    codes = [reply[:3] for reply in await _replies(client, 1003)]
    assert codes == [b"250"] * 3 + [b"250"] * 997 + [b"452"] * 3
    assert (await client.command(b"DATA")).startswith(b"354")
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).startswith(b"250")
    [(_, envelope)] = listener.accepted
    addresses = [recipient.address for recipient in envelope.recipients]
    assert len(addresses) == 1000 and addresses[:3] == admins


async def test_postmaster_at_the_address_literal_the_client_connected_to_is_ours(
        tmp_path, nursery):
    # smtp18 C2 (RFC 5321 §4.5.1, §4.1.3): refused as relaying before
    listener = await _listen(nursery, tmp_path, relay__mode="deny_except",
                             admin__emails=["adm@local.test"])
    client = await _Client.connect(listener.port)          # to 127.0.0.1
    for line in (b"EHLO client.test", b"MAIL FROM:<a@client.test>"):
        assert (await client.command(line)).startswith(b"250")
    assert await client.command(b"RCPT TO:<Postmaster@[127.0.0.1]>") \
        == R.R250_RECIPIENT_OK.to_bytes()
    assert await client.command(b"RCPT TO:<postmaster@[IPv6:::ffff:127.0.0.1]>") \
        == R.R250_RECIPIENT_OK.to_bytes()
    # another address is another host's postmaster, and someone else's to reach
    assert await client.command(b"RCPT TO:<postmaster@[127.0.0.2]>") \
        == R.R550_RELAY_DENIED.to_bytes()
    assert (await client.command(b"DATA")).startswith(b"354")
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).startswith(b"250")
    [(_, envelope)] = listener.accepted
    assert [recipient.address for recipient in envelope.recipients] == ["adm@local.test"]


async def test_a_tls_handshake_that_never_comes_is_closed_without_a_plaintext_421(
        tmp_path, nursery, autojump_clock):
    # smtp18 C3: the 421 4.4.2 went out in clear into what the client read as TLS
    cert, key = sink_support.test_tls_files()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = await _listen(nursery, tmp_path)
    listener.server.ssl_context = lambda: context
    client = await _Client.connect(listener.port)
    assert b"STARTTLS" in await client.command(b"EHLO client.test")
    assert await client.command(b"STARTTLS") == R.R220_READY_TO_START_TLS.to_bytes()
    asked = trio.current_time()
    assert await client.reply() == b""                      # closed, nothing written
    assert trio.current_time() - asked >= TLS_HANDSHAKE_SECONDS
    await trio.testing.wait_all_tasks_blocked()
    [closed] = listener.events.of(Action.CONNECTION_CLOSED)
    assert "TLS handshake did not finish" in closed["info"]
