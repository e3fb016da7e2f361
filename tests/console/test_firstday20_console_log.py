"""The console's terminal says what an administrator needs, one line per real problem
(firstday20 C6; docs/administration.md keeps that terminal open).

At every start APScheduler wrote "Adding job tentatively -- it will be properly scheduled
when the scheduler starts" three times (and "Added job", "Scheduler started"); each refused
form was logged twice, a bare "The CSRF token is missing." from Flask-WTF before the
console's own line with its request id; and each browser that refused the self-signed
certificate wrote "cheroot: Client (…) lost — peer dropped the TLS connection suddenly,
during handshake: … CERTIFICATE_UNKNOWN", several times a session.
"""

from __future__ import annotations

import signal
import socket
import ssl
import urllib.error
import urllib.request

from shared import db
from shared.settings_store import apply_changes
from tests.support.console import console_process
from tests.support.core import free_ports


def _ports(home) -> tuple[int, int]:
    """Free HTTP and HTTPS ports of this test's console, stored."""
    http_port, https_port = free_ports(2)
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"http.port": http_port, "https.port": https_port})
    finally:
        conn.close()
    return http_port, https_port


def _rejects_the_certificate(port: int) -> None:
    """A TLS client that, as a browser does with a self-signed certificate, ends the
    handshake with an alert."""
    context = ssl.create_default_context()          # verifies: init's pair is self-signed
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            context.wrap_socket(raw, server_hostname="localhost").close()
        except ssl.SSLCertVerificationError:
            return
    raise AssertionError("the self-signed certificate was accepted")


def test_start_a_refused_form_and_a_refused_certificate_write_one_needed_line(home):
    http_port, https_port = _ports(home)
    with console_process(home) as process:
        line = process.stdout.readline()
        assert f":{https_port}/" in line, line
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/logon",
                                         data=b"username=admin&password=x", method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("a form without its token was taken")
        except urllib.error.HTTPError as refused:
            assert refused.code == 400
        for _ in range(3):
            _rejects_the_certificate(https_port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        log = process.stderr.read()
    lines = log.splitlines()
    assert not [x for x in lines if "apscheduler" in x.lower() or "job" in x.lower()
                or "Scheduler" in x], log
    assert [x for x in lines if "CSRF token is missing" in x] == \
        [x for x in lines if "CSRF token is missing" in x and "request " in x], log
    assert len([x for x in lines if "Form expired" in x]) == 1, log
    assert not [x for x in lines if "TLS" in x or "handshake" in x], log


def _offers_no_cipher_the_console_takes(port: int) -> None:
    """An older client: TLS 1.2 with only a cipher without forward secrecy, which the
    console's context (shared.tls.server_context) does not take."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            context.wrap_socket(raw, server_hostname="localhost").close()
        except ssl.SSLError:
            return
    raise AssertionError("a handshake without a shared cipher succeeded")


def test_a_handshake_the_console_cannot_serve_is_a_warning_a_refused_certificate_not(home):
    # review20c D5: afacb90 sent every failed handshake to DEBUG, and nothing enables DEBUG
    http_port, https_port = _ports(home)
    with console_process(home) as process:
        line = process.stdout.readline()
        assert f":{https_port}/" in line, line
        _rejects_the_certificate(https_port)
        _offers_no_cipher_the_console_takes(https_port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        log = process.stderr.read()
    lines = [x for x in log.splitlines() if "TLS" in x or "handshake" in x]
    assert len(lines) == 1, log
    assert " WARNING " in lines[0] and "NO_SHARED_CIPHER" in lines[0], log
