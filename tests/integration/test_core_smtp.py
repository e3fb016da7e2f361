"""The core end to end: real SMTP clients → the core on loopback → a sink SMTP server.

The core runs in-process under pytest-trio (run_core in the test's nursery); clients are
Python's smtplib in a worker thread and raw sockets. Every home routes only to loopback.
"""

from __future__ import annotations

import email
import smtplib
import socket
import ssl
from email.header import Header
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import greets, make_home, set_settings, store_unchecked
from tests.support.sink import Sink
from tests.support.waiting import events_of as _events, until

pytestmark = pytest.mark.trio


def _message(subject="Hello", to="user@local.test", body="Body line\n.leading dot\n"):
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@client.test>"
    msg.set_content(body)
    return msg


def _send(port, msg, sender="sender@client.test", recipients=("user@local.test",), **kw):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.send_message(msg, from_addr=sender, to_addrs=list(recipients), **kw)




@pytest.fixture
def sink2():
    with Sink() as s:
        yield s


async def _start(nursery, home):
    return await nursery.start(run_core, home)


async def _until(predicate, timeout=10.0):
    await until(predicate, timeout)


def _connect(port, to_data=False) -> socket.socket:
    """A raw client after the greeting, or (to_data) after the 354 to a pipelined
    EHLO, MAIL, RCPT, DATA."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = sock.recv(512)
    if to_data:
        sock.sendall(b"EHLO x\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<user@local.test>\r\n"
                     b"DATA\r\n")
        while b"354" not in data:
            data += sock.recv(4096)
    return sock


async def test_message_to_local_domain_arrives_with_headers_and_received(tmp_path, sink,
                                                                         nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, _message())
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data)
    assert parsed["Subject"] == "Hello"
    assert parsed["Message-ID"] == "<Hello@client.test>"
    assert parsed["Received"].startswith("from ")
    assert "by mailmoat.test (Mailmoat)" in parsed["Received"]
    assert b"\r\n.leading dot\r\n" in received.data  # dot-stuffing survived both hops
    assert received.sender == "sender@client.test"
    assert received.recipients == ["user@local.test"]
    await core.events.aflush()
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    assert _events(home, Action.ACCEPTED)
    assert _events(home, Action.DELIVERED)
    core.cancel_scope.cancel()


async def test_every_event_of_a_message_carries_its_subject(tmp_path, sink, nursery):
    # guide Table 7-6: "Accepted: shows ... the subject"; a search of the detail report by
    # subject must find the message's accepted and delivered rows, not only a finding's
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    subject = "Quarterly figures \u00fcber alles " + " ".join(["word"] * 250)
    encoded = Header(subject, "utf-8").encode(linesep="\r\n")       # RFC 2047, folded
    raw = (f"From: sender@client.test\r\nTo: user@local.test\r\nSubject: {encoded}\r\n"
           f"\r\nbody\r\n").encode()

    def send():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("sender@client.test", ["user@local.test"], raw)

    await trio.to_thread.run_sync(send)
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    for action in (Action.ACCEPTED, Action.DELIVERED, Action.COMPLETED):
        [row] = _events(home, action)
        assert row["subject"] == subject[:998], action
    core.cancel_scope.cancel()


async def test_recipients_on_different_next_hops_are_tracked_separately(tmp_path, sink, sink2,
                                                                        nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "one.test", "relay": "127.0.0.1", "port": sink.port},
        {"match": "two.test", "relay": "127.0.0.1", "port": sink2.port}])
    sink2.rcpt_replies = {"bad@two.test": (550, "5.1.1 no such user")}
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(
        lambda: _send(port, _message(to="a@one.test"),
                      recipients=("a@one.test", "b@two.test", "bad@two.test")))
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await trio.to_thread.run_sync(sink2.wait_for, 1)
    assert sink.messages[0].recipients == ["a@one.test"]
    assert sink2.messages[0].recipients == ["b@two.test"]
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    delivered = {row["recipients"] for row in _events(home, Action.DELIVERED)}
    assert {"a@one.test", "b@two.test"} <= delivered
    failed = [row["recipients"] for row in _events(home, Action.DELIVERY_FAILED)]
    assert "bad@two.test" in failed
    core.cancel_scope.cancel()


async def test_relay_to_non_local_domain_is_refused_with_550(tmp_path, nursery):
    home = make_home(tmp_path)
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def attempt():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            client.mail("a@client.test")
            return client.rcpt("someone@elsewhere.example")

    code, text = await trio.to_thread.run_sync(attempt)
    assert code == 550 and text.startswith(b"5.7.1")
    await core.events.aflush()
    [row] = _events(home, Action.REJECTED)
    assert row["rule"] == "relay.allowed"
    core.cancel_scope.cancel()


async def test_a_session_failing_outside_the_conversation_stops_no_other(tmp_path, nursery,
                                                                        monkeypatch):
    """The conversation log fails to close (a full disk, say) after a client left: that
    session's failure is recorded, and the listener goes on serving the next client."""
    from core.smtp.conversation import ConversationLog

    async def close_fails(self, directory, failures=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ConversationLog, "close", close_fails)
    home = make_home(tmp_path)
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def greeting():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return sock.recv(512)

    for _ in range(2):
        assert (await trio.to_thread.run_sync(greeting)).startswith(b"220")
    def errors():       # (each client hangs up without QUIT: a connection_closed too)
        return [e for e in _events(home, Action.CONNECTION_CLOSED) if e["result"] == "error"]
    await until(lambda: len(errors()) == 2)
    assert "No space left on device" in errors()[0]["info"]
    core.cancel_scope.cancel()


async def test_reject_incoming_takes_effect_within_two_seconds(tmp_path, nursery):
    home = make_home(tmp_path)
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    set_settings(home, delivery__reject_incoming=True)

    def greeting():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return sock.recv(512)

    with trio.fail_after(4):  # 2 s design figure plus margin for a noisy machine
        while not (await trio.to_thread.run_sync(greeting)).startswith(b"421"):
            await trio.sleep(0.1)
    core.cancel_scope.cancel()


async def test_max_incoming_serves_all_clients_but_never_more_than_limit(tmp_path, sink,
                                                                         nursery):
    home = make_home(tmp_path, smtp__max_incoming=2, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def client(i):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo()
            c.noop()
            c.noop()
            c.send_message(_message(subject=f"m{i}"), from_addr="a@client.test",
                           to_addrs=["user@local.test"])

    async with trio.open_nursery() as clients:
        for i in range(5):
            clients.start_soon(trio.to_thread.run_sync, client, i)
    await trio.to_thread.run_sync(sink.wait_for, 5)
    assert core.server.max_active_seen == 2
    core.cancel_scope.cancel()


async def test_inbound_starttls_with_smtplib(tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def send_tls():
        context = ssl.create_default_context(cafile=str(home.tls_cert))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=context)
            client.ehlo()
            assert not client.has_extn("starttls")
            client.send_message(_message(subject="tls"), from_addr="a@client.test",
                                to_addrs=["user@local.test"])

    await trio.to_thread.run_sync(send_tls)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert "with ESMTPS" in email.message_from_bytes(received.data)["Received"]
    core.cancel_scope.cancel()


async def test_size_limit_refused_at_mail_and_after_data(tmp_path, nursery):
    home = make_home(tmp_path, size__enabled=True, size__max_mb=1, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": 9}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def attempt():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == str(1 << 20)
            declared = client.mail("a@client.test", [f"SIZE={2 << 20}"])
            client.rset()
            client.mail("a@client.test")
            client.rcpt("user@local.test")
            client.putcmd("data")
            client.getreply()
            client.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100 + b".\r\n")
            after_data = client.getreply()
            return declared, after_data

    declared, after_data = await trio.to_thread.run_sync(attempt)
    assert declared[0] == 552 and declared[1].startswith(b"5.3.4")
    assert after_data[0] == 552
    assert not list(home.queue("fast").iterdir())
    core.cancel_scope.cancel()


async def test_client_vanishing_mid_data_queues_nothing(tmp_path, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": 9}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def vanish():
        sock = _connect(port, to_data=True)
        sock.sendall(b"Subject: half\r\n\r\nonly half of the mess")
        sock.close()

    await trio.to_thread.run_sync(vanish)
    await _until(lambda: not list(home.queue("incoming").iterdir()))
    assert not list(home.queue("fast").iterdir())
    assert core.counters.values["accepted"] == 0
    core.cancel_scope.cancel()


async def test_conversation_log_written_when_enabled(tmp_path, sink, nursery):
    home = make_home(tmp_path, diagnostics__conversation__inbound="all",
                     diagnostics__conversation__data="summarize", routing__local=[
                         {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, _message())
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await _until(lambda: any(p.name.startswith("inbound-") for p in home.diagnostics.iterdir()))
    [log] = [p for p in home.diagnostics.iterdir() if p.name.startswith("inbound-")]
    text = log.read_text()
    assert "c: mail from:<sender@client.test>" in text.lower()
    assert text.index("<message data,") < text.index("queued as")  # summary before the 250
    assert "Body line" not in text
    core.cancel_scope.cancel()


async def test_recipients_past_1000_are_sent_again_without_a_protocol_violation(tmp_path, sink,
                                                                              nursery):
    # interop finding 3: each RCPT past 1000 wrote a protocol_violation event (and a line in
    # the SMTP Protocol Violation alert) citing "SPEC §4"; a client that sends the 452'd
    # ones again in a new transaction, as Postfix does, breaks no rule (RFC 5321
    # §4.5.3.1.10)
    home = make_home(tmp_path, diagnostics__conversation__inbound="all",
                     alerts__smtp_protocol_violation=True, routing__local=[
                         {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]
    everyone = [f"u{n}@local.test" for n in range(1010)]
    raw = _message(to="list@local.test").as_bytes()

    def send_as_postfix_does() -> list[int]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            todo, codes = everyone, []
            while todo:
                client.mail("sender@client.test")
                replies = [client.rcpt(address)[0] for address in todo]
                codes += replies
                client.data(raw)
                todo = [a for a, code in zip(todo, replies) if code == 452]
            return codes

    codes = await trio.to_thread.run_sync(send_as_postfix_does)
    assert codes == [250] * 1000 + [452] * 10 + [250] * 10
    await _until(lambda: sum(len(m.recipients) for m in sink.messages) == 1010)
    await _until(lambda: any(p.name.startswith("inbound-") for p in home.diagnostics.iterdir()))
    await core.events.aflush()
    assert _events(home, Action.PROTOCOL_VIOLATION) == []
    assert [len(e["recipients"].split(";")) for e in _events(home, Action.ACCEPTED)] == [1000, 10]
    [log] = [p for p in home.diagnostics.iterdir() if p.name.startswith("inbound-")]
    notes = [line for line in log.read_text().splitlines() if "more than 1000" in line]
    assert len(notes) == 1 and " -- " in notes[0]
    assert " !! " not in log.read_text()
    core.cancel_scope.cancel()


async def test_conversation_log_off_writes_nothing(tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core = await _start(nursery, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], _message())
    await trio.to_thread.run_sync(sink.wait_for, 1)
    assert not [p for p in home.diagnostics.iterdir() if p.name.startswith("inbound-")]
    core.cancel_scope.cancel()


@pytest.mark.parametrize("stage", ["command", "data"])
async def test_an_idle_client_gets_421_timeout_and_is_closed(tmp_path, nursery, monkeypatch,
                                                             stage):
    from core.smtp import session
    monkeypatch.setattr(session, "COMMAND_IDLE_SECONDS", 0.5)
    monkeypatch.setattr(session, "DATA_IDLE_SECONDS", 0.5)
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": 9}])
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def idle():
        sock = _connect(port, to_data=stage == "data")
        data = b""
        while chunk := sock.recv(4096):         # the server speaks, then closes
            data += chunk
        sock.close()
        return data

    reply = await trio.to_thread.run_sync(idle)
    assert reply.startswith(b"421 4.4.2")
    core.cancel_scope.cancel()


# --- rebinding (operations report B1, B2) ----------------------------------------------------

async def test_a_rebind_that_cannot_bind_keeps_listening_where_it_was(tmp_path, nursery):
    """Regression (operations B1): a port another program holds, or an address the host
    lacks, crashed the core; now the listener stays, an event says why, and the next change
    is tried again."""
    home = make_home(tmp_path)
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def failures():
        return [e["info"] for e in _events(home, Action.SERVICE_START_FAILED)]

    with socket.socket() as holder:         # another program on the new port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        set_settings(home, smtp__port=taken)
        await _until(lambda: len(failures()) == 1)
        assert failures()[0] == (f"cannot listen for SMTP on 127.0.0.1:{taken} (Address "
                                 f"already in use); still listening on 127.0.0.1:{port} "
                                 f"until smtp.port or smtp.listen changes")
        assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)

    set_settings(home, smtp__port=port, smtp__listen=["192.0.2.1"])  # TEST-NET-1: not ours
    await _until(lambda: len(failures()) == 2)
    assert "192.0.2.1" in failures()[1] and "Cannot assign requested address" in failures()[1]
    assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)

    # Same port, one more address: our own 127.0.0.1 socket is in the way of the new one.
    set_settings(home, smtp__listen=["127.0.0.1", "127.0.0.2"])
    await _until(lambda: core.server.bound == [("127.0.0.1", port), ("127.0.0.2", port)])
    assert await trio.to_thread.run_sync(greets, "127.0.0.2", port)
    assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)
    assert len(failures()) == 2
    core.cancel_scope.cancel()


async def test_a_core_that_cannot_listen_at_start_raises_listen_failed(tmp_path):
    from core.smtp.listen_sockets import ListenFailed
    from shared.cli import sole_exception
    home = make_home(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        set_settings(home, smtp__port=taken)
        with pytest.raises(BaseExceptionGroup) as raised, trio.fail_after(30):
            await run_core(home)
    failure = sole_exception(raised.value)      # what `mailmoat core` prints
    assert isinstance(failure, ListenFailed)
    assert str(failure) == (f"cannot listen for SMTP on 127.0.0.1:{taken} (Address already in use)")
    assert "Address already in use" in _events(home, Action.SERVICE_START_FAILED)[0]["info"]
    assert not (home.run / "core.running").exists()   # no improper shutdown next time


async def test_a_second_core_on_one_data_home_refuses_to_start(tmp_path, nursery):
    """Regression (operations B2): two cores delivered the same spool twice."""
    import os
    from core.app import CoreAlreadyRunning
    home = make_home(tmp_path)
    core = await _start(nursery, home)
    with pytest.raises(CoreAlreadyRunning, match=rf"^another Mailmoat core is running on "
                                                 rf"this data home \(pid {os.getpid()}\)$"):
        await run_core(home)
    core.cancel_scope.cancel()


async def test_a_stored_match_all_routing_entry_defers_relaying_instead_of_opening_it(
        tmp_path, nursery, sink, capfd):
    """Upgrade16 finding 3: routing.local '*', stored by an older release (today's rules
    refuse it as an open relay), still made every domain local after the upgrade: a client
    not in relay.allowed got 250 for bob@remote.test and the mail was delivered. The relay
    check now leaves the entry out and answers 451 4.7.1 (senders retry while the setting is
    fixed); a relay.allowed client is routed by it as before; the core says so at start."""
    home = make_home(tmp_path, relay__allowed=["127.0.0.1"])
    store_unchecked(home, {"routing.local": [
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port},
        {"match": "*", "relay": "127.0.0.1", "port": sink.port}]})
    core = await _start(nursery, home)
    port = core.smtp_addresses[0][1]

    def recipients(source):
        with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0)) as client:
            client.ehlo("client.test")
            client.mail("a@client.test")
            return [client.rcpt(address) for address in
                    ("bob@remote.test", "user@local.test", "x@[203.0.113.5]")]

    outside = await trio.to_thread.run_sync(recipients, "127.0.0.5")
    assert outside[0][0] == 451
    assert outside[0][1].startswith(b"4.7.1 Relaying deferred: a routing.local entry")
    assert outside[1][0] == 250 and outside[2][0] == 550
    await _until(lambda: len(_events(home, Action.REJECTED)) == 2, timeout=10)
    deferred, denied = sorted(_events(home, Action.REJECTED), key=lambda row: row["rule"],
                              reverse=True)
    assert deferred["rule"] == "routing.local" and deferred["recipients"] == "bob@remote.test"
    assert denied["rule"] == "relay.allowed" and denied["recipients"] == "x@[203.0.113.5]"
    assert deferred["info"].startswith("routing.local entry '*' is refused by this version: "
                                       "fix the setting")

    def relayed():
        msg = _message("Relayed", to="bob@remote.test")
        with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.1", 0)) as c:
            return c.send_message(msg, from_addr="a@client.test", to_addrs=["bob@remote.test"])

    assert await trio.to_thread.run_sync(relayed) == {}
    [delivered] = await sink.await_messages(1)
    assert delivered.recipients == ["bob@remote.test"]

    await core.events.aflush()
    [notice] = [row for row in _events(home, Action.SERVICE_START_FAILED)
                if row["rule"] == "routing.local"]
    assert "routing.local entry '*' is refused by this version" in notice["info"]
    assert "deferred (451 4.7.1)" in notice["info"]
    assert capfd.readouterr().err.count("mailmoat core: routing.local entry '*'") == 1
    core.cancel_scope.cancel()
