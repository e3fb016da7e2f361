"""A running core whose tls/ gets a certificate that `cryptography` cannot read the key of
goes on serving SMTP and STARTTLS, and says why the pair does not load (review17 B1).

It stopped within a second (the core's look at tls/ raised UnsupportedAlgorithm from
`cert.public_key()` for a certificate on the SM2 curve beside an RSA key.pem), and then
neither the core nor the console started. Real STARTTLS over loopback (smtplib) against the
core in process; the console over real HTTP.
"""

from __future__ import annotations

import urllib.request

import pytest
import trio

from console.serve import ConsoleServer
from core.app import run_core
from core.smtp.tls import TlsFiles
from shared.events import Action
from tests.integration.test_starttls_bad_pair import _session, _tls_events
from tests.support.core import make_home
from tests.support.unreadable_certificates import certificate_on_an_unknown_curve
from tests.support.waiting import events_of


@pytest.mark.slow       # several looks at tls/ a second apart
@pytest.mark.trio
async def test_a_certificate_on_an_unknown_curve_copied_in_keeps_smtp_and_starttls(tmp_path,
                                                                                  nursery):
    home = make_home(tmp_path)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    served = await trio.to_thread.run_sync(_session, port)
    assert served is not None
    home.tls_cert.write_bytes(certificate_on_an_unknown_curve())   # as `cp` writes it

    with trio.fail_after(15):
        while not _tls_events(home):
            assert await trio.to_thread.run_sync(_session, port) == served
            await core.events.aflush()
            await trio.sleep(0.2)
    await trio.sleep(3 * TlsFiles.CHECK_SECONDS)        # more looks at tls/, still serving
    for _ in range(3):
        assert await trio.to_thread.run_sync(_session, port) == served
    [info] = _tls_events(home)
    assert "the certificate in cert.pem is for a key of a type Mailmoat cannot use" in info
    assert "STARTTLS goes on with the certificate it loaded before" in info
    core.cancel_scope.cancel()


def test_the_console_starts_on_a_home_with_a_certificate_on_an_unknown_curve(tmp_path):
    home = make_home(tmp_path)
    home.tls_cert.write_bytes(certificate_on_an_unknown_curve())    # and no previous pair
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        assert "https" not in server.listeners
        with urllib.request.urlopen(server.urls()["http"] + "logon", timeout=10) as answer:
            assert answer.status == 200
        server.poll_once()                  # a look at tls/ while running raises nothing
        server.context.events.flush()
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "is for a key of a type Mailmoat cannot use" in event["info"]
        assert "HTTPS is off" in event["info"]
    finally:
        server.stop()
