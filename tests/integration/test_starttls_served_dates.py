"""The expiry event is about the certificate STARTTLS serves, the previous one included.

Regression test for regress17 finding R2: after a restart with a cert.pem that does not load,
STARTTLS (and HTTPS) served cert.pem.previous although it had expired, and no event said so:
the dates were looked at only while cert.pem's own pair was served.

Real STARTTLS over loopback (smtplib) against `mailmoat core` with two listener processes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time

import pytest
from cryptography import x509

from core.smtp.tls import TlsFiles
from shared.events import Action
from tests.integration.test_starttls_bad_pair import _session, _wait_for
from tests.support.certificates import certificate_for_the_key_in_use, indent_by_hand
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of

pytestmark = pytest.mark.slow       # listener processes started and stopped


def _dates_events(home) -> list[str]:
    return [row["info"] for row in events_of(home, Action.SERVICE_START_FAILED)
            if " expired on " in (row["info"] or "")]


def test_an_expired_previous_pair_served_at_start_is_reported_once(tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=2)
    now = dt.datetime.now(dt.timezone.utc)
    expired_at = now - dt.timedelta(days=1)
    expired = certificate_for_the_key_in_use(home, now - dt.timedelta(days=90), expired_at)
    for path in (home.tls_key, home.tls_cert):      # the pair an install replaced
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    # a valid certificate for the same key, indented by hand: OpenSSL does not read it
    certificate_for_the_key_in_use(home, now - dt.timedelta(days=1),
                                    now + dt.timedelta(days=365))
    indent_by_hand(home)
    assert x509.load_pem_x509_certificate(home.tls_cert.read_bytes())   # parsed leniently
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))
        _wait_for(lambda: _dates_events(home))
        assert [_session(core.smtp_port) for _ in range(6)] == [expired] * 6
        time.sleep(3 * TlsFiles.CHECK_SECONDS)      # every process has looked again
        core.stop()
    [info] = _dates_events(home)
    assert (f"the previous certificate, in cert.pem.previous (served while cert.pem does not "
            f"load), expired on {expired_at:%Y-%m-%d %H:%M} UTC") in info
    assert "browsers and mail servers that check certificates refuse it" in info
    log = (home.root / "core-test.log").read_text()
    assert log.count("cert.pem.previous (served while cert.pem does not load), expired on") == 1
