"""Our client talks to our server in memory (h11's ConnectionPair idea), plus
Hypothesis: whatever bytes arrive, server and client only yield events/replies."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.smtp import (
    NEED_DATA,
    R220_READY,
    R220_READY_TO_START_TLS,
    R250_QUEUED,
    R250_RECIPIENT_OK,
    R250_SENDER_OK,
    R354_START_DATA,
    R421_TIMEOUT,
    R550_RELAY_DENIED,
    R552_SIZE_EXCEEDED,
    R554_LINE_TOO_LONG_IN_DATA,
    ClientConnection,
    ClientState,
    Command,
    ConnectionClosed,
    DataChunk,
    DataComplete,
    DataRequested,
    Event,
    LocalProtocolError,
    MailFrom,
    Outcome,
    ProtocolViolation,
    RcptTo,
    ServerConnection,
    ServerReply,
    StartTlsRequested,
    State,
)
from core.smtp.readers import ReplyReader


class Pair:
    """A server with a small scripted app, and a client; bytes move by hand."""

    def __init__(self, *, denied=(), max_message_octets=None, tls_available=False):
        self.server = ServerConnection("mx.test", max_message_octets=max_message_octets,
                                       tls_available=tls_available, size_advertised=max_message_octets)
        self.client = ClientConnection("gw.test")
        self.denied = set(denied)
        self.received = bytearray()
        self.server_events: list[Event] = []
        self.to_client = bytearray(self.server.send(R220_READY("mx.test")))
        self.to_server = bytearray()

    def app_reply(self, event):
        if isinstance(event, MailFrom):
            # the session's size policy at MAIL (core/smtp/policy.py check_declared_size)
            limit = self.server.max_message_octets
            if limit is not None and event.params.get("SIZE", 0) > limit:
                return R552_SIZE_EXCEEDED
            return R250_SENDER_OK
        if isinstance(event, RcptTo):
            return R550_RELAY_DENIED if event.address in self.denied else R250_RECIPIENT_OK
        if isinstance(event, DataRequested):
            return R354_START_DATA
        if isinstance(event, StartTlsRequested):
            return R220_READY_TO_START_TLS
        assert isinstance(event, DataComplete)
        if event.line_too_long:
            return R554_LINE_TOO_LONG_IN_DATA
        if event.size_exceeded:
            return R552_SIZE_EXCEEDED
        return R250_QUEUED("Q42")

    def pump_server(self):
        if self.to_server:  # b"" would mean "peer closed"
            self.server.receive_data(bytes(self.to_server))
            self.to_server.clear()
        while self.server.state not in (State.CLOSED, State.STARTTLS_HANDSHAKE):
            event = self.server.next_event()
            self.to_client += self.server.data_to_send()
            if event is NEED_DATA:
                break
            self.server_events.append(event)
            if isinstance(event, DataChunk):
                self.received += event.data
            if self.server.awaiting_reply is not None:
                self.to_client += self.server.send(self.app_reply(event))

    def client_events(self) -> list:
        """Run the server on what the client sent, then return the client's events."""
        self.pump_server()
        if self.to_client:
            self.client.receive_data(bytes(self.to_client))
            self.to_client.clear()
        events = []
        while (event := self.client.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ConnectionClosed):
                break
        return events

    def send(self, data: bytes):
        self.to_server += data

    def hello(self):
        assert self.client_events()[0].reply.code == 220
        self.send(self.client.ehlo())
        assert self.client_events()[0].reply.code == 250


def test_full_pipelined_transaction_round_trips_dot_stuffed_lines():
    pair = Pair()
    pair.hello()
    assert pair.client.supports_pipelining
    content = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nnormal\r\n. space\r\n"
    pair.send(pair.client.mail("s@x.example", size=len(content)) + pair.client.rcpt("r@y.example")
              + pair.client.data())
    events = pair.client_events()
    assert [e.reply.code for e in events] == [250, 250, 354]
    pair.send(pair.client.encode_data_chunk(content) + pair.client.end_data() + pair.client.quit())
    events = pair.client_events()
    assert [e.reply.code for e in events[:2]] == [250, 221]
    assert isinstance(events[2], ConnectionClosed)
    assert events[0].reply == R250_QUEUED("Q42")
    assert bytes(pair.received) == content
    assert pair.client.transaction.outcomes() == {"r@y.example": (Outcome.DELIVERED, R250_QUEUED("Q42"))}
    assert pair.client.state is ClientState.CLOSED and pair.server.state is State.CLOSED


def test_transaction_without_pipelining_waits_for_each_reply():
    pair = Pair()
    pair.hello()
    del pair.client.extensions["PIPELINING"]  # act like a client to a server without it
    pair.send(pair.client.mail("s@x.example"))
    assert pair.client_events()[0].reply == R250_SENDER_OK
    for recipient in ("a@y.example", "b@y.example"):
        pair.send(pair.client.rcpt(recipient))
        assert pair.client_events()[0].reply == R250_RECIPIENT_OK
    pair.send(pair.client.data())
    assert pair.client_events()[0].reply == R354_START_DATA
    pair.send(pair.client.encode_data_chunk(b"line one\nline two") + pair.client.end_data())
    assert pair.client_events()[0].reply.code == 250
    assert bytes(pair.received) == b"line one\r\nline two\r\n"


def test_refused_recipient_is_failed_while_the_others_are_delivered():
    pair = Pair(denied={"b@y.example"})
    pair.hello()
    client = pair.client
    pair.send(client.mail("s@x.example") + client.rcpt("a@y.example") + client.rcpt("b@y.example")
              + client.rcpt("c@y.example") + client.data())
    pair.client_events()
    pair.send(client.encode_data_chunk(b"hello\r\n") + client.end_data())
    pair.client_events()
    outcomes = {r: o for r, (o, _) in client.transaction.outcomes().items()}
    assert outcomes == {"a@y.example": Outcome.DELIVERED, "b@y.example": Outcome.FAILED,
                        "c@y.example": Outcome.DELIVERED}


def test_all_recipients_refused_means_data_is_refused_and_no_content_is_sent():
    pair = Pair(denied={"a@y.example"})
    pair.hello()
    client = pair.client
    pair.send(client.mail("s@x.example") + client.rcpt("a@y.example") + client.data())
    events = pair.client_events()
    assert [e.reply.code for e in events] == [250, 550, 554]
    assert client.state is ClientState.READY
    pair.send(client.rset())
    assert pair.client_events()[0].reply.code == 250 and pair.server.state is State.READY


def test_oversized_message_is_refused_with_552_after_the_data_and_the_session_stays_usable():
    pair = Pair(max_message_octets=50)
    pair.hello()
    client = pair.client
    assert client.max_message_octets == 50
    pair.send(client.mail("s@x.example") + client.rcpt("a@y.example") + client.data())
    pair.client_events()
    pair.send(client.encode_data_chunk(b"x" * 40 + b"\r\n" + b"y" * 40 + b"\r\n") + client.end_data())
    assert pair.client_events()[0].reply == R552_SIZE_EXCEEDED
    pair.send(client.mail("s@x.example", size=51))
    assert pair.client_events()[0].reply == R552_SIZE_EXCEEDED


def test_starttls_in_memory_resets_both_sides():
    pair = Pair(tls_available=True)
    pair.hello()
    pair.send(pair.client.starttls())
    assert pair.client_events()[0].reply == R220_READY_TO_START_TLS
    pair.server.start_tls_done()   # the "handshake" of an in-memory pair
    pair.client.start_tls_done()
    pair.send(pair.client.ehlo())
    pair.client_events()
    assert pair.client.is_tls and pair.server.is_tls
    assert "STARTTLS" not in pair.client.extensions and "PIPELINING" in pair.client.extensions


def test_server_timeout_reaches_the_client_as_unsolicited_421():
    pair = Pair()
    pair.hello()
    pair.to_client += pair.server.send(R421_TIMEOUT)
    events = pair.client_events()
    assert events[0] == ServerReply(Command.UNSOLICITED, "", R421_TIMEOUT)
    assert pair.client.state is ClientState.CLOSED


# --- properties --------------------------------------------------------------------------------

CONTENT = st.binary(max_size=400) | st.lists(
    st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"a", b"MAIL FROM:<x@y>", b" "]),
    max_size=60).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(content=CONTENT, split=st.integers(min_value=1, max_value=50))
def test_any_content_round_trips_through_client_encoder_and_server_reader(content, split):
    pair = Pair()
    pair.hello()
    client = pair.client
    pair.send(client.mail("s@x.example") + client.rcpt("a@y.example") + client.data())
    pair.client_events()
    for i in range(0, len(content), split):
        pair.send(client.encode_data_chunk(content[i:i + split]))
    pair.send(client.end_data())
    events = pair.client_events()
    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", content)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert events[0].reply.code == 250
    assert bytes(pair.received) == expected
    assert [e for e in pair.server_events if isinstance(e, DataComplete)][0].bare_line_endings is False


COMMANDISH = st.lists(
    st.sampled_from([b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n",
                     b"DATA\r\n", b".\r\n", b"\r\n.\r\n", b"RSET\r\n", b"STARTTLS\r\n", b"\n.\n",
                     b"\x00", b"\xff", b"\r", b"\n", b"NOOP", b" SIZE=99999999999", b"QUIT\r\n",
                     b"<", b">", b'"', b"x" * 600]),
    max_size=40).map(b"".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=2000) | COMMANDISH, split=st.integers(min_value=1, max_value=64),
       reject=st.booleans())
def test_random_bytes_only_ever_yield_events_and_replies(data, split, reject):
    server = ServerConnection("mx.test", max_message_octets=500, tls_available=True,
                              max_unknown_commands=5)
    server.send(R220_READY("mx.test"))
    out = bytearray()
    pieces = [data[i:i + split] for i in range(0, len(data), split)] + [b""]
    for _ in range(10_000):
        if server.state is State.STARTTLS_HANDSHAKE:
            server.start_tls_done()
        event = server.next_event()
        out += server.data_to_send()
        if event is NEED_DATA:
            assert pieces, "NEED_DATA after the peer closed"
            server.receive_data(pieces.pop(0))
            continue
        assert isinstance(event, Event)
        if isinstance(event, ConnectionClosed):
            break
        if server.awaiting_reply is not None:
            reply = Pair().app_reply(event)
            if reject and not isinstance(event, DataComplete):
                reply = R550_RELAY_DENIED if not isinstance(event, StartTlsRequested) else R421_TIMEOUT
            out += server.send(reply)
    else:
        pytest.fail("the server never finished")
    assert server.state is State.CLOSED
    # Every byte we wrote is a well-formed reply: our client's reader takes all of it.
    reader, buffer = ReplyReader(512, 100), bytearray(out)
    while reader.next_reply(buffer) is not None:
        pass
    assert buffer == bytearray()


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1500) | st.lists(st.sampled_from(
    [b"250", b"-", b" ", b"2.0.0", b"\r\n", b"\n", b"421 x\r\n", b"354", b"x"]), max_size=50
).map(b"".join), split=st.integers(min_value=1, max_value=64))
def test_random_server_bytes_only_ever_yield_client_events(data, split):
    client = ClientConnection("gw.test")
    pieces = [data[i:i + split] for i in range(0, len(data), split)] + [b""]
    for _ in range(10_000):
        event = client.next_event()
        if event is NEED_DATA:
            client.receive_data(pieces.pop(0))
            continue
        assert isinstance(event, Event)
        if isinstance(event, (ConnectionClosed, ProtocolViolation)):
            break
        if client.state is ClientState.GREETED:
            client.ehlo()
        elif client.state is ClientState.READY:
            try:
                client.noop()
            except LocalProtocolError:
                pass
    else:
        pytest.fail("the client never finished")
    assert client.state is ClientState.CLOSED
