"""The SMTP listener against hostile and odd clients (smtp-security findings): time limits
that a client dripping bytes or commands cannot stretch, the Received field it cannot forge,
where mail for a domainless <Postmaster> goes, and the Subject the accepted event shows when
the header has bare CRs.

A real `SmtpServer` on loopback, driven by raw trio socket clients in the same trio run, so
that trio's virtual clock (`autojump_clock`) can let hours of a slow client pass in
milliseconds. Nothing here runs a worker thread while a time limit is due: the clock jumps
whenever every task waits, a thread's work included.
"""

from __future__ import annotations

import datetime
from email.utils import parsedate_to_datetime

import pytest
import trio

from core.smtp import replies as R
from core.smtp.group_commit import GroupCommitter
from core.smtp.server import SmtpServer
from core.smtp.session import (COMMAND_IDLE_SECONDS, DEADLINE_SLACK_SECONDS,
                               SESSION_TOTAL_SECONDS)
from core.status import Counters
from shared.clock import SYSTEM_CLOCK
from shared.events import Action
from shared.settings import defaults
from shared.spool import Spool

pytestmark = pytest.mark.trio


class _Events:
    def __init__(self):
        self.rows: list[tuple[Action, dict]] = []

    def record(self, action, **fields):
        self.rows.append((action, fields))

    def of(self, action) -> list[dict]:
        return [fields for recorded, fields in self.rows if recorded is action]


class _Listener:
    def __init__(self, server: SmtpServer, events: _Events, spool: Spool):
        self.server, self.events, self.spool = server, events, spool
        self.accepted: list[tuple[str, object]] = []

    @property
    def port(self) -> int:
        return self.server.bound[0][1]


async def _listen(nursery, tmp_path, server_args: dict | None = None,
                  **changes) -> _Listener:
    settings = {**defaults(), "smtp.port": 0, "smtp.listen": ["127.0.0.1"],
                "relay.mode": "allow",
                **{key.replace("__", "."): value for key, value in changes.items()}}
    spool = Spool(tmp_path / "spool")
    committer = GroupCommitter(spool)
    events = _Events()
    listener: _Listener

    def accepted(queue_id, envelope, _json):
        listener.accepted.append((queue_id, envelope))

    server = SmtpServer(settings=lambda: settings, spool=spool, committer=committer,
                        events=events, counters=Counters(), clock=SYSTEM_CLOCK,
                        on_accepted=accepted, ssl_context=lambda: None,
                        diagnostics_dir=tmp_path, hostname=lambda: "gw.test",
                        **(server_args or {}))
    listener = _Listener(server, events, spool)
    await nursery.start(committer.run)
    await nursery.start(server.serve)
    return listener


class _Client:
    """A raw SMTP client: sends bytes, reads whole replies."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def connect(cls, port: int, source: str | None = None) -> _Client:
        """Greeted with 220; `source`: the client's address (another 127.x host)."""
        client = await cls.open(port, source)
        assert (await client.reply()).startswith(b"220 ")
        return client

    @classmethod
    async def open(cls, port: int, source: str | None = None) -> _Client:
        return cls(await trio.open_tcp_stream("127.0.0.1", port, local_address=source))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reply(self) -> bytes:
        """One whole reply (all its lines), or what came before the server closed."""
        while True:
            end = 0
            while (newline := self.buffer.find(b"\n", end)) >= 0:
                line = self.buffer[end:newline + 1]
                end = newline + 1
                if line[3:4] != b"-":
                    reply, self.buffer = self.buffer[:end], self.buffer[end:]
                    return reply
            data = await self.stream.receive_some(65536)
            if not data:
                reply, self.buffer = self.buffer, b""
                return reply
            self.buffer += data

    async def command(self, line: bytes) -> bytes:
        await self.send(line + b"\r\n")
        return await self.reply()


# --- time limits (finding 1) -------------------------------------------------------------

async def test_a_command_line_dripped_a_byte_at_a_time_is_cut_at_the_command_limit(
        tmp_path, nursery, autojump_clock):
    # smtp-security finding 1: one byte every 50 s restarted the 5-minute timer, so 26 such
    # clients held every session slot for as long as they liked
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    waiting_since = trio.current_time()
    reply = b""
    while not reply and trio.current_time() - waiting_since < 4 * COMMAND_IDLE_SECONDS:
        await client.send(b"X")
        with trio.move_on_after(50):
            reply = await client.reply()
    assert reply == R.R421_TIMEOUT.to_bytes()
    waited = trio.current_time() - waiting_since
    assert COMMAND_IDLE_SECONDS <= waited <= COMMAND_IDLE_SECONDS + DEADLINE_SLACK_SECONDS
    assert await client.reply() == b""                       # and closed


async def test_the_command_limit_counts_from_the_previous_reply(tmp_path, nursery,
                                                               autojump_clock):
    # a command begun in the packet of the one before has its 5 minutes from that one's
    # reply; the pieces that follow do not extend them
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    await client.send(b"EHLO client.test\r\nNO")
    assert (await client.reply()).startswith(b"250-gw.test")
    await trio.sleep(COMMAND_IDLE_SECONDS - 10)
    assert await client.command(b"OP") == R.R250_OK.to_bytes()
    answered = trio.current_time()
    for piece in (b"NO", b"OP", b" "):                     # a NOOP never ended
        await trio.sleep(COMMAND_IDLE_SECONDS / 4)
        await client.send(piece)
    assert await client.reply() == R.R421_TIMEOUT.to_bytes()
    waited = trio.current_time() - answered
    assert COMMAND_IDLE_SECONDS <= waited <= COMMAND_IDLE_SECONDS + DEADLINE_SLACK_SECONDS


async def test_a_valid_command_every_few_minutes_holds_a_session_for_an_hour_only(
        tmp_path, nursery, autojump_clock):
    listener = await _listen(nursery, tmp_path)
    started = trio.current_time()
    client = await _Client.connect(listener.port)
    assert (await client.command(b"EHLO client.test")).startswith(b"250-")
    ok = reply = R.R250_OK.to_bytes()
    while reply == ok and trio.current_time() - started < 3 * SESSION_TOTAL_SECONDS:
        with trio.move_on_after(COMMAND_IDLE_SECONDS - 10) as wait:
            reply = await client.reply()             # the server speaks first: the limit
        if wait.cancelled_caught:
            reply = await client.command(b"NOOP")
    assert reply == R.R421_TIMEOUT.to_bytes()
    lasted = trio.current_time() - started
    assert SESSION_TOTAL_SECONDS <= lasted <= SESSION_TOTAL_SECONDS + DEADLINE_SLACK_SECONDS


async def test_a_message_being_sent_at_the_session_limit_is_finished_first(tmp_path, nursery,
                                                                          autojump_clock):
    # the DATA phase runs under its own limits; the session ends at its next command wait.
    # The message is one the listener refuses (a line over 1000 octets) so that no commit
    # runs in a worker thread while the virtual clock may jump.
    listener = await _listen(nursery, tmp_path)
    started = trio.current_time()
    client = await _Client.connect(listener.port)
    for line in (b"EHLO client.test", b"MAIL FROM:<a@client.test>", b"RCPT TO:<b@local.test>"):
        assert (await client.command(line)).startswith(b"250")
    while trio.current_time() - started < SESSION_TOTAL_SECONDS - 2 * 60:
        await trio.sleep(COMMAND_IDLE_SECONDS - 10)
        assert await client.command(b"NOOP") == R.R250_OK.to_bytes()
    assert (await client.command(b"DATA")).startswith(b"354")
    while trio.current_time() - started < SESSION_TOTAL_SECONDS + 200:
        await client.send(b"Still-Coming: yes\r\n")
        await trio.sleep(60)
    assert await client.command(b"x" * 1000 + b"\r\n.") == R.R554_LINE_TOO_LONG_IN_DATA.to_bytes()
    finished = trio.current_time()
    assert await client.reply() == R.R421_TIMEOUT.to_bytes()
    assert trio.current_time() - finished <= DEADLINE_SLACK_SECONDS


# --- one client's share of the sessions -------------------------------------------------
# The clients here are other 127.x hosts: connections from this host itself are never
# limited (server.HOST_ITSELF), so these tests take loopback for other hosts.

@pytest.fixture
def loopback_is_another_host(monkeypatch):
    import core.smtp.server as server_module
    monkeypatch.setattr(server_module, "HOST_ITSELF", ())


async def test_connections_from_this_host_wait_for_a_slot_and_are_never_refused(tmp_path,
                                                                             nursery):
    """SPEC §4: "at most smtp.max_incoming sessions are served; more wait (queued) rather
    than being refused" — from the host itself (a local MTA in front of the gateway, an
    administrator's test) whatever the per-client share."""
    listener = await _listen(nursery, tmp_path, smtp__max_incoming=2)
    held = [await _Client.connect(listener.port) for _ in range(2)]
    waiting = await _Client.open(listener.port)
    with trio.move_on_after(0.2):
        assert await waiting.reply() == b"", "greeted without a free slot"
    assert (await held[0].command(b"QUIT")).startswith(b"221")
    with trio.fail_after(10):
        assert (await waiting.reply()).startswith(b"220 ")
    assert not listener.events.of(Action.REJECTED)

async def test_one_client_holding_idle_sessions_leaves_the_others_room(tmp_path, nursery,
        loopback_is_another_host):
    # a host with smtp.max_incoming idle connections made every other sender wait up to the
    # command limit (5 minutes), each time; now it has half of them, its next one a 421
    listener = await _listen(nursery, tmp_path, smtp__max_incoming=4)
    held = [await _Client.connect(listener.port) for _ in range(2)]
    refused = await _Client.open(listener.port)
    assert await refused.reply() == b"421 4.7.0 Too many connections from your host\r\n"
    assert await refused.reply() == b""                                  # and closed
    other = await _Client.connect(listener.port, source="127.0.0.2")     # another sender
    assert (await other.command(b"EHLO other.test")).startswith(b"250-")
    [rejected] = listener.events.of(Action.REJECTED)
    assert rejected["rule"] == "smtp.max_incoming" and rejected["client_ip"] == "127.0.0.1"
    assert rejected["info"].startswith("3 connections at once from this client; a client may "
                                       "have 2: half of smtp.max_incoming")
    assert len(listener.events.of(Action.CONNECTION_FROM)) == 4
    assert len(listener.events.of(Action.DISCONNECTED)) == 1            # the refused one
    assert listener.server.counters.values["rejected"] == 1
    # a session that ends gives the client its place back
    assert (await held[0].command(b"QUIT")).startswith(b"221")
    await held[0].reply()
    await _until_sessions(listener, "127.0.0.1", 1)
    again = await _Client.connect(listener.port)
    assert (await again.command(b"NOOP")) == R.R250_OK.to_bytes()


async def test_connections_waiting_for_a_slot_count_toward_the_clients_share(
        tmp_path, nursery, loopback_is_another_host):
    listener = await _listen(nursery, tmp_path, smtp__max_incoming=3)   # 2 a client
    held = [await _Client.connect(listener.port, source="127.0.0.2") for _ in range(2)]
    held.append(await _Client.connect(listener.port))                    # the last slot
    waiting = await _Client.open(listener.port)                          # no slot: waits
    await _until_sessions(listener, "127.0.0.1", 2)
    refused = await _Client.open(listener.port)
    assert await refused.reply() == R.R421_TOO_MANY_CONNECTIONS.to_bytes()
    with trio.move_on_after(0.2):
        assert await waiting.reply() == b"", "greeted without a free slot"


async def test_clients_of_relay_allowed_may_use_every_session(tmp_path, nursery,
        loopback_is_another_host):
    # the organisation's own servers open many connections (Postfix exempts mynetworks)
    listener = await _listen(nursery, tmp_path, smtp__max_incoming=3,
                             relay__allowed=["10.0.0.0/8", "127.0.0.1"])
    held = [await _Client.connect(listener.port) for _ in range(3)]
    assert listener.server.client_sessions.of("127.0.0.1") == len(held)
    assert listener.events.of(Action.REJECTED) == []


async def test_a_listener_process_counting_alone_gives_a_client_its_part(
        tmp_path, nursery, loopback_is_another_host, capsys):
    """review21d R3: listener process 1 of 2 that could not make run/smtp-client-sessions (a
    full disk; here its run/ is missing) counted alone with the whole per-client limit, so
    with process 0's count blind to it too, one host could take every session. Now a client
    has this process's part of the limit here: 8 sessions, 4 a client, 2 in each process."""
    from core.smtp.listener_main import client_sessions
    from shared.paths import DataHome
    sessions = client_sessions(DataHome(tmp_path / "home"), "smtp-client-sessions", 2, 1)
    [said] = capsys.readouterr().err.splitlines()
    assert said.startswith("mailmoat core (SMTP listener 1): cannot count each client's SMTP "
                           "sessions with the other listener processes ("), said
    assert said.endswith("this process counts the sessions it serves alone, a client having "
                         "its part of the per-client limit here, and tries again every "
                         "minute"), said
    listener = await _listen(nursery, tmp_path, smtp__max_incoming=8, server_args={
        "share": 2, "share_index": 1, "client_sessions": sessions})
    held = [await _Client.connect(listener.port) for _ in range(2)]
    refused = await _Client.open(listener.port)
    assert await refused.reply() == R.R421_TOO_MANY_CONNECTIONS.to_bytes()
    [rejected] = listener.events.of(Action.REJECTED)
    assert rejected["info"] == (
        "3 connections at once from this client; a client may have 2: this listener "
        "process's part of half of smtp.max_incoming (4), while it counts its clients' "
        "sessions alone (clients of relay.allowed have no such limit)")
    other = await _Client.connect(listener.port, source="127.0.0.2")     # 3 of its 4 slots
    assert len(held) == 2 and (await other.command(b"NOOP")) == R.R250_OK.to_bytes()


async def _until_sessions(listener: _Listener, client_ip: str, count: int) -> None:
    """Wait until the listener counts `count` sessions of `client_ip`."""
    with trio.fail_after(5):
        while listener.server.client_sessions.of(client_ip) != count:
            await trio.sleep(0.01)


# --- the Received field (finding 4) ------------------------------------------------------

async def _received_field(listener: _Listener, hello: bytes) -> bytes:
    """The Received field the gateway put on a message sent after `hello`."""
    client = await _Client.connect(listener.port)
    assert (await client.command(hello)).startswith(b"250")
    for line in (b"MAIL FROM:<a@client.test>", b"RCPT TO:<b@local.test>", b"DATA"):
        assert (await client.command(line))[:1] in b"23"
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).startswith(b"250 2.0.0")
    await client.command(b"QUIT")
    queue_id, _envelope = listener.accepted[-1]
    with listener.spool.open_message("fast", queue_id) as message:
        head = message.read().split(b"\r\n\t;", 1)[0]
    return head[:head.index(b"\r\nSubject:")]


@pytest.mark.parametrize("argument, shown", [
    (b"trusted.example ([10.9.9.9]) by mx.internal.example with ESMTP id X",
     b"trusted.example??[10.9.9.9]??by?mx.internal.example?with?ESMTP?id?X"),
    (b"a b c", b"a?b?c"),
    (b";rm -rf", b"?rm?-rf"),
    ("h\u00f6st.test".encode(), b"h?st.test"),
    (b"mail-1.client_test.example", b"mail-1.client_test.example"),
    (b"[IPv6:2001:db8::1]", b"[IPv6:2001:db8::1]"),
    (b"x" * 300, b"x" * 255),
])
async def test_the_hello_argument_is_shown_sanitised_in_the_received_field(
        tmp_path, nursery, argument, shown):
    # smtp-security finding 4: the argument went into the field verbatim, so a client could
    # write a forged hop or raw UTF-8 there; the greeting itself is still accepted
    listener = await _listen(nursery, tmp_path)
    received = await _received_field(listener, b"EHLO " + argument)
    assert received.startswith(b"Received: from " + shown + b" ([127.0.0.1])\r\n\tby gw.test ")
    assert received.isascii()
    _queue_id, envelope = listener.accepted[-1]
    assert envelope.client_helo == argument.decode()      # the envelope keeps it as sent


@pytest.mark.parametrize("hello, protocol", [(b"HELO client.test", b"SMTP"),
                                             (b"EHLO client.test", b"ESMTP")])
async def test_received_names_smtp_after_helo_and_esmtp_after_ehlo(tmp_path, nursery, hello,
                                                                   protocol):
    # RFC 5321 §4.4 and RFC 3848: a HELO session was stamped "with ESMTP"
    listener = await _listen(nursery, tmp_path)
    received = await _received_field(listener, hello)
    assert b" (Mailmoat) with " + protocol + b" id " in received


async def test_received_names_utf8smtp_for_a_transaction_that_used_smtputf8(tmp_path, nursery):
    # smtp-conformance finding 1: RFC 6531 §3.7.3 registers UTF8SMTP for such a transaction;
    # it was stamped "with ESMTP"
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    assert (await client.command(b"EHLO client.test")).startswith(b"250")
    for line in ("MAIL FROM:<s\u00e9@client.test> SMTPUTF8".encode(),
                 "RCPT TO:<\u00fc@local.test>".encode(), b"DATA"):
        assert (await client.command(line))[:1] in b"23"
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).startswith(b"250 2.0.0")
    await client.command(b"QUIT")
    queue_id, _envelope = listener.accepted[-1]
    with listener.spool.open_message("fast", queue_id) as message:
        assert b" (Mailmoat) with UTF8SMTP id " in message.read()


async def test_the_received_date_is_utc_with_the_offset_plus_0000(tmp_path, nursery):
    # interop finding 4: it ended in "-0000", which RFC 5322 §3.3 reserves for a time that
    # says nothing about the local zone; bounces and Postfix write "+0000"
    listener = await _listen(nursery, tmp_path)
    received = await _received_field(listener, b"EHLO client.test")
    date = received.rsplit(b";\r\n\t", 1)[1].decode()
    assert date.endswith(" +0000")
    assert parsedate_to_datetime(date).utcoffset() == datetime.timedelta(0)


# --- <Postmaster> (finding 5) ------------------------------------------------------------

async def _mail_to_postmaster(listener: _Listener, rcpt: bytes, *more: bytes):
    client = await _Client.connect(listener.port)
    for line in (b"EHLO client.test", b"MAIL FROM:<a@client.test>", b"RCPT TO:" + rcpt,
                 *(b"RCPT TO:" + other for other in more), b"DATA"):
        assert (await client.command(line))[:1] in b"23", line
    assert (await client.command(b"Subject: for the postmaster\r\n\r\nhello\r\n."))\
        .startswith(b"250 2.0.0")
    await client.command(b"QUIT")
    queue_id, envelope = listener.accepted[-1]
    [accepted] = listener.events.of(Action.ACCEPTED)
    stored = listener.spool.read_envelope("fast", queue_id)
    assert [r.address for r in stored.recipients] == [r.address for r in envelope.recipients]
    return [r.address for r in stored.recipients], accepted["recipients"]


@pytest.mark.parametrize("rcpt", [b"<Postmaster>", b"<postmaster>", b"<@relay.test:POSTMASTER>",
                                  b"<postmaster@gw.test>", b"<PostMaster@GW.test>"])
async def test_mail_for_the_domainless_postmaster_goes_to_the_administrators(tmp_path, nursery,
                                                                           rcpt):
    # smtp-security finding 5: accepted, then relayed as <Postmaster> to routing.default
    # (a third party's postmaster) or bounced "domain not found"
    # (an administrator outside the local domains too: the gateway's choice, not a relay)
    admins = ["admin@example.org", "second@local.test"]
    listener = await _listen(nursery, tmp_path, relay__mode="deny_except", admin__emails=admins,
                             routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                              "port": 9}])
    recipients, in_event = await _mail_to_postmaster(listener, rcpt, b"<second@local.test>")
    assert recipients == admins and in_event == admins     # and each of them once


async def test_without_admin_emails_postmaster_mail_goes_to_the_gateways_postmaster(tmp_path,
                                                                                   nursery):
    listener = await _listen(nursery, tmp_path, relay__mode="deny_except")
    recipients, in_event = await _mail_to_postmaster(listener, b"<Postmaster>")
    assert recipients == in_event == ["postmaster@gw.test"]


# --- the listener's read of the header (finding 6) ---------------------------------------

async def test_the_accepted_event_has_a_subject_that_follows_a_bare_cr(tmp_path, nursery):
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    for line in (b"EHLO client.test", b"MAIL FROM:<a@client.test>", b"RCPT TO:<b@local.test>",
                 b"DATA"):
        assert (await client.command(line))[:1] in b"23"
    assert (await client.command(b"X-A: 1\rSubject: forbidden stuff\r\n\r\nbody\r\n."))\
        .startswith(b"250 2.0.0")
    [accepted] = listener.events.of(Action.ACCEPTED)
    assert accepted["subject"] == "forbidden stuff"
