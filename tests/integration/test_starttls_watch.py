"""Every process that serves SMTP looks at tls/ once a second, whether sessions come or not.

Regression test for certs17 finding B3 (its rest): a listener process looked at tls/ only
when a session asked, so one that had no session since an install still had the pair from
before it; when a pair that does not load was copied over it by hand (which keeps no
previous pair to go back to), that process went on with the older pair while HTTPS and the
processes that had served someone used the installed one.

Real STARTTLS over loopback (smtplib) against `mailmoat core` with several listener
processes.
"""

from __future__ import annotations

import time

import pytest
from cryptography import x509

from console import certs
from core.smtp.tls import TlsFiles
from shared.events import Action
from shared.tls import make_self_signed
from tests.integration.test_starttls_bad_pair import (_reports_on_stderr,
                                                      _serve_until_reported_and_stop,
                                                      _tls_events, _wait_for)
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of

pytestmark = pytest.mark.slow       # listener processes started and stopped


def _subject_of(path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


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
