"""Serving: HTTP and HTTPS at once with cheroot, ports that follow the settings, the CLI."""

from __future__ import annotations

import logging
import re
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request

import pytest

from console.serve import ConsoleServer
from shared import db
from shared.events import Action
from shared.settings_store import apply_changes
from tests.support.console import console_process
from tests.support.core import free_ports


def _get(url: str, timeout: float = 5.0) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
        return response.status


def _set(home, **changes):
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {k.replace("__", "."): v for k, v in changes.items()})
    finally:
        conn.close()


@pytest.fixture
def server(home):
    servers = []

    def make(**kw):
        server = ConsoleServer(home, host="127.0.0.1", **kw)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def test_http_and_https_are_served_at_once(server):
    console = server(http_port=0, https_port=0)
    urls = console.urls()
    assert _get(urls["http"] + "logon") == 200
    assert _get(urls["https"] + "logon") == 200


def test_listeners_move_when_the_port_settings_change(server, home):
    _set(home, **dict(zip(("http__port", "https__port"), free_ports(2))))
    console = server()
    old_http = console.listeners["http"].port
    assert _get(f"http://127.0.0.1:{old_http}/logon") == 200
    new_http, new_https = free_ports(2)
    _set(home, http__port=new_http, https__port=new_https)
    console.poll_once()
    assert console.listeners["http"].port == new_http
    assert _get(f"http://127.0.0.1:{new_http}/logon") == 200
    assert _get(f"https://127.0.0.1:{new_https}/logon") == 200
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{old_http}/logon", timeout=1)


def test_a_port_that_cannot_be_bound_keeps_the_old_listener(server, home):
    _set(home, **dict(zip(("http__port", "https__port"), free_ports(2))))
    console = server()
    old = console.listeners["http"].port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        _set(home, http__port=busy.getsockname()[1])
        console.poll_once()
    assert console.listeners["http"].port == old
    assert _get(f"http://127.0.0.1:{old}/logon") == 200


def test_a_move_that_fails_is_logged_once_per_port_and_tried_again(server, home, caplog):
    # guide36 finding 1: the same error twice a second, for ever, while the port stayed busy
    _set(home, **dict(zip(("http__port", "https__port"), free_ports(2))))
    console = server()
    old = console.listeners["http"].port
    caplog.set_level(logging.INFO, logger="mailmoat.console.serve")
    with socket.socket() as first, socket.socket() as second:
        for busy in (first, second):
            busy.bind(("127.0.0.1", 0))
            busy.listen()
        for busy in (first, second, first):
            _set(home, http__port=busy.getsockname()[1])
            for _ in range(3):
                console.poll_once()
        failures = [r.getMessage() for r in caplog.records if "cannot move" in r.getMessage()]
        assert len(failures) == 3       # one per change of the port it cannot move to
        assert [f"port {busy.getsockname()[1]} " in line
                for line, busy in zip(failures, (first, second, first))] == [True] * 3
        assert console.listeners["http"].port == old
        freed = first.getsockname()[1]
    console.poll_once()         # the port is free now: the listener gets there
    assert console.listeners["http"].port == freed
    assert _get(f"http://127.0.0.1:{freed}/logon") == 200


def test_mailmoat_console_prints_urls_and_stops_cleanly_on_sigterm(home):
    http_port, https_port = free_ports(2)
    _set(home, http__port=http_port, https__port=https_port)
    with console_process(home) as process:
        line = process.stdout.readline()
        assert f":{http_port}/" in line and f":{https_port}/" in line, \
            line + process.stderr.read() if process.poll() is not None else line
        assert _get(f"http://127.0.0.1:{http_port}/logon") == 200
        assert _get(f"https://127.0.0.1:{https_port}/logon") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def test_plain_http_to_the_https_port_gets_a_400_one_event_and_no_stderr_line(home):
    """The bug this pins: cheroot wrote its own line to stderr for it, and its 400 went to
    a socket the failed handshake had closed, so the client saw a reset."""
    http_port, https_port = free_ports(2)
    _set(home, http__port=http_port, https__port=https_port)
    answer = b""
    with console_process(home) as process:
        line = process.stdout.readline()
        assert f":{https_port}/" in line, line
        with socket.create_connection(("127.0.0.1", https_port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:    # what the client got before: asserted below
                pass
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    stderr = process.stderr.read()
    # only the console's own log lines: nothing raw from cheroot, no traceback, and no
    # line at all for this request, which is recorded as the other refused ones are
    assert all(_LOG_LINE.match(line) for line in stderr.splitlines()), stderr
    assert "plain HTTP" not in stderr, stderr
    conn = db.connect(home.db)
    try:
        events = conn.execute("SELECT result, client_ip, info FROM events WHERE action = ?",
                              (str(Action.HTTP_PROTOCOL_VIOLATION),)).fetchall()
    finally:
        conn.close()
    assert [tuple(event) for event in events] == [
        ("rejected", "127.0.0.1", "plain HTTP sent to the HTTPS port")]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request", answer
    assert b"HTTPS only" in body


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} mailmoat-console [A-Z]+ ")


def test_mailmoat_console_without_a_home_fails_with_a_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
         "console", "--home", str(tmp_path / "missing")], capture_output=True, text=True,
        timeout=30)
    assert result.returncode == 1
    assert "run `mailmoat init` first" in result.stderr
    assert "Traceback" not in result.stderr
