"""While the pair in tls/ does not load, the console's HTTPS serves the last good pair.

Regression test for the console's half of certs17 finding B3: when a pair that does not
load came less than a poll after an install (the console looks at tls/ every POLL_SECONDS),
HTTPS had not loaded the installed pair yet and kept the one it had, older than the previous
pair the console kept. Now it decides as every server does (shared.tls.pair_to_serve).

Real HTTPS over loopback against ConsoleServer; the pairs come from the console's own
install code.
"""

from __future__ import annotations

import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from console import certs
from console.serve import ConsoleServer
from shared.events import Action
from shared.tls import make_self_signed, previous_path, write_atomically
from tests.support.waiting import events_of


def _served_subject(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _subject_of(path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


def _break_after_install(home) -> str:
    """An install, then at once the state an install of a pair that does not load leaves
    (the good pair kept as previous, a certificate of another key in cert.pem), with no
    poll between; returns the installed pair's subject."""
    certs.install_self_signed(home, "installed.test")
    installed = _subject_of(home.tls_cert)
    for path in (home.tls_key, home.tls_cert):
        write_atomically(previous_path(path), path.read_bytes())
    write_atomically(home.tls_cert, make_self_signed("other-key.test")[1], 0o644)
    return installed


def test_a_pair_that_does_not_load_right_after_an_install_serves_the_installed_pair(home):
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        port = server.listeners["https"].port
        started_with = _served_subject(port)
        installed = _break_after_install(home)
        for _ in range(4):          # the first two decide (an install is two renames)
            server.poll_once()
        assert installed != started_with
        assert _served_subject(port) == installed
        server.context.events.flush()
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "HTTPS uses the previous pair" in event["info"]
        assert "key.pem is not the private key of the certificate in cert.pem" in event["info"]
    finally:
        server.stop()


def test_a_pair_that_does_not_load_after_the_installed_one_was_loaded_keeps_it(home):
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        port = server.listeners["https"].port
        certs.install_self_signed(home, "installed.test")
        server.poll_once()
        installed = _served_subject(port)
        assert installed == _subject_of(home.tls_cert)
        # a certificate of another key copied over cert.pem: the previous pair is the one
        # HTTPS served before the install, older than what it serves now
        home.tls_cert.write_bytes(make_self_signed("copied.test")[1])
        for _ in range(4):
            server.poll_once()
        assert _served_subject(port) == installed
        server.context.events.flush()
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "HTTPS goes on with the certificate it loaded before" in event["info"]
    finally:
        server.stop()
