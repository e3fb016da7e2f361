"""What the SMTP listener writes when it refuses (events findings B1, B2, C1): real clients on
loopback → the core in-process → its events table and counters.

- A DATA behind refused recipients is answered 554 5.5.1 and is no protocol violation, from
  a pipelining client (RFC 2920 §3.1: Postfix, Exim, swaks --pipeline) or not. Before, it
  was a `protocol_violation` ("DATA not allowed in state MAIL"), counted on the Status page
  and raising the SMTP Protocol Violation alert for every relay attempt from an MTA.
- A text line over 1000 octets is a protocol violation, counted and logged (SPEC §4), and
  its `rejected` event, like the size refusals', gives the reason and the Subject. Before:
  no violation, and `rejected` rows with empty info and subject; the 552 to a SIZE= over
  the limit had no sender.
- A refused recipient's `rejected` event carries the time of the refusal. Before, it had
  the time of the RSET or QUIT that settled it, and sorted after what followed it.
"""

from __future__ import annotations

import smtplib
import socket

import pytest
import trio

from core.app import run_core
from tests.support.core import make_home
from tests.support.waiting import events_of, until
from shared.events import Action

pytestmark = pytest.mark.trio

LOCAL = {"match": "local.test", "relay": "127.0.0.1", "port": 9}   # nothing is delivered


async def _core(nursery, home):
    core = await nursery.start(run_core, home)
    return core, core.smtp_addresses[0][1]


class _Raw:
    """A raw SMTP client on a blocking socket (run it in a thread): sends bytes as they
    are, so several commands go in one write as a pipelining client sends them."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        assert self.reply().startswith(b"220 ")

    def reply(self) -> bytes:
        while True:
            end = 0
            while (newline := self.buffer.find(b"\n", end)) >= 0:
                line, end = self.buffer[end:newline + 1], newline + 1
                if line[3:4] != b"-":
                    reply, self.buffer = self.buffer[:end], self.buffer[end:]
                    return reply
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.buffer += data

    def batch(self, *lines: bytes) -> list[bytes]:
        """Send `lines` in one write; their replies' last lines."""
        self.sock.sendall(b"".join(line + b"\r\n" for line in lines))
        return [self.reply().splitlines()[-1] for _ in lines]

    def close(self) -> None:
        self.batch(b"QUIT")
        self.sock.close()


@pytest.mark.parametrize("pipelined", [True, False])
@pytest.mark.parametrize("recipient,code", [("x@outside.test", b"550"),
                                            ("a!b@local.test", b"553")])
async def test_data_behind_refused_recipients_gets_554_and_is_no_protocol_violation(
        tmp_path, nursery, pipelined, recipient, code):
    home = make_home(tmp_path, routing__local=[LOCAL], alerts__smtp_protocol_violation=True,
                     address_chars__enabled=True, address_chars__chars="!")
    core, port = await _core(nursery, home)
    commands = [b"MAIL FROM:<a@client.test>", b"RCPT TO:<%s>" % recipient.encode(), b"DATA"]

    def attempt() -> list[bytes]:
        client = _Raw(port)
        client.batch(b"EHLO client.test")
        if pipelined:
            replies = client.batch(*commands)
        else:
            replies = [client.batch(command)[0] for command in commands]
        client.close()
        return replies

    replies = await trio.to_thread.run_sync(attempt)
    assert [reply[:3] for reply in replies] == [b"250", code, b"554"]
    assert replies[2].startswith(b"554 5.5.1 ")
    [rejected] = await until(lambda: events_of(home, Action.REJECTED), flush=core.events.aflush)
    assert rejected["result"] == code.decode() and rejected["recipients"] == recipient
    await until(lambda: events_of(home, Action.DISCONNECTED), flush=core.events.aflush)
    assert events_of(home, Action.PROTOCOL_VIOLATION) == []
    assert core.counters.values["protocol_violations"] == 0
    core.cancel_scope.cancel()


@pytest.mark.parametrize("head,subject", [
    (b"Subject: long\r\n\r\n", "long"),                       # the line in the body
    (b"Subject: early\r\nX-Long: ", "early"),                 # in the header, after it
    (b"X-Long: ", None),                                     # before the Subject field
])
async def test_a_line_over_1000_octets_is_a_counted_violation_and_a_rejection_with_its_reason(
        tmp_path, nursery, head, subject):
    home = make_home(tmp_path, routing__local=[LOCAL], alerts__smtp_protocol_violation=True)
    core, port = await _core(nursery, home)
    message = head + b"y" * 1500 + b"\r\nSubject: too late\r\n\r\nbody\r\n."

    def attempt() -> list[bytes]:
        client = _Raw(port)
        replies = client.batch(b"EHLO client.test", b"MAIL FROM:<a@client.test>",
                               b"RCPT TO:<bob@local.test>", b"DATA")
        replies += client.batch(message)
        client.close()
        return replies

    replies = await trio.to_thread.run_sync(attempt)
    assert replies[-2:] == [b"354 End data with <CR><LF>.<CR><LF>",
                            b"554 5.6.0 Message has a line over 1000 octets"]
    [rejected] = await until(lambda: events_of(home, Action.REJECTED), flush=core.events.aflush)
    [violation] = events_of(home, Action.PROTOCOL_VIOLATION)
    assert (violation["rule"], violation["result"]) == ("text_line_too_long", "554")
    assert "1000 octets" in violation["info"]
    assert (violation["sender"], violation["recipients"]) == ("a@client.test", "bob@local.test")
    assert (rejected["rule"], rejected["result"]) == ("smtp.max_text_line", "554")
    assert rejected["info"] == violation["info"]
    assert rejected["subject"] == violation["subject"] == subject
    assert violation["id"] < rejected["id"]       # the violation, then the refusal it caused
    assert core.counters.values["protocol_violations"] == 1
    assert core.counters.values["rejected"] == 1
    core.cancel_scope.cancel()


async def test_size_refusals_name_the_sender_the_reason_and_the_subject(tmp_path, nursery):
    home = make_home(tmp_path, size__enabled=True, size__max_mb=1, routing__local=[LOCAL])
    core, port = await _core(nursery, home)

    def attempt():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo()
            declared = client.mail("a@client.test", [f"SIZE={2 << 20}"])
            client.rset()
            client.mail("b@client.test")
            client.rcpt("user@local.test")
            client.putcmd("data")
            client.getreply()
            client.send(b"Subject: big one\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100 + b".\r\n")
            return declared, client.getreply()

    declared, after_data = await trio.to_thread.run_sync(attempt)
    assert declared[0] == after_data[0] == 552
    at_mail, at_data = await until(lambda: len(rows := events_of(home, Action.REJECTED)) == 2
                                   and rows, flush=core.events.aflush)
    assert (at_mail["rule"], at_mail["result"], at_mail["sender"]) == (
        "size.max_mb", "552", "a@client.test")
    assert f"SIZE={2 << 20}" in at_mail["info"] and str(1 << 20) in at_mail["info"]
    assert (at_data["rule"], at_data["result"], at_data["sender"]) == (
        "size.max_mb", "552", "b@client.test")
    assert at_data["subject"] == "big one"
    assert str(at_data["size"]) in at_data["info"] and str(1 << 20) in at_data["info"]
    assert events_of(home, Action.PROTOCOL_VIOLATION) == []
    core.cancel_scope.cancel()


async def test_a_refused_recipient_is_stamped_when_refused_not_when_settled(tmp_path, nursery):
    # the unknown command after the refusal, and the RSET after that, stand for a client
    # that goes on talking for minutes: the refusal sorts first, as it happened
    home = make_home(tmp_path, routing__local=[LOCAL])
    core, port = await _core(nursery, home)

    def attempt() -> list[bytes]:
        client = _Raw(port)
        replies = [client.batch(line)[0] for line in (
            b"EHLO client.test", b"MAIL FROM:<a@client.test>", b"RCPT TO:<x@outside.test>",
            b"NONSENSE", b"RSET")]
        client.close()
        return replies

    replies = await trio.to_thread.run_sync(attempt)
    assert [reply[:3] for reply in replies] == [b"250", b"250", b"550", b"500", b"250"]
    [rejected] = await until(lambda: events_of(home, Action.REJECTED), flush=core.events.aflush)
    [violation] = events_of(home, Action.PROTOCOL_VIOLATION)
    [connected] = events_of(home, Action.CONNECTION_FROM)
    # the reports' order: by time, then id
    in_report_order = sorted([rejected, violation, connected],
                             key=lambda row: (row["time"], row["id"]))
    assert [row["action"] for row in in_report_order] == [
        "connection_from", "rejected", "protocol_violation"]
    core.cancel_scope.cancel()
