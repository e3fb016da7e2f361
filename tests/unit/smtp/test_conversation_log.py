"""ConversationLog without sockets: lines as sent whatever the reads, the end of the DATA
stream found as the protocol finds it, escaping, masking, caps and which logs are kept
(core/smtp/conversation.py rules). The end-to-end tests are
tests/integration/test_conversation_logs.py."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from core.smtp.conversation import (MAX_ECHO_OCTETS, MAX_LINE_OCTETS, MAX_LOG_OCTETS,
                                    TAIL_LINES, ConversationLog)
from shared.settings import defaults

STAMP = "2027-01-15T08:00:00.250Z "


def _log(mode="all", errors="all", data="echo", direction="inbound") -> ConversationLog:
    settings = MappingProxyType({**defaults(), f"diagnostics.conversation.{direction}": mode,
                                 "diagnostics.conversation.errors": errors,
                                 "diagnostics.conversation.data": data})
    return ConversationLog(settings, direction, "c1", "test", now=lambda: 1800000000.25)


def _body(log: ConversationLog) -> list[bytes]:
    """The lines after the header, without their time."""
    lines = [line for line in log.lines() if not line.startswith(b"#")]
    assert all(line.startswith(STAMP.encode()) for line in lines)
    return [line[len(STAMP):] for line in lines]


SESSION = [
    (b"S", b"220 mx ready\r\n"),
    (b"C", b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
    (b"S", b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
    # the stream, and the next transaction pipelined behind its end (RFC 2920)
    (b"C", b"Subject: x\r\n\r\n..dotted\r\nbare\nlf\r\n\n.\n.\r\nnot the end\r\n.\r\n"
           b"MAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n"),
    (b"S", b"250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
    (b"C", b"second\r\n.\r\nQUIT\r\n"),
    (b"S", b"250 queued\r\n221 bye\r\n"),
]


def _play(log, pieces_of):
    for who, data in SESSION:
        for piece in pieces_of(data):
            if who == b"S":
                log.server(piece)
            else:
                log.client(piece)


@pytest.mark.parametrize("data", ["ignore", "summarize", "echo"])
def test_the_same_log_whatever_the_reads(data):
    whole, bytewise = _log(data=data), _log(data=data)
    _play(whole, lambda d: [d])
    _play(bytewise, lambda d: [d[i:i + 1] for i in range(len(d))])
    assert whole.lines() == bytewise.lines()


def test_echo_shows_the_stream_as_sent_and_ends_it_only_at_crlf_dot_crlf():
    log = _log(data="echo")
    _play(log, lambda d: [d])
    assert _body(log)[9:] == [
        b"C: Subject: x", b"C: ", b"C: ..dotted", b"C: bare\\x0a", b"C: lf", b"C: \\x0a",
        b"C: .\\x0a", b"C: .", b"C: not the end", b"C: .",
        b"C: MAIL FROM:<e@f>", b"C: RCPT TO:<g@h>", b"C: DATA",
        b"S: 250 queued", b"S: 250 ok", b"S: 250 ok", b"S: 354 go",
        b"C: second", b"C: .", b"C: QUIT", b"S: 250 queued", b"S: 221 bye"]


def test_summarize_counts_lines_and_octets_of_the_stream():
    log = _log(data="summarize")
    _play(log, lambda d: [d])
    content = b"Subject: x\r\n\r\n..dotted\r\nbare\nlf\r\n\n.\n.\r\nnot the end\r\n"
    body = _body(log)
    assert body[body.index(b"C: DATA") + 5] == b"C: <message data, 9 lines, %d octets>" \
        % len(content)
    assert b"C: <message data, 1 lines, 8 octets>" in body
    assert b"C: not the end" not in body and b"C: MAIL FROM:<e@f>" in body


def test_ignore_leaves_the_content_out():
    log = _log(data="ignore")
    _play(log, lambda d: [d])
    body = _body(log)
    assert b"C: DATA" in body and b"C: QUIT" in body
    assert not any(b"dotted" in line or b"message data" in line for line in body)


def test_an_unfinished_stream_is_counted_and_its_last_line_kept_only_in_echo():
    for data, expected in (("summarize", b"C: <message data, 2 lines, 16 octets, no end of "
                                         b"data>"),
                           ("ignore", None)):
        log = _log(data=data)
        log.client(b"DATA\r\n")
        log.server(b"354 go\r\n")
        log.client(b"line one\r\nsecret")
        body = _body(log)
        assert not any(b"secret" in line for line in body)
        assert (expected in body) if expected else len(body) == 2


def test_control_characters_and_broken_utf8_are_escaped_utf8_is_kept():
    log = _log()
    log.client(b"EHLO \x1b[2J\x00\x7f\xc2\x9b \xe2\x82\xac \xff\r\n")
    assert _body(log) == [b"C: EHLO \\x1b[2J\\x00\\x7f\\x9b \xe2\x82\xac \\xff"]


def test_a_line_keeps_its_first_octets_and_counts_the_rest():
    log = _log()
    log.client(b"X" * (MAX_LINE_OCTETS + 10) + b"\r\n")
    [line] = _body(log)
    assert line == b"C: " + b"X" * MAX_LINE_OCTETS + b" ... (11 more octets)"


def test_auth_argument_and_the_lines_after_auth_are_masked_until_the_next_command():
    log = _log()
    log.client(b"AUTH PLAIN AHVzZXIAcGFzcw==\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\n"
               b"RSET\r\nnot a secret\r\nAUTH LOGIN\r\npartial")
    assert _body(log) == [b"C: AUTH PLAIN ****", b"C: AUTH LOGIN", b"C: ****", b"C: ****",
                          b"C: RSET", b"C: not a secret", b"C: AUTH LOGIN",
                          b"C: **** (no line end)"]


def test_past_the_cap_the_end_of_the_conversation_is_kept():
    log = _log()
    line = b"NOOP " + b"n" * 995 + b"\r\n"
    for _ in range(MAX_LOG_OCTETS // 1000 + 2 * TAIL_LINES):
        log.client(line)
    log.error("protocol", "the last thing that happened")
    log.client(b"QUIT\r\n")
    body = _body(log)
    assert body[-2:] == [b"!! protocol: the last thing that happened", b"C: QUIT"]
    assert len(b"\n".join(log.lines())) < MAX_LOG_OCTETS + (TAIL_LINES + 2) * (len(line) + 40)
    assert any(b"lines left out here" in line for line in body)


def test_echo_stops_at_its_cap_and_says_how_much_there_was():
    log = _log(data="echo")
    log.client(b"DATA\r\n")
    log.server(b"354 go\r\n")
    line = b"d" * 98 + b"\r\n"
    lines = MAX_ECHO_OCTETS // 100 + 50
    log.client(line * lines + b".\r\nQUIT\r\n")
    body = _body(log)
    echoed = [entry for entry in body if entry.startswith(b"C: ddd")]
    assert len(echoed) == MAX_ECHO_OCTETS // 100
    assert body[-2:] == [b"C: <message data, %d lines, %d octets>" % (lines, lines * 100),
                         b"C: QUIT"]


@pytest.mark.parametrize("mode, errors, happened, kept", [
    ("off", "all", {"protocol"}, False),
    ("all", "protocol", set(), True),
    ("on_error", "all", set(), False),
    ("on_error", "all", {"unsupported"}, True),
    ("on_error", "local", {"protocol", "communication"}, False),
    ("on_error", "local", {"protocol", "local"}, True),
])
def test_which_logs_are_kept(mode, errors, happened, kept):
    log = _log(mode=mode, errors=errors)
    for kind in happened:
        log.error(kind, "x")
    assert log.should_keep() is kept
