"""SMTP conversation logs (diagnostics.conversation.*) end to end: real SMTP on loopback into
the core, and from it to a sink, as an administrator sending logs to support finds them
(guide §3 "Configuring queue file save and SMTP conversation logging"; SPEC §3
"Diagnostics"; diagnostics exploratory test findings 2–6, 8–11, 13).

Each test runs the core in its own nursery (`_core`): leaving it stops the core, and with it
every session and delivery attempt, so every log that will ever be written is written then —
that is how a test knows a log was *not* kept, without waiting for a time.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import socket
import ssl
import stat
import time
from contextlib import asynccontextmanager

import pytest
import trio

from core.app import run_core
from core.smtp.conversation import MAX_ECHO_OCTETS
from shared import db
from shared.events import Action
from shared.settings_store import apply_changes
from tests.support.core import make_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (C: |S: |!! |-- )")


@asynccontextmanager
async def _core(home):
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        yield core
        core.cancel_scope.cancel()


def _logs(home, direction="inbound"):
    if not home.diagnostics.is_dir():
        return []
    return sorted(p for p in home.diagnostics.iterdir() if p.name.startswith(f"{direction}-"))


async def _one_log(home, direction="inbound"):
    await until(lambda: _logs(home, direction), 10)
    [log] = _logs(home, direction)
    return log.read_bytes()


def _home(tmp_path, sink=None, **changes):
    routing = [{"match": "local.test", "relay": "127.0.0.1", "port": sink.port}] if sink else []
    return make_home(tmp_path, routing__local=routing, **changes)


# --- a raw client ------------------------------------------------------------------------

class _Client:
    """A blocking SMTP client on a plain socket, for what smtplib will not do."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.reply()

    def reply(self) -> bytes:
        """The next whole reply."""
        while True:
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if line[3:4] == b" " or len(line) == 3:
                    reply = b"\r\n".join(lines[:index + 1])
                    self.buffer = b"\r\n".join(lines[index + 1:])
                    return reply
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def _run(port: int, script) -> None:
    """`script(client)` on a fresh connection, in this (worker) thread."""
    client = _Client(port)
    try:
        script(client)
    finally:
        client.close()


async def _session(port: int, script) -> None:
    await trio.to_thread.run_sync(_run, port, script)


def _to_data(client: _Client, rcpt: bytes = b"user@local.test") -> None:
    client.command(b"EHLO client.test")
    client.command(b"MAIL FROM:<a@client.test>")
    client.command(b"RCPT TO:<" + rcpt + b">")
    assert client.command(b"DATA").startswith(b"354")


# --- inbound: which errors keep an on_error log, and under which class ----------------------

def _relay_denied(c):
    assert c.command(b"EHLO client.test").startswith(b"250")
    assert c.command(b"MAIL FROM:<a@client.test>").startswith(b"250")
    assert c.command(b"RCPT TO:<b@elsewhere.example>").startswith(b"550")
    c.command(b"QUIT")


def _turn(c):
    c.command(b"EHLO client.test")
    assert c.command(b"TURN").startswith(b"502")
    c.command(b"QUIT")


def _etrn(c):
    c.command(b"EHLO client.test")
    assert c.command(b"ETRN local.test").startswith(b"502")
    c.command(b"QUIT")


def _fin_in_data(c):
    _to_data(c)
    c.sock.sendall(b"Subject: half\r\n\r\nonly half of the mess")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.sock.recv(4096) == b""         # the server closes in turn


def _no_quit(c):
    c.command(b"EHLO client.test")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.sock.recv(4096) == b""


def _declared_size(c):
    c.command(b"EHLO client.test")
    assert c.command(b"MAIL FROM:<a@client.test> SIZE=99999999").startswith(b"552")
    c.command(b"QUIT")


def _real_size(c):
    _to_data(c)
    line = b"x" * 998 + b"\r\n"
    c.sock.sendall(line * 1100 + b".\r\n")  # 1.1 MB over size.max_mb 1
    assert c.reply().startswith(b"552")
    c.command(b"QUIT")


def _syntax(c):
    c.command(b"EHLO client.test")
    assert c.command(b"MAIL FROM bogus").startswith(b"501")
    c.command(b"QUIT")


def _out_of_sequence(c):
    c.command(b"EHLO client.test")
    assert c.command(b"RCPT TO:<user@local.test>").startswith(b"503")
    c.command(b"QUIT")


def _long_line(c):
    _to_data(c)
    c.sock.sendall(b"Subject: x\r\n\r\n" + b"y" * 1500 + b"\r\n.\r\n")
    assert c.reply().startswith(b"554")
    c.command(b"QUIT")


@pytest.mark.parametrize("script, kind, detail", [
    (_relay_denied, "local", b"relay.allowed"),
    (_declared_size, "local", b"SIZE=99999999"),
    (_real_size, "local", b"size.max_mb"),
    (_turn, "unsupported", b"TURN"),
    (_etrn, "unsupported", b"ETRN"),
    (_fin_in_data, "communication", b"in DATA"),
    (_no_quit, "communication", b"without QUIT"),
    (_syntax, "protocol", b""),
    (_out_of_sequence, "protocol", b""),
    (_long_line, "protocol", b"smtp.max_text_line"),
])
async def test_on_error_keeps_the_log_of_each_smtp_error_under_its_class(
        tmp_path, sink, script, kind, detail):
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="on_error",
                 diagnostics__conversation__errors=kind, size__enabled=True, size__max_mb=1)
    async with _core(home) as core:
        await _session(core.smtp_addresses[0][1], script)
        text = await _one_log(home)
    [error] = [line for line in text.splitlines() if b" !! " in line]
    assert f" !! {kind}: ".encode() in error and detail in error


async def test_on_error_of_another_class_and_a_clean_session_keep_nothing(tmp_path, sink):
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="on_error",
                 diagnostics__conversation__errors="protocol")
    async with _core(home) as core:
        port = core.smtp_addresses[0][1]
        await _session(port, _relay_denied)      # local only
        await _session(port, _turn)              # unsupported only
        await _session(port, lambda c: (c.command(b"EHLO client.test"), c.command(b"QUIT")))
    assert _logs(home) == []


async def test_on_error_with_all_keeps_every_class(tmp_path, sink):
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="on_error")
    async with _core(home) as core:
        port = core.smtp_addresses[0][1]
        for script in (_relay_denied, _turn, _no_quit):
            await _session(port, script)
    assert len(_logs(home)) == 3


# --- inbound: what a log shows --------------------------------------------------------------

async def test_echo_caps_only_the_data_and_keeps_the_error_and_the_end(tmp_path, sink):
    """Finding 6: a kept "on error" log of an over-long message showed neither the error
    nor the reply nor the QUIT after 1 MiB."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="on_error",
                 diagnostics__conversation__errors="protocol",
                 diagnostics__conversation__data="echo")
    content = b"Subject: big\r\n\r\n" + (b"line " + b"z" * 66 + b"\r\n") * 20000  # 1.46 MB
    content += b"w" * 1500 + b"\r\n"                            # over the text line limit
    counts = b"%d lines, %d octets" % (content.count(b"\n"), len(content))

    def script(c):
        _to_data(c)
        c.sock.sendall(content + b".\r\n")
        assert c.reply().startswith(b"554")
        c.command(b"QUIT")

    async with _core(home) as core:
        await _session(core.smtp_addresses[0][1], script)
        text = await _one_log(home)
    lines = text.splitlines()
    assert len(text) < 2 * MAX_ECHO_OCTETS      # each echoed line has its time besides
    assert any(b"DATA echo stops here" in line for line in lines)
    tail = b"\n".join(lines[-6:])
    assert b"!! protocol: smtp.max_text_line" in tail and b"S: 554 5.6.0" in tail
    assert b"C: QUIT" in tail and b"S: 221" in tail
    summary = [line for line in lines if b"<message data," in line]
    assert len(summary) == 1 and counts in summary[0]


async def test_echo_shows_lines_as_sent_whatever_the_reads_and_escapes_controls(tmp_path,
                                                                                sink):
    """Findings 6 and 9: a line that arrived in two reads was two lines; ESC and NUL went
    into the file raw."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all",
                 diagnostics__conversation__data="echo")

    def script(c):
        c.sock.sendall(b"EH")
        time.sleep(0.05)            # two reads, most likely: the log must not care
        c.sock.sendall(b"LO client.test\r\n")
        c.reply()
        c.command(b"MAIL FROM:<a@client.test>")
        c.command(b"RCPT TO:<user@local.test>")
        c.command(b"DATA")
        c.sock.sendall(b"Subject: split\r\n\r\nfirst half of a line, ")
        time.sleep(0.05)
        c.sock.sendall(b"second half\r\nbin\x00ary\x1b[31mRED\x1b[0m\r\n.\r\n")
        assert c.reply().startswith(b"250")
        c.command(b"QUIT")

    async with _core(home) as core:
        await _session(core.smtp_addresses[0][1], script)
        text = await _one_log(home)
    assert b"C: EHLO client.test\n" in text
    assert b"C: first half of a line, second half\n" in text
    assert b"C: bin\\x00ary\\x1b[31mRED\\x1b[0m\n" in text
    assert b"\x00" not in text and b"\x1b" not in text


async def test_summarize_gives_a_line_count_and_an_octet_count(tmp_path, sink):
    """Finding 8: the guide's summary is "a line count and byte count"."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all",
                 diagnostics__conversation__data="summarize")
    content = b"Subject: s\r\n\r\none\r\n..two, dot-stuffed\r\nthree\r\n"

    def script(c):
        _to_data(c)
        c.sock.sendall(content + b".\r\n")
        assert c.reply().startswith(b"250")
        c.command(b"QUIT")

    async with _core(home) as core:
        await _session(core.smtp_addresses[0][1], script)
        text = await _one_log(home)
    assert f"C: <message data, 5 lines, {len(content)} octets>".encode() in text
    assert b"three" not in text
    assert text.index(b"<message data,") < text.index(b"queued as")


async def test_every_line_has_a_utc_time_and_tls_is_recorded(tmp_path, sink):
    """Finding 11."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all")

    def send():
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE         # the home's self-signed certificate
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=context)
            client.sendmail("a@client.test", ["user@local.test"], b"Subject: t\r\n\r\nbody\r\n")

    async with _core(home) as core:
        port = core.smtp_addresses[0][1]
        await trio.to_thread.run_sync(send)
        text = await _one_log(home)
    lines = text.splitlines()
    assert lines[0].startswith(b"# inbound connection ")
    body = [line for line in lines if not line.startswith(b"#")]
    assert body and all(_LINE.match(line) for line in body), body
    [tls] = [line for line in body if b"-- TLS established: TLSv1." in line]
    assert b"cipher " in tls
    assert body.index(tls) < min(i for i, line in enumerate(body) if b"c: mail from" in line.lower())


async def test_auth_continuation_lines_are_masked_in_the_log_and_the_events(tmp_path, sink):
    """Finding 13: after our 502 to AUTH LOGIN the client's base64 password was logged and
    put in a protocol_violation event."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all")

    def script(c):
        c.command(b"EHLO client.test")
        assert c.command(b"AUTH LOGIN").startswith(b"502")
        c.command(b"dXNlcm5hbWU=")
        c.command(b"c2VjcmV0cGFzczI=")
        assert c.command(b"AUTH PLAIN AHVzZXIAc2VjcmV0").startswith(b"502")
        c.command(b"QUIT")

    async with _core(home) as core:
        await _session(core.smtp_addresses[0][1], script)
        text = await _one_log(home)
        await core.events.aflush()
        violations = events_of(home, Action.PROTOCOL_VIOLATION)
    for secret in (b"dXNlcm5hbWU", b"c2VjcmV0cGFzczI", b"AHVzZXIAc2VjcmV0"):
        assert secret not in text
        assert not any(secret.decode() in (row["info"] or "") for row in violations)
    assert text.count(b"C: ****") == 2 and b"C: AUTH PLAIN ****" in text
    assert b"C: QUIT" in text


async def test_a_missing_diagnostics_directory_is_made_again(tmp_path, sink):
    """Finding 10: every connection was an "internal error" event, and no log."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all")
    async with _core(home) as core:
        shutil.rmtree(home.diagnostics)
        await _session(core.smtp_addresses[0][1], lambda c: c.command(b"QUIT"))
        await _one_log(home)
        await core.events.aflush()
        assert not [row for row in events_of(home, Action.CONNECTION_CLOSED)
                    if row["result"] == "error"]
    assert stat.S_IMODE(home.diagnostics.stat().st_mode) == 0o700


async def test_logs_that_cannot_be_written_are_said_once(tmp_path, sink):
    """Finding 10: a log that cannot be written is one scan_error event (at most one a
    minute), not an internal error per connection (inbound) nor silence (outbound)."""
    home = _home(tmp_path, sink, diagnostics__conversation__inbound="all",
                 diagnostics__conversation__outbound="all")
    async with _core(home) as core:
        shutil.rmtree(home.diagnostics)
        home.diagnostics.write_bytes(b"not a directory")
        port = core.smtp_addresses[0][1]
        for _ in range(2):
            await trio.to_thread.run_sync(_send_message, port, "user@local.test")
        await trio.to_thread.run_sync(sink.wait_for, 2)
        await until(lambda: _scan_errors(home, "diagnostics.conversation.outbound"), 10)
        await until(lambda: _scan_errors(home, "diagnostics.conversation.inbound"), 10)
    for setting in ("inbound", "outbound"):
        [row] = _scan_errors(home, f"diagnostics.conversation.{setting}")
        assert str(home.diagnostics) in row["info"]
    assert not [row for row in events_of(home, Action.CONNECTION_CLOSED)
                if row["result"] == "error"]


def _scan_errors(home, rule):
    return [row for row in events_of(home, Action.SCAN_ERROR) if row["rule"] == rule]


# --- outbound: one log per delivery attempt -------------------------------------------------

def _send_message(port: int, recipient: str, subject: str = "t") -> str:
    """Send one message; its queue id (from the 250 reply)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        client.mail("a@client.test")
        client.rcpt(recipient)
        code, text = client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        assert code == 250
        return text.decode().split()[-1]


def _attempt_logs(home, queue_id):
    return [p for p in _logs(home, "outbound") if f"-{queue_id}-" in p.name]


async def test_each_delivery_attempt_has_its_log_when_it_ends_and_says_its_connection(
        tmp_path, sink):
    """Finding 4: one log per pooled connection, written when the pool closed it 30 s
    later, naming no queue id."""
    home = _home(tmp_path, sink, diagnostics__conversation__outbound="all")
    async with _core(home) as core:
        port = core.smtp_addresses[0][1]
        first = await trio.to_thread.run_sync(_send_message, port, "user@local.test", "one")
        await until(lambda: _attempt_logs(home, first), 10)
        second = await trio.to_thread.run_sync(_send_message, port, "user@local.test", "two")
        await until(lambda: _attempt_logs(home, second), 10)     # the pool keeps it open
        [one] = _attempt_logs(home, first)
        [two] = _attempt_logs(home, second)
        assert one.name.endswith(f"-{first}-1.log") and two.name.endswith(f"-{second}-1.log")
        one, two = one.read_bytes(), two.read_bytes()
    assert one.startswith(f"# outbound delivery attempt 1 of {first} to next hop "
                          f"relay:127.0.0.1:{sink.port}".encode())
    connection = re.search(rb"-- connection ([0-9a-f]+): connecting to 127\.0\.0\.1", one)
    assert connection and b"S: 220 " in one and b"C: EHLO " in one
    assert one.count(b"C: MAIL FROM:") == 1 and b"C: MAIL FROM:<a@client.test>" in one
    assert b"reusing connection " + connection.group(1) + b" to 127.0.0.1" in two
    assert b"C: EHLO " not in two and b"S: 220 " not in two
    assert two.count(b"C: MAIL FROM:") == 1
    assert b"S: 250 2.0.0 queued as" in two
    opened, reused = events_of(home, Action.CONNECTED_TO)
    assert opened["connection_id"] == reused["connection_id"] == connection.group(1).decode()
    assert '"connection": "actual"' in opened["data"]
    assert '"connection": "cached"' in reused["data"]


async def test_a_connection_opened_while_logging_was_off_says_its_set_up_was_not_logged(
        tmp_path, sink):
    """Guide tester: the log said "its set-up is in the log of attempt (none), if kept"."""
    home = _home(tmp_path, sink)
    async with _core(home) as core:
        port = core.smtp_addresses[0][1]
        await trio.to_thread.run_sync(_send_message, port, "user@local.test", "one")
        await until(lambda: events_of(home, Action.CONNECTED_TO), 10)
        conn = db.connect(home.db)
        try:
            apply_changes(conn, {"diagnostics.conversation.outbound": "all"})
        finally:
            conn.close()
        await until(lambda: core.settings()["diagnostics.conversation.outbound"] == "all", 10)
        second = await trio.to_thread.run_sync(_send_message, port, "user@local.test", "two")
        await until(lambda: _attempt_logs(home, second), 10)
        [log] = _attempt_logs(home, second)
        text = log.read_text()
    assert "reusing connection " in text and "(none)" not in text
    assert "its set-up was not logged (outbound logging was off when it opened)" in text


@pytest.mark.parametrize("setup, expected", [
    (lambda s: s.rcpt_replies.update({"nobody@local.test": (550, "5.1.1 no such user")}),
     b"!! local: 127.0.0.1 refused: reply to RCPT nobody@local.test: 550 5.1.1 no such user"),
    (lambda s: s.rcpt_replies.update({"nobody@local.test": (451, "4.3.0 try later")}),
     b"!! local: 127.0.0.1 refused: reply to RCPT nobody@local.test: 451 4.3.0 try later"),
    (lambda s: setattr(s, "greeting", (554, "5.7.1 go away")),
     b"!! local: 127.0.0.1 refused: greeting: 554 5.7.1 go away"),
])
async def test_on_error_keeps_the_log_of_an_attempt_the_next_hop_refused(
        tmp_path, make_sink, setup, expected):
    """Finding 2: refused, deferred and bounced attempts wrote no log."""
    hop = make_sink()
    setup(hop)
    home = _home(tmp_path, hop, diagnostics__conversation__outbound="on_error",
                 diagnostics__conversation__errors="local")
    async with _core(home) as core:
        queue_id = await trio.to_thread.run_sync(_send_message, core.smtp_addresses[0][1],
                                                 "nobody@local.test")
        await until(lambda: _attempt_logs(home, queue_id), 10)
        text = _attempt_logs(home, queue_id)[0].read_bytes()
    assert expected in text


async def test_an_attempt_that_cannot_connect_has_a_log(tmp_path):
    """Finding 5: no log at all when the connection was refused, even with `all`."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]          # bound, never listening: connections refused
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": port}],
        diagnostics__conversation__outbound="on_error",
        diagnostics__conversation__errors="communication")
    try:
        async with _core(home) as core:
            queue_id = await trio.to_thread.run_sync(_send_message, core.smtp_addresses[0][1],
                                                     "user@local.test")
            await until(lambda: _attempt_logs(home, queue_id), 10)
            text = sorted(_attempt_logs(home, queue_id))[0].read_bytes()
    finally:
        closed.close()
    assert f"connecting to 127.0.0.1[127.0.0.1]:{port}".encode() in text
    assert f"!! communication: connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused" \
        .encode() in text


async def test_outbound_tls_is_recorded(tmp_path, tls_sink):
    home = _home(tmp_path, tls_sink, diagnostics__conversation__outbound="all")
    async with _core(home) as core:
        queue_id = await trio.to_thread.run_sync(_send_message, core.smtp_addresses[0][1],
                                                 "user@local.test")
        await until(lambda: _attempt_logs(home, queue_id), 10)
        text = _attempt_logs(home, queue_id)[0].read_bytes()
    assert b"C: STARTTLS" in text
    assert re.search(rb"-- TLS established: TLSv1\.\d, cipher \S+; peer certificate sha256 "
                     rb"[0-9a-f]{64}", text)
    body = [line for line in text.splitlines() if not line.startswith(b"#")]
    assert all(_LINE.match(line) for line in body), body
