"""Every process that serves SMTP looks at tls/ once a second, whether sessions come or not.

Regression tests for certs17 finding B3 (its rest) and C3:
- a listener process looked at tls/ only when a session asked, so one that had no session
  since an install still had the pair from before it; when a pair that does not load was
  copied over it by hand (which keeps no previous pair to go back to), that process went on
  with the older pair while HTTPS and the processes that had served someone used the
  installed one;
- a certificate in tls/ that had expired, at start or while running, was served without a
  word in the events (OpenSSL loads it; clients that check it refuse it).

Real STARTTLS over loopback (smtplib) against `mailmoat core` with several listener
processes, or the core in process with a fake wall clock that passes the expiry.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509

from console import certs
from core.smtp.tls import TlsFiles
from shared.clock import FakeClock
from shared.events import Action
from shared.tls import make_self_signed
from tests.integration.test_starttls_bad_pair import (_reports_on_stderr,
                                                      _serve_until_reported_and_stop,
                                                      _session, _tls_events, _wait_for)
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of
from tests.support.certificates import (certificate_for_the_key_in_use,
                                        reported_once_when_it_expires)

pytestmark = pytest.mark.slow       # listener processes started and stopped, clocks passed


def _subject_of(path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


def _dates_events(home) -> list[str]:
    return [row["info"] for row in events_of(home, Action.SERVICE_START_FAILED)
            if "the certificate in cert.pem" in (row["info"] or "")]


def test_listener_processes_without_sessions_load_an_install_and_keep_it(tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=3)
    started_with = _subject_of(home.tls_cert)
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))   # every process listens
        # no session from here on until the files are broken: only the processes' own
        # looks can find the install
        certs.install_self_signed(home, "installed.test")
        installed = _subject_of(home.tls_cert)
        time.sleep(3 * TlsFiles.CHECK_SECONDS)      # each process looks in this while
        # a certificate of another key copied over cert.pem by hand: the previous pair
        # stays the one the install replaced (init's), older than what HTTPS serves
        home.tls_cert.write_bytes(make_self_signed("copied.test")[1])
        served = _serve_until_reported_and_stop(home, core)
    assert installed != started_with
    assert served == [installed] * len(served), served
    [info] = _tls_events(home)
    assert "STARTTLS goes on with the certificate it loaded before" in info
    assert _reports_on_stderr(home) == 1


def test_an_expired_certificate_at_start_is_served_and_reported_once(tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=3)
    now = dt.datetime.now(dt.timezone.utc)
    expired = certificate_for_the_key_in_use(home, now - dt.timedelta(days=90),
                                              now - dt.timedelta(days=1))
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))
        _wait_for(lambda: _dates_events(home))
        # still offered: a client that does not check it (an MTA's opportunistic TLS) is
        # better off with it than in cleartext
        assert [_session(core.smtp_port) for _ in range(6)] == [expired] * 6
        time.sleep(3 * TlsFiles.CHECK_SECONDS)      # every process has looked again
        core.stop()
    [info] = _dates_events(home)
    assert f"the certificate in cert.pem expired on {now - dt.timedelta(days=1):%Y-%m-%d}" \
        in info
    assert "browsers and mail servers that check certificates refuse it" in info
    assert "Certificate Management" in info
    log = (home.root / "core-test.log").read_text()
    assert log.count("the certificate in cert.pem expired on") == 1


@pytest.mark.trio
async def test_a_certificate_that_expires_while_the_core_runs_is_reported_once(tmp_path,
                                                                              nursery):
    clock = FakeClock(1_800_000_000.0)
    home = make_home(tmp_path)
    expires = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc) + dt.timedelta(days=2)
    certificate_for_the_key_in_use(home, expires - dt.timedelta(days=90), expires)
    info = await reported_once_when_it_expires(home, clock, nursery, _dates_events)
    assert f"expired on {expires:%Y-%m-%d %H:%M} UTC" in info
