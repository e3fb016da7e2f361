"""Sans-IO client: feed server bytes, assert ServerReply events; call commands, assert bytes.

Reader tests run whole, one byte at a time and with trailing data.
"""

from __future__ import annotations

import pytest

from core.smtp import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    Command,
    ConnectionClosed,
    DataEncoder,
    LocalProtocolError,
    Outcome,
    ProtocolViolation,
    Reply,
    ServerReply,
    ViolationKind,
)

MODES = ["whole", "bytewise", "trailing"]
EHLO_REPLY = (b"250-mx.test greets you\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
              b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 HELP\r\n")


def feed(conn, data: bytes, mode: str = "whole"):
    """Feed server bytes; return the events until NEED_DATA (or closed)."""
    if mode == "trailing":
        data += b"250-unfinished"
    pieces = [data[i:i + 1] for i in range(len(data))] if mode == "bytewise" else [data]
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            if not pieces:
                return events
            conn.receive_data(pieces.pop(0))
            continue
        events.append(event)
        if isinstance(event, (ConnectionClosed, ProtocolViolation)):
            return events


def greeted(extensions: bytes = EHLO_REPLY) -> ClientConnection:
    conn = ClientConnection("gw.test")
    feed(conn, b"220 mx.test ESMTP\r\n")
    assert conn.ehlo() == b"EHLO gw.test\r\n"
    feed(conn, extensions)
    assert conn.state is ClientState.READY
    return conn


# --- replies -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_greeting_is_reported_and_allows_ehlo(mode):
    conn = ClientConnection("gw.test")
    with pytest.raises(LocalProtocolError):
        conn.ehlo()  # the greeting must come first
    events = feed(conn, b"220 mx.test ESMTP ready\r\n", mode)
    assert events == [ServerReply(Command.GREETING, "", Reply(220, None, "mx.test ESMTP ready"))]
    assert conn.state is ClientState.GREETED


@pytest.mark.parametrize("mode", MODES)
def test_multi_line_ehlo_reply_sets_extensions(mode):
    conn = ClientConnection("gw.test")
    feed(conn, b"220 mx.test\r\n")
    conn.ehlo()
    events = feed(conn, EHLO_REPLY, mode)
    assert len(events) == 1 and events[0].command is Command.EHLO
    assert events[0].reply.lines[0] == "mx.test greets you"
    assert conn.extensions == {"PIPELINING": "", "SIZE": "10000", "8BITMIME": "", "SMTPUTF8": "",
                               "ENHANCEDSTATUSCODES": "", "STARTTLS": "", "HELP": ""}
    assert conn.supports_pipelining and conn.max_message_octets == 10000 and conn.is_extended


def test_a_size_in_other_digits_is_no_limit_not_an_error():
    conn = ClientConnection("gw.test")
    feed(conn, b"220 mx.test\r\n")
    conn.ehlo()
    feed(conn, "250-mx.test\r\n250 SIZE \u00b2\u00b3\r\n".encode())
    assert conn.max_message_octets is None


@pytest.mark.parametrize("mode", MODES)
def test_enhanced_codes_are_split_off_every_line(mode):
    conn = ClientConnection("gw.test")
    events = feed(conn, b"220 x\r\n", mode)
    conn.ehlo()
    feed(conn, EHLO_REPLY)
    conn.mail("a@b.example")
    events = feed(conn, b"550-5.7.1 first line\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", mode)
    assert events[0].reply == Reply(550, "5.7.1", ("first line", "second", "third"))


def test_enhanced_code_of_another_class_is_left_in_the_text():
    conn = ClientConnection("gw.test")
    events = feed(conn, b"220 2.0.0 ready\r\n")
    assert events[0].reply == Reply(220, "2.0.0", "ready")
    conn.ehlo()
    events = feed(conn, b"550 4.0.0 odd\r\n")
    assert events[0].reply == Reply(550, None, "4.0.0 odd")


def test_bare_code_reply_has_empty_text():
    conn = ClientConnection("gw.test")
    assert feed(conn, b"220\r\n")[0].reply == Reply(220, None, "")


@pytest.mark.parametrize("garbage,kind", [
    (b"hello\r\n", ViolationKind.REPLY_SYNTAX),
    (b"2200 x\r\n", ViolationKind.REPLY_SYNTAX),
    (b"120 x\r\n", ViolationKind.REPLY_SYNTAX),
    (b"250-a\r\n251 b\r\n", ViolationKind.REPLY_SYNTAX),
    (b"220 " + b"x" * 5000 + b"\r\n", ViolationKind.REPLY_TOO_LONG),
    (b"220 " + b"x" * 5000, ViolationKind.REPLY_TOO_LONG),
    (b"250-x\r\n" * 300, ViolationKind.REPLY_TOO_LONG),
])
def test_garbage_from_the_server_is_a_violation_and_closes(garbage, kind):
    conn = ClientConnection("gw.test")
    events = feed(conn, garbage)
    assert isinstance(events[-1], ProtocolViolation) and events[-1].kind is kind
    assert conn.state is ClientState.CLOSED
    assert isinstance(conn.next_event(), ConnectionClosed)


def test_long_reply_text_is_kept_but_cut_to_a_sendable_line():
    conn = ClientConnection("gw.test")
    events = feed(conn, b"554 5.7.1 " + b"y" * 1000 + b"\r\n")
    assert events[0].reply.code == 554 and len(events[0].reply.to_bytes()) <= 512


def test_non_220_greeting_allows_only_quit():
    conn = ClientConnection("gw.test")
    feed(conn, b"554 5.3.2 go away\r\n")
    assert conn.state is ClientState.REFUSED
    with pytest.raises(LocalProtocolError):
        conn.ehlo()
    assert conn.quit() == b"QUIT\r\n"


def test_421_to_any_command_closes():
    conn = greeted()
    conn.mail("a@b.example")
    events = feed(conn, b"421 4.3.2 shutting down\r\n")
    assert events[0].command is Command.MAIL and conn.state is ClientState.CLOSED
    assert conn.transaction.outcomes() == {}


def test_unsolicited_421_is_reported_and_closes():
    conn = greeted()
    events = feed(conn, b"421 4.4.2 timeout\r\n")
    assert events[0].command is Command.UNSOLICITED and conn.state is ClientState.CLOSED


def test_unsolicited_250_is_a_violation():
    conn = greeted()
    events = feed(conn, b"250 what\r\n")
    assert events[0].kind is ViolationKind.UNEXPECTED_REPLY


def test_server_close_yields_connection_closed():
    conn = greeted()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed) and conn.state is ClientState.CLOSED


# --- HELO fallback and STARTTLS ------------------------------------------------------------------

def test_helo_fallback_after_ehlo_5xx():
    conn = ClientConnection("gw.test")
    feed(conn, b"220 old.test\r\n")
    conn.ehlo()
    assert feed(conn, b"502 5.5.1 what is EHLO\r\n")[0].reply.code == 502
    assert conn.state is ClientState.GREETED
    assert conn.helo() == b"HELO gw.test\r\n"
    feed(conn, b"250 old.test\r\n")
    assert conn.state is ClientState.READY and not conn.is_extended and conn.extensions == {}
    assert conn.mail("a@b.example", size=100) == b"MAIL FROM:<a@b.example>\r\n"  # no SIZE offered


def test_starttls_then_ehlo_again_with_fresh_extensions():
    conn = greeted()
    assert conn.starttls() == b"STARTTLS\r\n"
    feed(conn, b"220 2.0.0 go ahead\r\n")
    assert conn.state is ClientState.TLS_HANDSHAKE
    conn.start_tls_done()
    assert conn.is_tls and conn.extensions == {} and conn.state is ClientState.GREETED
    conn.ehlo()
    feed(conn, b"250-mx.test\r\n250 PIPELINING\r\n")
    with pytest.raises(LocalProtocolError):
        conn.starttls()


def test_starttls_refused_leaves_plaintext_session_ready():
    conn = greeted()
    conn.starttls()
    feed(conn, b"454 4.7.0 no TLS today\r\n")
    assert conn.state is ClientState.READY and not conn.is_tls


def test_starttls_not_offered_is_a_local_error():
    conn = greeted(b"250-mx.test\r\n250 8BITMIME\r\n")
    with pytest.raises(LocalProtocolError):
        conn.starttls()


# --- MAIL parameters ----------------------------------------------------------------------------

def test_mail_adds_size_body_and_smtputf8_when_offered_and_needed():
    conn = greeted()
    line = conn.mail("jörg@example.org", size=1234, needs_8bitmime=True, needs_smtputf8=True)
    assert line == "MAIL FROM:<jörg@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8\r\n".encode()


def test_mail_with_null_sender():
    assert greeted().mail("") == b"MAIL FROM:<>\r\n"


@pytest.mark.parametrize("kwargs", [{"needs_8bitmime": True}, {"needs_smtputf8": True}])
def test_mail_needing_an_extension_the_server_lacks_is_a_local_error(kwargs):
    conn = greeted(b"250-mx.test\r\n250 PIPELINING\r\n")
    with pytest.raises(LocalProtocolError):
        conn.mail("a@b.example", **kwargs)
    assert conn.state is ClientState.READY


@pytest.mark.parametrize("address", ["a@b.example\r\nRCPT TO:<x@y>", "a>@b", "a\x00@b", "jörg@b"])
def test_addresses_that_could_inject_commands_are_refused(address):
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.mail(address)
    conn.mail("ok@b.example")
    with pytest.raises(LocalProtocolError):
        conn.rcpt(address)


# --- pipelining rules ----------------------------------------------------------------------------

def test_without_pipelining_each_command_waits_for_its_reply():
    conn = greeted(b"250-mx.test\r\n250 8BITMIME\r\n")
    conn.mail("a@b.example")
    with pytest.raises(LocalProtocolError):
        conn.rcpt("c@d.example")
    feed(conn, b"250 2.1.0 ok\r\n")
    conn.rcpt("c@d.example")


def test_with_pipelining_mail_rcpt_data_go_together_and_replies_match_in_order():
    conn = greeted()
    out = conn.mail("a@b.example") + conn.rcpt("c@d.example") + conn.rcpt("e@f.example") + conn.data()
    assert out == (b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@f.example>\r\n"
                   b"DATA\r\n")
    with pytest.raises(LocalProtocolError):
        conn.rset()  # DATA ends a group (RFC 2920 §3.1)
    events = feed(conn, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.7.1 no\r\n354 go\r\n")
    assert [(e.command, e.argument, e.reply.code) for e in events] == [
        (Command.MAIL, "a@b.example", 250), (Command.RCPT, "c@d.example", 250),
        (Command.RCPT, "e@f.example", 550), (Command.DATA, "", 354)]
    assert conn.state is ClientState.DATA
    assert conn.transaction.accepted_recipients == ["c@d.example"]


def test_ehlo_ends_a_group_even_with_pipelining():
    conn = greeted()
    conn.ehlo()
    with pytest.raises(LocalProtocolError):
        conn.mail("a@b.example")


def test_rcpt_outside_a_transaction_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        greeted().rcpt("a@b.example")


# --- per-recipient outcomes -----------------------------------------------------------------------

def _run(replies: bytes, recipients=("r1@x.example", "r2@x.example", "r3@x.example"), body=True):
    conn = greeted()
    conn.mail("s@x.example")
    for recipient in recipients:
        conn.rcpt(recipient)
    conn.data()
    feed(conn, replies)
    if conn.state is ClientState.DATA:
        conn.encode_data_chunk(b"hi\r\n")
        conn.end_data()
    return conn


def test_outcomes_record_2xx_delivered_4xx_deferred_5xx_failed():
    conn = _run(b"250 ok\r\n250 ok\r\n451 4.3.0 later\r\n550 5.1.1 unknown\r\n354 go\r\n")
    assert conn.transaction.outcomes()["r1@x.example"] == (Outcome.PENDING, None)
    feed(conn, b"250 2.0.0 queued\r\n")
    outcomes = {r: o for r, (o, _) in conn.transaction.outcomes().items()}
    assert outcomes == {"r1@x.example": Outcome.DELIVERED, "r2@x.example": Outcome.DEFERRED,
                        "r3@x.example": Outcome.FAILED}


def test_failed_mail_decides_for_every_recipient():
    conn = _run(b"550 5.7.1 blocked\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 no\r\n")
    assert {o for o, _ in conn.transaction.outcomes().values()} == {Outcome.FAILED}
    assert all(r.code == 550 for _, r in conn.transaction.outcomes().values())
    assert conn.state is ClientState.READY


def test_refused_data_and_refused_final_reply_decide_for_accepted_recipients():
    conn = _run(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n451 4.3.1 full\r\n")
    assert {o for o, _ in conn.transaction.outcomes().values()} == {Outcome.DEFERRED}
    conn = _run(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    feed(conn, b"554 5.6.0 line too long\r\n")
    assert {o for o, _ in conn.transaction.outcomes().values()} == {Outcome.FAILED}


def test_connection_reuse_with_rset_then_a_second_transaction():
    conn = _run(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.rset() == b"RSET\r\n"  # pipelined behind the final "."
    feed(conn, b"250 2.0.0 queued\r\n250 2.0.0 ok\r\n")
    assert conn.outstanding == ()
    conn.mail("s2@x.example")
    assert conn.transaction.sender == "s2@x.example"
    assert conn.quit() == b"QUIT\r\n"  # pipelined behind MAIL


def test_quit_reply_closes():
    conn = greeted()
    conn.quit()
    events = feed(conn, b"221 2.0.0 bye\r\n")
    assert events[0].command is Command.QUIT and conn.state is ClientState.CLOSED


# --- data encoding --------------------------------------------------------------------------------

@pytest.mark.parametrize("chunks,expected", [
    ([b".start\r\nmid\r\n.dot\r\n"], b"..start\r\nmid\r\n..dot\r\n.\r\n"),
    ([b"a\r\n", b".b\r\n"], b"a\r\n..b\r\n.\r\n"),
    ([b"a\r", b"\n.b"], b"a\r\n..b\r\n.\r\n"),
    ([b"a\n.\nb"], b"a\r\n..\r\nb\r\n.\r\n"),
    ([b"a\r.\rb\r"], b"a\r\n..\r\nb\r\n.\r\n"),
    ([b"no newline at end"], b"no newline at end\r\n.\r\n"),
    ([], b".\r\n"),
    ([b"", b"."], b"..\r\n.\r\n"),
    ([b"x\r\n.", b"\r\n"], b"x\r\n..\r\n.\r\n"),
])
def test_encoder_dot_stuffs_and_normalises_across_chunks(chunks, expected):
    encoder = DataEncoder()
    assert b"".join(encoder.encode(c) for c in chunks) + encoder.end() == expected


def test_encoder_byte_by_byte_equals_whole():
    content = b".a\r\n\n.\r\rb\r\n..c\r"
    whole, single = DataEncoder(), DataEncoder()
    expected = whole.encode(content) + whole.end()
    assert b"".join(single.encode(content[i:i + 1]) for i in range(len(content))) + single.end() \
        == expected


def test_encode_data_chunk_before_354_is_a_local_error():
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.encode_data_chunk(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_data()


def test_overlong_command_is_a_local_error():
    conn = greeted()
    with pytest.raises(LocalProtocolError):
        conn.mail("a" * 600 + "@b.example")


def test_outcomes_are_pending_until_replies_arrive():
    conn = greeted()
    conn.mail("s@x.example")
    conn.rcpt("r@x.example")
    assert conn.transaction.outcomes() == {"r@x.example": (Outcome.PENDING, None)}


@pytest.mark.parametrize("name", ["", "two words", "bad\r\nname"])
def test_bad_local_hostname_is_a_local_error(name):
    with pytest.raises(LocalProtocolError):
        ClientConnection(name)


def test_start_tls_done_without_starttls_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        greeted().start_tls_done()


def test_empty_recipient_is_a_local_error():
    conn = greeted()
    conn.mail("")
    with pytest.raises(LocalProtocolError):
        conn.rcpt("")


def test_noop_gets_its_reply():
    conn = greeted()
    assert conn.noop() == b"NOOP\r\n"
    assert feed(conn, b"250 2.0.0 ok\r\n")[0].command is Command.NOOP


# --- replies as read: Reply.received skips the checks the reader already made true --------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core.smtp.readers import ReplyReader  # noqa: E402

_reply_text = st.binary(max_size=700).map(lambda b: b.replace(b"\n", b""))
_reply_line_tail = st.one_of(
    _reply_text,
    st.tuples(st.sampled_from([b"2", b"4", b"5"]), st.integers(0, 999), st.integers(0, 999),
              _reply_text).map(lambda t: t[0] + b".%d.%d " % (t[1], t[2]) + t[3]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"220", b"250", b"354", b"421", b"452", b"550", b"599"]),
       st.lists(_reply_line_tail, min_size=1, max_size=4))
def test_every_reply_read_passes_the_checks_it_was_built_without(code, tails):
    wire = b"".join(code + (b" " if i == len(tails) - 1 else b"-") + tail + b"\r\n"
                    for i, tail in enumerate(tails))
    reader = ReplyReader(max_line_octets=2048, max_lines=100)
    received = reader.next_reply(bytearray(wire))
    checked = Reply(received.code, received.enhanced, received.text)   # raises if unfit
    assert checked == received
    assert received.to_bytes() == checked.to_bytes()
