"""While the pair in tls/ does not load, every SMTP listener process serves the last good pair.

Regression test for certs17 finding B3: an SMTP listener process looks at tls/ only when a
session asks, so one that had no session between the console's install of a good pair and
a pair that does not load kept whatever it loaded last — the self-signed pair of `mailmoat
init`, replaced minutes before — while HTTPS and cert.pem.previous had the good one (and
processes of one core served different ones). Now each serves the previous pair when the
console kept it after the process loaded its own (shared.tls.pair_to_serve).

Real STARTTLS over loopback (smtplib) against `mailmoat core` with three listener
processes; the certificates come from the console's own install code.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from console import certs
from shared.events import Action
from shared.tls import make_self_signed, previous_path, write_atomically
from tests.integration.test_starttls_bad_pair import (_reports_on_stderr, _session,
                                                      _subject, _tls_events, _wait_for)
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of

pytestmark = pytest.mark.slow       # three listener processes started and stopped (~8 s)


def _subject_of(path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).subject.rfc4514_string()


def test_a_pair_that_does_not_load_after_an_install_serves_the_installed_pair_everywhere(
        tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=3)
    started_with = _subject_of(home.tls_cert)
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))   # every process listens
        other_cert = make_self_signed("other-key.test")[1]
        # no session from here on until the files are broken: no process looks at tls/
        certs.install_self_signed(home, "installed.test")
        installed = _subject_of(home.tls_cert)
        # the state an install of a pair that does not load leaves (certs17 B1: the console
        # did that; a restore or a copy by hand still can): the good pair kept as previous,
        # a certificate of another key in cert.pem
        for path in (home.tls_key, home.tls_cert):
            write_atomically(previous_path(path), path.read_bytes())
        write_atomically(home.tls_cert, other_cert, 0o644)
        # a process asked within a second of its last look serves what it has (the files
        # are looked at once a second, as the console's HTTPS does), and on a loaded machine
        # a look comes late: so sessions go on until a dozen in a row, over all three
        # processes, served the installed pair (init's before that, at most)
        served: list = []

        def settled() -> bool:
            served.append(_subject(_session(core.smtp_port)))
            return bool(_tls_events(home)) and served[-12:] == [installed] * 12

        _wait_for(settled, timeout=60.0)
        core.stop()
    assert installed != started_with
    assert _subject_of(previous_path(home.tls_cert)) == installed
    assert set(served) <= {started_with, installed}, served
    # once, in the words of the process that looked first: one that loaded the install
    # after the previous pair was written keeps its own (the same certificate)
    [info] = _tls_events(home)
    assert ("STARTTLS uses the previous pair" in info
            or "STARTTLS goes on with the certificate it loaded before" in info), info
    assert _reports_on_stderr(home) == 1

