"""An expired certificate served by the console's HTTPS has one event: the core's, which
speaks of the pair both servers serve; the console writes none of its own (certs18 item 3).

The two servers serve the same files of tls/ and decide what they serve alike
(shared.tls.pair_to_serve), and the core's `service_start_failed` text names the console's
HTTPS and the SMTP STARTTLS; a second event from the console would say the same fact again
at each of its starts. What the console says of it is on its pages while it lasts. This pins
that decision: the console, started on an expired certificate, serves it (OpenSSL does) and
writes no event, and the event text the core writes names both servers. A real console
server on loopback ports and a real TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl

from console.serve import ConsoleServer
from shared.events import Action
from shared.tls import load_server_pair, out_of_dates_message, served_certificate
from tests.support.certificates import certificate_for_the_key_in_use
from tests.support.waiting import events_of


def _served_der(port: int) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def test_the_console_serving_an_expired_certificate_leaves_the_event_to_the_core(home):
    now = dt.datetime.now(dt.timezone.utc)
    der = certificate_for_the_key_in_use(home, now - dt.timedelta(days=90),
                                         now - dt.timedelta(days=1))
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0)
    server.start()
    try:
        assert _served_der(server.listeners["https"].port) == der
        server.poll_once()
        server.context.events.flush()
    finally:
        server.stop()
    assert events_of(home, Action.SERVICE_START_FAILED) == []
    cert, which, chain = served_certificate(home, load_server_pair(home))
    message = out_of_dates_message(cert, now, which, chain)
    assert ": the console's HTTPS and the SMTP STARTTLS still offer it, but browsers and mail " \
           "servers that check certificates refuse it" in message
