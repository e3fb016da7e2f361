"""Sans-IO server: feed bytes, assert events; send replies, assert bytes.

Every reader test runs three ways (h11's test_io.py): the input whole, one
byte at a time, and with trailing data (an unfinished next command) that must
neither change the events nor be lost.
"""

from __future__ import annotations

import pytest

from core.smtp import (
    NEED_DATA,
    R220_READY,
    R220_READY_TO_START_TLS,
    R250_OK,
    R250_QUEUED,
    R250_RECIPIENT_OK,
    R250_SENDER_OK,
    R354_START_DATA,
    R421_SERVICE_NOT_AVAILABLE,
    R421_TIMEOUT,
    R451_LOCAL_ERROR,
    R454_TLS_NOT_AVAILABLE,
    R550_RELAY_DENIED,
    R552_SIZE_EXCEEDED,
    R554_LINE_TOO_LONG_IN_DATA,
    ConnectionClosed,
    DataChunk,
    DataComplete,
    DataRequested,
    Ehlo,
    LocalProtocolError,
    MailFrom,
    ProtocolViolation,
    Quit,
    RcptTo,
    Reply,
    Rset,
    ServerConnection,
    StartTlsRequested,
    State,
    ViolationKind,
    render_table,
)
from core.smtp.events import RecipientLimitReached, UnsupportedCommand

HOST = "mx.test"
MODES = ["whole", "bytewise", "trailing"]
TRAILING = b"NOO"  # an unfinished next command


def accept_all(event):
    return {
        MailFrom: R250_SENDER_OK,
        RcptTo: R250_RECIPIENT_OK,
        DataRequested: R354_START_DATA,
        DataComplete: R250_QUEUED("Q1"),
        StartTlsRequested: R220_READY_TO_START_TLS,
    }[type(event)]


def new_conn(**kwargs) -> ServerConnection:
    conn = ServerConnection(HOST, **kwargs)
    assert conn.send(R220_READY(HOST)) == b"220 mx.test ESMTP Mailmoat\r\n"
    return conn


def drive(conn, data: bytes, mode: str = "whole", respond=accept_all):
    """Feed `data`, answer app-decided events with `respond`; return
    (events with DataChunks merged, every byte written to the peer)."""
    if mode == "trailing":
        data += TRAILING
    pieces = [data[i:i + 1] for i in range(len(data))] if mode == "bytewise" else [data]
    pieces = [piece for piece in pieces if piece]  # b"" would mean "peer closed"
    events, out = [], bytearray()
    while True:
        if conn.state is State.STARTTLS_HANDSHAKE:
            break
        event = conn.next_event()
        out += conn.data_to_send()
        if event is NEED_DATA:
            if not pieces:
                break
            conn.receive_data(pieces.pop(0))
            continue
        if isinstance(event, ConnectionClosed):
            events.append(event)
            break
        if isinstance(event, DataChunk) and events and isinstance(events[-1], DataChunk):
            events[-1] = DataChunk(events[-1].data + event.data)
        else:
            events.append(event)
        if conn.awaiting_reply is not None:
            out += conn.send(respond(event))
        if conn.state is State.CLOSED:
            break
    return events, bytes(out)


def codes(out: bytes) -> list[int]:
    """The reply codes in `out`, one per reply (continuation lines skipped)."""
    return [int(line[:3]) for line in out.split(b"\r\n") if line and line[3:4] != b"-"]


def violations(events):
    return [e for e in events if isinstance(e, ProtocolViolation)]


EHLO = b"EHLO client.test\r\n"
TRANSACTION = (b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
               b"Subject: hi\r\n\r\nbody\r\n.\r\n")


# --- greeting -----------------------------------------------------------------------

def test_next_event_before_greeting_is_a_local_error():
    conn = ServerConnection(HOST)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    assert conn.state is State.CONNECTED


def test_greeting_421_closes_the_session():
    conn = ServerConnection(HOST)
    assert conn.send(R421_SERVICE_NOT_AVAILABLE).startswith(b"421 4.3.2 ")
    assert conn.state is State.CLOSED
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_greeting_with_a_non_220_positive_reply_is_a_local_error():
    conn = ServerConnection(HOST)
    with pytest.raises(LocalProtocolError):
        conn.send(R250_OK)
    assert conn.state is State.CONNECTED


def test_bytes_sent_before_the_greeting_are_kept_for_after_it():
    conn = ServerConnection(HOST)
    conn.receive_data(EHLO)
    conn.send(R220_READY(HOST))
    assert conn.next_event() == Ehlo("client.test", True)


# --- EHLO / HELO --------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_ehlo_reply_lists_extensions_without_enhanced_codes(mode):
    conn = new_conn(tls_available=True, size_advertised=10_000_000)
    events, out = drive(conn, EHLO, mode)
    assert events == [Ehlo("client.test", is_extended=True)]
    assert out == (b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n"
                   b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 HELP\r\n")
    assert conn.state is State.READY


def test_ehlo_without_tls_offers_plain_size_and_no_starttls():
    conn = new_conn()
    _, out = drive(conn, EHLO)
    assert b"250-SIZE\r\n" in out and b"STARTTLS" not in out


def test_helo_replies_one_line_and_is_not_extended():
    conn = new_conn()
    events, out = drive(conn, b"HELO client.test\r\n")
    assert events == [Ehlo("client.test", is_extended=False)]
    assert out == b"250 mx.test\r\n"


def test_ehlo_without_domain_replies_501():
    conn = new_conn()
    events, out = drive(conn, b"EHLO\r\n")
    assert codes(out) == [501] and conn.state is State.GREETED
    assert violations(events)[0].kind is ViolationKind.SYNTAX


def test_ehlo_resets_the_transaction():
    conn = new_conn()
    drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\n")
    assert conn.state is State.MAIL
    events, out = drive(conn, EHLO + b"MAIL FROM:<c@d.example>\r\n")
    assert codes(out) == [250, 250] and events[1] == MailFrom("c@d.example", {})


# --- a whole transaction ------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_full_transaction_yields_events_in_order(mode):
    conn = new_conn()
    events, out = drive(conn, EHLO + TRANSACTION + b"QUIT\r\n", mode)
    assert events == [
        Ehlo("client.test", True),
        MailFrom("a@example.org", {}),
        RcptTo("b@example.net", {}),
        DataRequested(),
        DataChunk(b"Subject: hi\r\n\r\nbody\r\n"),
        DataComplete(size=21),
        Quit(),
    ]
    assert codes(out) == [250, 250, 250, 354, 250, 221]
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("mode", MODES)
def test_pipelined_replies_go_out_in_command_order(mode):
    conn = new_conn()
    data = (EHLO + b"NOOP\r\nMAIL FROM:<a@x.example>\r\nVRFY bob\r\nRCPT TO:<b@y.example>\r\n"
            b"RCPT TO:<c@y.example>\r\nHELP\r\nDATA\r\n")
    refuse_c = lambda e: R550_RELAY_DENIED if e == RcptTo("c@y.example", {}) else accept_all(e)
    events, out = drive(conn, data, mode, respond=refuse_c)
    assert codes(out) == [250, 250, 250, 252, 250, 550, 214, 354]
    assert conn.state is State.DATA
    assert conn.recipient_count == 1


def test_next_event_while_a_reply_is_owed_is_a_local_error():
    conn = new_conn()
    conn.receive_data(EHLO + b"MAIL FROM:<a@b.example>\r\nNOOP\r\n")
    conn.next_event()
    assert isinstance(conn.next_event(), MailFrom)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    assert conn.state is State.READY and conn.awaiting_reply is MailFrom


def test_send_with_nothing_awaiting_is_a_local_error():
    conn = new_conn()
    drive(conn, EHLO)
    with pytest.raises(LocalProtocolError):
        conn.send(R250_OK)
    assert conn.state is State.READY


def test_send_of_a_reply_that_does_not_fit_the_event_is_a_local_error():
    conn = new_conn()
    conn.receive_data(EHLO + b"MAIL FROM:<a@b.example>\r\n")
    conn.next_event(), conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(R354_START_DATA)
    assert conn.state is State.READY and conn.awaiting_reply is MailFrom
    conn.send(R250_SENDER_OK)
    assert conn.state is State.MAIL


def test_send_returns_protocol_replies_queued_before_the_app_reply():
    conn = new_conn()
    conn.receive_data(b"NOOP\r\n" + EHLO + b"MAIL FROM:<>\r\n")
    assert conn.next_event() == Ehlo("client.test", True)
    assert conn.next_event() == MailFrom("", {})
    out = conn.send(R250_SENDER_OK)
    assert codes(out) == [250, 250, 250] and out.endswith(b"250 2.1.0 Sender OK\r\n")
    assert conn.data_to_send() == b""


def test_rejected_mail_leaves_state_ready():
    conn = new_conn()
    drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\n", respond=lambda e: R451_LOCAL_ERROR)
    assert conn.state is State.READY


def test_data_rejected_by_the_app_keeps_reading_commands():
    conn = new_conn()
    respond = lambda e: R451_LOCAL_ERROR if isinstance(e, DataRequested) else accept_all(e)
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
                        b"DATA\r\nNOOP\r\n", respond=respond)
    assert codes(out) == [250, 250, 250, 451, 250] and conn.state is State.RCPT


# --- sequence and syntax errors ------------------------------------------------------

@pytest.mark.parametrize("data,expected", [
    (b"MAIL FROM:<a@b.example>\r\n", 503),                          # before EHLO
    (EHLO + b"RCPT TO:<a@b.example>\r\n", 503),                     # before MAIL
    (EHLO + b"DATA\r\n", 503),                                       # before MAIL
    (EHLO + b"MAIL FROM:<a@b.example>\r\nDATA\r\n", 503),           # before RCPT
    (EHLO + b"MAIL FROM:<a@b.example>\r\nMAIL FROM:<c@b.example>\r\n", 503),  # nested
])
def test_bad_sequences_reply_503_5_5_1(data, expected):
    conn = new_conn()
    events, out = drive(conn, data)
    assert codes(out)[-1] == expected
    assert out.endswith(b"503 5.5.1 Bad sequence of commands\r\n")
    assert violations(events)[-1].kind is ViolationKind.BAD_SEQUENCE


@pytest.mark.parametrize("mail", [b"MAIL FROM:<a@b.example>\r\n",          # refused by the app
                                  b"MAIL FROM:<a@b.example> SIZE=x\r\n"])  # by the protocol
def test_rcpt_and_data_pipelined_behind_a_refused_mail_are_not_violations(mail):
    # RFC 2920 §3.1: the client sent them before it saw the refusal; 503 is the expected
    # answer, not a fault of the client's to count
    conn = new_conn()
    respond = lambda e: R550_RELAY_DENIED if isinstance(e, MailFrom) else accept_all(e)
    events, out = drive(conn, EHLO + mail + b"RCPT TO:<c@d.example>\r\nDATA\r\n",
                        respond=respond)
    assert codes(out)[-2:] == [503, 503]
    assert all(v.kind is not ViolationKind.BAD_SEQUENCE for v in violations(events))
    # after RSET they are violations again
    events, out = drive(conn, b"RSET\r\nRCPT TO:<c@d.example>\r\n", respond=respond)
    assert codes(out) == [250, 503]
    assert violations(events)[-1].kind is ViolationKind.BAD_SEQUENCE


@pytest.mark.parametrize("mode", MODES)
def test_data_after_every_recipient_was_refused_replies_554_no_valid_recipients(mode):
    # events finding B1: RFC 5321 §3.3 names this reply for this DATA, which a pipelining
    # client sends before it sees its RCPTs refused (RFC 2920 §3.1), as Postfix, Exim and
    # swaks --pipeline do: no violation, which counted and raised the SMTP Protocol
    # Violation alert for every relay attempt from them
    conn = new_conn()
    respond = lambda e: R550_RELAY_DENIED if isinstance(e, RcptTo) else accept_all(e)
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"
                        b"RCPT TO:<z@y.example>\r\nDATA\r\n", mode, respond)
    assert out.endswith(b"550 5.7.1 Relaying denied\r\n" * 2
                        + b"554 5.5.1 No valid recipients\r\n")
    assert violations(events) == []
    assert conn.state is State.MAIL


def test_a_transaction_whose_data_was_refused_for_no_valid_recipients_goes_on():
    conn = new_conn()
    respond = lambda e: R550_RELAY_DENIED if e == RcptTo("x@y.example", {}) else accept_all(e)
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"
                        b"DATA\r\nRCPT TO:<c@d.example>\r\nDATA\r\n", respond=respond)
    assert codes(out) == [250, 250, 550, 554, 250, 354]
    assert violations(events) == []


def test_data_with_no_recipient_tried_is_a_bad_sequence_violation():
    conn = new_conn()
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nDATA\r\n")
    assert codes(out)[-1] == 503
    assert [v.kind for v in violations(events)] == [ViolationKind.BAD_SEQUENCE]


@pytest.mark.parametrize("command,code", [
    (b"MAIL a@b.example", 501),
    (b"MAIL TO:<a@b.example>", 501),
    (b"MAIL FROM:a@b.example", 501),
    (b"MAIL FROM:<a@b.example", 501),
    (b"MAIL FROM:<<a@b.example>>", 501),
    (b"MAIL FROM:<a@b.example>x", 501),
    (b"MAIL FROM:<a b@c.example>", 501),
    (b"MAIL FROM:<@a.example:>", 501),
    (b"MAIL FROM:<a@>", 501),
    (b"MAIL FROM:<a@b.example> SIZE=abc", 501),
    (b"MAIL FROM:<a@b.example> SIZE", 501),
    (b"MAIL FROM:<a@b.example> BODY=9BIT", 501),
    (b"MAIL FROM:<a@b.example> SMTPUTF8=yes", 501),
    (b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501),
    (b"MAIL FROM:<a@b.example> =x", 501),
    (b"MAIL FROM:<a@b.example> RET=HDRS", 555),
    (b"MAIL FROM:<a@b.example> AUTH=<>", 555),
    (b"MAIL FROM:<a@b.example> BODY=BINARYMIME", 504),
    (b"MAIL FROM:<a\xff@b.example>", 501),
    (b"MAIL FROM:<a\x00@b.example>", 501),
    (b"MAIL FROM:<j\xc3\xb6rg@b.example>", 553),
    (b'MAIL FROM:<"<x>"@b.example>', 553),       # legal, but delivery never sends "<"
    # smtp-conformance finding 3: address literals that name no address (RFC 5321 §4.1.3)
    (b"MAIL FROM:<s@[999.1.1.1]>", 501),
    (b"MAIL FROM:<s@[1.2.3]>", 501),
    (b"MAIL FROM:<s@[tag:foo]>", 501),
    (b"MAIL FROM:<s@[IPv6:2001:db8::zz]>", 501),
    (b"MAIL FROM:<s@[IPv6:fe80::1%eth0]>", 501),
])
def test_malformed_mail_gets_its_reply_and_session_continues(command, code):
    conn = new_conn()
    events, out = drive(conn, EHLO + command + b"\r\nNOOP\r\n")
    assert codes(out) == [250, code, 250]
    assert len(violations(events)) == 1 and conn.state is State.READY


@pytest.mark.parametrize("command,code", [
    (b"RCPT TO:<>", 501),
    (b"RCPT TO:b@c.example", 501),
    (b"RCPT FROM:<b@c.example>", 501),
    (b"RCPT TO:<b@c.example> NOTIFY=NEVER", 555),
    (b"RCPT TO:<j\xc3\xb6rg@c.example>", 553),
    (b'RCPT TO:<"<script>alert(1)</script>"@c.example>', 553),
])
def test_malformed_rcpt_gets_its_reply(command, code):
    conn = new_conn()
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\n" + command + b"\r\n")
    assert codes(out) == [250, 250, code] and conn.state is State.MAIL


@pytest.mark.parametrize("command", [b"DATA x", b"RSET x", b"QUIT now", b"VRFY", b"NOOP \x00",
                                     b"HELP \x00x"])
def test_arguments_where_none_belong_reply_501(command):
    conn = new_conn()
    drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    events, out = drive(conn, command + b"\r\n")
    assert codes(out) == [501] and conn.state is State.RCPT


# --- addresses -------------------------------------------------------------------------

@pytest.mark.parametrize("path,address", [
    (b"<>", ""),
    (b"<user@example.org>", "user@example.org"),
    (b"<@relay1.example,@relay2.example:user@example.org>", "user@example.org"),
    (b'<"john doe"@example.org>', '"john doe"@example.org'),
    (b'<"a\\"b c"@example.org>', '"a\\"b c"@example.org'),   # ">" inside: 553, parsed
    (b"<user@[192.0.2.1]>", "user@[192.0.2.1]"),
    (b"<first.last+tag@sub.example.org>", "first.last+tag@sub.example.org"),
    (b" <user@example.org>", "user@example.org"),  # lenient: space after the colon
])
def test_mail_from_accepts_rfc_5321_paths(path, address):
    conn = new_conn()
    events, _ = drive(conn, EHLO + b"MAIL FROM:" + path + b"\r\n")
    assert events[-1] == MailFrom(address, {})


def test_mail_parameters_are_parsed():
    conn = new_conn()
    events, _ = drive(conn, EHLO + b"mail from:<a@b.example>  size=1234 body=8bitmime SMTPUTF8\r\n")
    assert events[-1] == MailFrom("a@b.example", {"SIZE": 1234, "BODY": "8BITMIME", "SMTPUTF8": True})
    assert events[-1].params == {"SIZE": 1234, "BODY": "8BITMIME", "SMTPUTF8": True}


def test_utf8_addresses_are_accepted_with_smtputf8():
    conn = new_conn()
    data = EHLO + "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<用户@例子.测试>\r\n".encode()
    events, out = drive(conn, data)
    assert events[1] == MailFrom("jörg@bücher.example", {"SMTPUTF8": True})
    assert events[2] == RcptTo("用户@例子.测试", {})
    assert codes(out) == [250, 250, 250]


@pytest.mark.parametrize("literal", [b"[192.0.2.1]", b"[010.0.2.255]", b"[IPv6:2001:db8::1]",
                                     b"[ipv6:::ffff:192.0.2.1]"])
def test_address_literals_that_name_an_address_are_accepted(literal):
    conn = new_conn()
    events, out = drive(conn, EHLO + b"MAIL FROM:<s@" + literal + b">\r\n")
    assert codes(out) == [250, 250] and events[-1] == MailFrom("s@" + literal.decode(), {})


def test_help_names_no_extension_ehlo_may_not_offer():
    # smtp-conformance finding 2: HELP named STARTTLS where EHLO did not offer it, and the
    # STARTTLS it invited got 502
    conn = new_conn()          # no TLS offered
    _, ehlo = drive(conn, EHLO)
    _, out = drive(conn, b"HELP\r\n")
    assert b"STARTTLS" not in ehlo and b"STARTTLS" not in out


def test_bare_postmaster_recipient_is_accepted():
    conn = new_conn()
    events, _ = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<Postmaster>\r\n")
    assert events[-1] == RcptTo("Postmaster", {})


# --- commands the protocol answers itself ---------------------------------------------

@pytest.mark.parametrize("command,expected", [
    (b"NOOP", b"250 2.0.0 OK\r\n"),
    (b"NOOP anything", b"250 2.0.0 OK\r\n"),
    (b"VRFY bob", b"252 2.0.0 "),
    (b"HELP", b"214 2.0.0 "),
    (b"HELP MAIL", b"214 2.0.0 "),
])
def test_informational_commands_are_answered_without_an_event(command, expected):
    conn = new_conn()
    drive(conn, EHLO)
    events, out = drive(conn, command + b"\r\n")
    assert events == [] and out.startswith(expected)


@pytest.mark.parametrize("command,verb", [
    (b"EXPN staff", "EXPN"), (b"AUTH PLAIN AGFhAGI=", "AUTH"), (b"BDAT 10 LAST", "BDAT"),
    (b"TURN", "TURN"), (b"ETRN local.test", "ETRN"), (b"STARTTLS", "STARTTLS"),
])
def test_unimplemented_commands_reply_502_with_an_unsupported_command_event(command, verb):
    conn = new_conn()          # no TLS offered: STARTTLS is not implemented here
    drive(conn, EHLO)
    events, out = drive(conn, command + b"\r\n")
    assert events == [UnsupportedCommand(verb)] and out.startswith(b"502 5.5.1 ")


def test_lines_after_auth_are_never_shown_in_a_violation():
    conn = new_conn()
    events, _ = drive(conn, EHLO + b"AUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nNOOP\r\nFOO x\r\n")
    details = [v.detail for v in violations(events)]
    assert len(details) == 3 and not any("dXNlcg" in d or "c2VjcmV0" in d for d in details)
    assert "FOO x" in details[2]                # after the next command, shown again


def test_rset_replies_250_surfaces_rset_and_clears_the_transaction():
    conn = new_conn()
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\n"
                        b"MAIL FROM:<e@f.example>\r\n")
    assert events[3] == Rset() and codes(out) == [250, 250, 250, 250, 250]
    assert conn.state is State.MAIL and conn.recipient_count == 0


def test_quit_replies_221_and_closes():
    conn = new_conn()
    events, out = drive(conn, b"QUIT\r\nNOOP\r\n")
    assert events == [Quit()] and out == b"221 2.0.0 Bye\r\n"
    assert conn.state is State.CLOSED
    conn.receive_data(b"NOOP\r\n")  # a peer talking after QUIT is ignored
    assert isinstance(conn.next_event(), ConnectionClosed) and conn.data_to_send() == b""


# --- limits ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_overlong_command_replies_500_and_session_continues(mode):
    conn = new_conn()
    data = EHLO + b"MAIL FROM:<" + b"a" * 600 + b"@b.example>\r\nMAIL FROM:<a@b.example>\r\n"
    events, out = drive(conn, data, mode)
    assert codes(out) == [250, 500, 250]
    assert b"500 5.5.2 Line too long\r\n" in out
    assert violations(events)[0].kind is ViolationKind.COMMAND_LINE_TOO_LONG
    assert events[-1] == MailFrom("a@b.example", {})


def test_command_of_exactly_512_octets_is_accepted_and_513_is_not():
    conn = new_conn()
    line_512 = b"NOOP " + b"x" * (512 - 7) + b"\r\n"
    line_513 = b"NOOP " + b"x" * (513 - 7) + b"\r\n"
    assert len(line_512) == 512 and len(line_513) == 513
    _, out = drive(conn, line_512 + line_513 + b"NOOP\r\n")
    assert codes(out) == [250, 500, 250]


@pytest.mark.parametrize("mode", ["whole", "trailing"])
def test_unknown_commands_reply_500_and_the_21st_closes_with_421(mode):
    conn = new_conn()
    events, out = drive(conn, b"FOO\r\n" * 25, mode)
    assert codes(out) == [500] * 20 + [421]
    assert out.endswith(b"421 4.7.0 Too many errors, closing transmission channel\r\n")
    assert violations(events)[-1].kind is ViolationKind.TOO_MANY_UNKNOWN_COMMANDS
    assert conn.state is State.CLOSED


def test_unknown_command_budget_is_a_constructor_argument():
    conn = new_conn(max_unknown_commands=2)
    _, out = drive(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert codes(out) == [500, 500, 421]


def test_1001st_recipient_replies_452():
    conn = new_conn()
    rcpts = b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(1001))
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\n" + rcpts)
    assert codes(out) == [250, 250] + [250] * 1000 + [452]
    assert out.endswith(b"452 4.5.3 Too many recipients\r\n")
    assert events[-1] == RecipientLimitReached(1000)
    assert conn.recipient_count == 1000


@pytest.mark.parametrize("mode", MODES)
def test_recipients_past_the_limit_are_no_violation_and_one_event_a_transaction(mode):
    # interop finding 3: every RCPT past 1000 was a protocol_violation event (and an alert
    # line), though RFC 5321 §4.5.3.1.10 has a client send more and the rest later
    conn = new_conn(max_recipients=2)
    rcpts = b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(5))
    transaction = b"MAIL FROM:<a@b.example>\r\n" + rcpts + b"DATA\r\nx\r\n.\r\n"
    events, out = drive(conn, EHLO + transaction + transaction, mode)
    assert codes(out) == [250] + ([250, 250, 250, 452, 452, 452, 354, 250] * 2)
    assert not violations(events)
    assert [e for e in events if isinstance(e, RecipientLimitReached)] == \
        [RecipientLimitReached(2)] * 2
    assert [e for e in events if isinstance(e, RcptTo)] == \
        [RcptTo("u0@example.org"), RcptTo("u1@example.org")] * 2


def test_a_bad_recipient_past_the_limit_is_still_a_syntax_error():
    conn = new_conn(max_recipients=1)
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
                        b"RCPT TO:c@d\r\nRCPT TO:<e@f.example>\r\n")
    assert codes(out) == [250, 250, 250, 501, 452]
    assert [v.kind for v in violations(events)] == [ViolationKind.SYNTAX]


def test_refused_recipients_do_not_count_toward_the_limit():
    conn = new_conn(max_recipients=1)
    respond = lambda e: R550_RELAY_DENIED if e == RcptTo("x@y.example", {}) else accept_all(e)
    _, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"
                   b"RCPT TO:<c@d.example>\r\nRCPT TO:<e@f.example>\r\n", respond=respond)
    assert codes(out) == [250, 250, 550, 250, 452]


def test_size_declared_over_limit_is_the_apps_to_refuse_at_mail():
    # the size policy's refusal (core/smtp/policy.py check_declared_size), which the
    # rejected event names with its sender: the protocol only passes the SIZE on
    conn = new_conn(max_message_octets=1000)
    respond = lambda e: (R552_SIZE_EXCEEDED if isinstance(e, MailFrom) and e.params["SIZE"] > 1000
                         else accept_all(e))
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example> SIZE=1001\r\n"
                        b"RCPT TO:<c@d.example>\r\nMAIL FROM:<a@b.example> SIZE=1000\r\n",
                        respond=respond)
    assert codes(out) == [250, 552, 503, 250]
    assert [e.params["SIZE"] for e in events if isinstance(e, MailFrom)] == [1001, 1000]
    assert violations(events) == []         # the RCPT behind the refused MAIL (Rule 8)


@pytest.mark.parametrize("mode", MODES)
def test_message_over_size_limit_is_read_to_the_end_then_reported(mode):
    conn = new_conn(max_message_octets=100)
    body = b"".join(b"line %03d of the message\r\n" % i for i in range(20))
    respond = lambda e: (R552_SIZE_EXCEEDED if isinstance(e, DataComplete) and e.size_exceeded
                         else accept_all(e))
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
                        + body + b".\r\nNOOP\r\n", mode, respond)
    complete = [e for e in events if isinstance(e, DataComplete)]
    assert complete == [DataComplete(size=len(body), size_exceeded=True)]
    emitted = b"".join(e.data for e in events if isinstance(e, DataChunk))
    assert len(emitted) <= 100
    assert codes(out) == [250, 250, 250, 354, 552, 250]
    assert conn.state is State.READY


@pytest.mark.parametrize("mode", MODES)
def test_text_line_over_1000_octets_replies_554_after_end_of_data(mode):
    conn = new_conn()
    body = b"short\r\n" + b"x" * 1500 + b"\r\nafter\r\n"
    respond = lambda e: (R554_LINE_TOO_LONG_IN_DATA if isinstance(e, DataComplete) and e.line_too_long
                         else accept_all(e))
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
                        + body + b".\r\nNOOP\r\n", mode, respond)
    complete = [e for e in events if isinstance(e, DataComplete)]
    assert len(complete) == 1 and complete[0].line_too_long and not complete[0].size_exceeded
    assert codes(out) == [250, 250, 250, 354, 554, 250]
    assert b"554 5.6.0 " in out
    assert conn.state is State.READY


def test_text_line_of_1000_octets_is_accepted_and_1001_is_not():
    for length, too_long in ((1000, False), (1001, True)):
        conn = new_conn()
        line = b"y" * (length - 2) + b"\r\n"
        events, _ = drive(conn, EHLO + b"MAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n" + line
                          + b".\r\n", respond=lambda e: R250_OK if isinstance(e, DataComplete)
                          else accept_all(e))
        assert events[-1].line_too_long is too_long


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"], ids=["crlf", "bare_lf"])
def test_the_transparency_dot_does_not_count_towards_the_1000_octets(mode, ending):
    # RFC 5321 §4.5.3.1.6: "not counting the leading dot duplicated for transparency".
    # smtp-security finding 3: a 1000-octet line starting with "." (1001 on the wire) got 554.
    for text, too_long in ((b"." * 998, False), (b"." + b"a" * 997, False),
                           (b"." * 999, True), (b"." + b"a" * 998, True)):
        conn = new_conn()
        respond = lambda e: (R554_LINE_TOO_LONG_IN_DATA if isinstance(e, DataComplete)
                             and e.line_too_long else accept_all(e))
        events, out = drive(conn, EHLO + b"MAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
                            + b"Subject: dots\r\n\r\n." + text + ending + b"end\r\n.\r\n", mode,
                            respond)
        [complete] = [e for e in events if isinstance(e, DataComplete)]
        assert complete.line_too_long is too_long, text[:3]
        if not too_long:
            content = b"".join(e.data for e in events if isinstance(e, DataChunk))
            assert content == b"Subject: dots\r\n\r\n" + text + b"\r\nend\r\n"
            assert codes(out)[-1] == 250


def test_overlong_line_ending_in_a_split_crlf_still_finds_end_of_data():
    conn = new_conn()
    drive(conn, EHLO + b"MAIL FROM:<>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
    events, _ = drive(conn, b"z" * 1200 + b"\r")
    events2, _ = drive(conn, b"\n.\r\n")
    assert isinstance(events2[-1], DataComplete) and events2[-1].line_too_long


# --- DATA content -----------------------------------------------------------------------

def _data(conn, content: bytes, mode="whole"):
    drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
    assert conn.state is State.DATA
    return drive(conn, content, mode)


@pytest.mark.parametrize("mode", MODES)
def test_data_is_dot_unstuffed_and_keeps_crlf(mode):
    events, out = _data(new_conn(), b"..leading dot\r\n...two\r\n.\r\n", mode)
    assert events[0] == DataChunk(b".leading dot\r\n..two\r\n")
    assert events[1] == DataComplete(size=len(b".leading dot\r\n..two\r\n"))
    assert codes(out) == [250]


def test_empty_message_completes_at_once():
    events, _ = _data(new_conn(), b".\r\n")
    assert events == [DataComplete(size=0)]


def test_bare_lf_inside_data_is_normalised_to_crlf_and_flagged():
    events, _ = _data(new_conn(), b"one\ntwo\r\n.\r\n")
    assert events[0] == DataChunk(b"one\r\ntwo\r\n")
    assert events[1].bare_line_endings


def test_bare_cr_inside_data_is_content_not_a_line_end():
    events, _ = _data(new_conn(), b"a\rb\r\n.\r\n")
    assert events[0] == DataChunk(b"a\rb\r\n")


def test_data_is_emitted_incrementally_and_never_held_whole():
    conn = new_conn()
    _data(conn, b"")
    chunk = b"x" * 78 + b"\r\n"
    seen = 0
    for _ in range(640):  # 640 x 80 x 1000 octets = 51 MB-ish, in 80 kB reads
        conn.receive_data(chunk * 1000)
        event = conn.next_event()
        assert isinstance(event, DataChunk)
        seen += len(event.data)
        assert conn.next_event() is NEED_DATA
        assert len(conn._buffer) < 1000
    conn.receive_data(b".\r\n")
    assert conn.next_event() == DataComplete(size=seen)


SMUGGLING = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n .\r\n",
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("marker", SMUGGLING)
def test_smuggled_end_of_data_does_not_end_data(marker, mode):
    conn = new_conn()
    smuggled = b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\nforged\r\n"
    content = b"legit" + marker + smuggled + b".\r\n"
    events, out = _data(conn, content, mode)
    assert not any(isinstance(e, (MailFrom, RcptTo, DataRequested)) for e in events)
    complete = [e for e in events if isinstance(e, DataComplete)]
    assert len(complete) == 1 and events[-1] is complete[0]
    data = b"".join(e.data for e in events if isinstance(e, DataChunk))
    assert b"MAIL FROM:<evil@x.example>\r\n" in data
    assert codes(out) == [250]


# --- garbage --------------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\r\n", b"\xff\xfe\xfd\r\n", b"\r\n", b"\n", b"   \r\n", b"\x00MAIL FROM:<a@b>\r\n",
    b"EHLO \x00\r\n", b"HELO \xff\r\n", b"MAIL\r\n", b"MAIL FROM:\r\n", b"RCPT\x00TO:<a@b>\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",  # a TLS ClientHello on the plain port
])
def test_garbage_and_nul_bytes_get_replies_not_exceptions(garbage):
    conn = new_conn()
    events, out = drive(conn, EHLO + garbage + b"NOOP\r\n")
    assert codes(out)[0] == 250 and codes(out)[-1] == 250
    assert codes(out)[1] in (500, 501, 503) and len(codes(out)) == 3
    assert len(violations(events)) == 1


# --- STARTTLS ----------------------------------------------------------------------------------

def test_starttls_handshake_resets_session_and_is_not_offered_again():
    conn = new_conn(tls_available=True)
    events, out = drive(conn, EHLO + b"MAIL FROM:<a@b.example>\r\nRSET\r\nSTARTTLS\r\n")
    assert events[-1] == StartTlsRequested() and conn.state is State.STARTTLS_HANDSHAKE
    assert out.endswith(b"220 2.0.0 Ready to start TLS\r\n")
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    conn.start_tls_done()
    assert conn.state is State.GREETED and conn.is_tls
    events, out = drive(conn, b"MAIL FROM:<a@b.example>\r\n" + EHLO + b"STARTTLS\r\n")
    assert codes(out) == [503, 250, 503]
    assert b"STARTTLS" not in out.split(b"\r\n250 HELP")[0]


def test_plaintext_pipelined_after_starttls_is_discarded():
    conn = new_conn(tls_available=True)
    drive(conn, EHLO + b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n")
    conn.start_tls_done()
    event = conn.next_event()
    assert isinstance(event, ProtocolViolation)
    assert event.kind is ViolationKind.STARTTLS_PLAINTEXT_INJECTION and event.reply is None
    assert conn.next_event() is NEED_DATA and conn.data_to_send() == b""


def test_starttls_refused_by_the_app_keeps_the_session():
    conn = new_conn(tls_available=True)
    _, out = drive(conn, EHLO + b"STARTTLS\r\nNOOP\r\n", respond=lambda e: R454_TLS_NOT_AVAILABLE)
    assert codes(out) == [250, 454, 250] and conn.state is State.READY and not conn.is_tls


def test_starttls_without_tls_replies_502_and_before_ehlo_503():
    conn = new_conn()
    _, out = drive(conn, b"STARTTLS\r\n" + EHLO + b"STARTTLS\r\n")
    assert codes(out) == [503, 250, 502]


def test_start_tls_done_without_starttls_is_a_local_error():
    conn = new_conn(tls_available=True)
    with pytest.raises(LocalProtocolError):
        conn.start_tls_done()


# --- closing ------------------------------------------------------------------------------------

def test_peer_close_yields_connection_closed_after_buffered_commands():
    conn = new_conn()
    conn.receive_data(b"NOOP\r\nQUIT\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == Quit()
    assert conn.data_to_send() == b"250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"


def test_peer_close_mid_data_yields_connection_closed():
    conn = new_conn()
    _data(conn, b"partial line")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed) and conn.state is State.CLOSED


def test_peer_close_with_partial_command_yields_connection_closed():
    conn = new_conn()
    conn.receive_data(b"NOO")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_receive_data_after_peer_close_is_a_local_error():
    conn = new_conn()
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"NOOP\r\n")


def test_421_can_be_sent_at_any_time_and_closes():
    conn = new_conn()
    _data(conn, b"some content\r\n")
    assert conn.send(R421_TIMEOUT) == b"421 4.4.2 Timeout, closing transmission channel\r\n"
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        conn.send(R421_TIMEOUT)


# --- the table: every (state, command) pair -----------------------------------------------------

SETUP = {
    State.GREETED: b"",
    State.READY: EHLO,
    State.MAIL: EHLO + b"MAIL FROM:<a@b.example>\r\n",
    State.RCPT: EHLO + b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n",
}
COMMANDS = {
    "EHLO": b"EHLO c.example", "HELO": b"HELO c.example", "MAIL": b"MAIL FROM:<x@y.example>",
    "RCPT": b"RCPT TO:<x@y.example>", "DATA": b"DATA", "RSET": b"RSET", "NOOP": b"NOOP",
    "QUIT": b"QUIT", "VRFY": b"VRFY x", "EXPN": b"EXPN x", "HELP": b"HELP",
    "STARTTLS": b"STARTTLS", "AUTH": b"AUTH LOGIN", "XYZZY": b"XYZZY",
}
# Written by hand from RFC 5321 §4.1.4/§4.3.2 and RFC 3207, independent of state.py:
# (reply code, state after) per (command, state), with every app event accepted.
G, RD, M, RC = State.GREETED, State.READY, State.MAIL, State.RCPT
EXPECTED = {
    "EHLO": {G: (250, RD), RD: (250, RD), M: (250, RD), RC: (250, RD)},
    "HELO": {G: (250, RD), RD: (250, RD), M: (250, RD), RC: (250, RD)},
    "MAIL": {G: (503, G), RD: (250, M), M: (503, M), RC: (503, RC)},
    "RCPT": {G: (503, G), RD: (503, RD), M: (250, RC), RC: (250, RC)},
    "DATA": {G: (503, G), RD: (503, RD), M: (503, M), RC: (354, State.DATA)},
    "RSET": {G: (250, G), RD: (250, RD), M: (250, RD), RC: (250, RD)},
    "NOOP": {s: (250, s) for s in (G, RD, M, RC)},
    "QUIT": {s: (221, State.CLOSED) for s in (G, RD, M, RC)},
    "VRFY": {s: (252, s) for s in (G, RD, M, RC)},
    "EXPN": {s: (502, s) for s in (G, RD, M, RC)},
    "HELP": {s: (214, s) for s in (G, RD, M, RC)},
    "STARTTLS": {G: (503, G), RD: (220, State.STARTTLS_HANDSHAKE), M: (503, M), RC: (503, RC)},
    "AUTH": {s: (502, s) for s in (G, RD, M, RC)},
    "XYZZY": {s: (500, s) for s in (G, RD, M, RC)},
}


@pytest.mark.parametrize("state", list(SETUP))
@pytest.mark.parametrize("verb", list(COMMANDS))
def test_every_state_and_command_pair(state, verb):
    conn = new_conn(tls_available=True)
    drive(conn, SETUP[state])
    assert conn.state is state
    _, out = drive(conn, COMMANDS[verb] + b"\r\n")
    code, after = EXPECTED[verb][state]
    assert codes(out) == [code]
    assert conn.state is after


def test_render_table_names_every_state_command_and_reply_rule():
    text = render_table()
    for name in ["GREETED", "READY", "MAIL", "RCPT", "STARTTLS", "(unknown)", "DataComplete",
                 "354->DATA", "220->STARTTLS_HANDSHAKE"]:
        assert name in text


# --- replies ------------------------------------------------------------------------------------

def test_reply_to_bytes_single_and_multi_line():
    assert Reply(250, "2.0.0", "OK").to_bytes() == b"250 2.0.0 OK\r\n"
    assert Reply(250, None, ("a", "b", "c")).to_bytes() == b"250-a\r\n250-b\r\n250 c\r\n"
    assert Reply(550, "5.7.1", ("x", "y")).to_bytes() == b"550-5.7.1 x\r\n550 5.7.1 y\r\n"


@pytest.mark.parametrize("args", [
    (99, None, "x"), (600, None, "x"), (250, "5.0.0", "x"), (250, "2.0", "x"),
    (250, None, "a\r\nb"), (250, None, ("a", "b\n")), (250, None, "x" * 600), (250, None, ()),
])
def test_reply_refuses_to_exist_when_it_could_not_be_sent(args):
    with pytest.raises(ValueError):
        Reply(*args)


def test_every_reply_constant_has_an_enhanced_code_except_where_rfc_2034_exempts_it():
    import core.smtp.replies as replies
    constants = [getattr(replies, n) for n in replies.__all__ if isinstance(getattr(replies, n), Reply)]
    assert len(constants) >= 25
    for reply in constants:
        if reply.code == 354:
            assert reply.enhanced is None
        else:
            assert reply.enhanced and reply.enhanced[0] == str(reply.code)[0], reply
    assert R220_READY(HOST).enhanced is None


# --- odds and ends ----------------------------------------------------------------------------

def test_starttls_with_an_argument_replies_501():
    conn = new_conn(tls_available=True)
    _, out = drive(conn, EHLO + b"STARTTLS now\r\n")
    assert codes(out) == [250, 501] and conn.state is State.READY


def test_data_complete_is_awaited_only_once_it_has_been_returned():
    conn = new_conn()
    _data(conn, b"")
    conn.receive_data(b"text\r\n.\r\n")
    assert conn.next_event() == DataChunk(b"text\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(R250_OK)
    assert conn.next_event() == DataComplete(size=6)
    conn.send(R250_OK)
    assert conn.state is State.READY


def test_repeated_end_of_input_is_harmless():
    conn = new_conn()
    conn.receive_data(b"")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)


@pytest.mark.parametrize("hostname", ["mx\r\n250 injected", "x" * 600])
def test_hostname_that_cannot_go_into_a_reply_fails_at_construction(hostname):
    with pytest.raises(ValueError):
        ServerConnection(hostname)
