"""While cert.pem does not load, the pages' dates notice is about the previous certificate,
which the servers serve then.

Regression test for regress17 finding R2: with an expired cert.pem.previous and a cert.pem
that does not load, HTTPS and STARTTLS served the expired certificate after a restart, while
Certificate Management and Status said nothing of it (their notice looked at cert.pem).
"""

from __future__ import annotations

import datetime as dt
import shutil

from tests.console.test_certs17_expiry import CERTIFICATES, EXPIRES, _page, _set_clock
from tests.support.certificates import certificate_for_the_key_in_use, indent_by_hand


def _keep_as_previous_and_indent(home) -> None:
    """The pair in tls/ kept as the previous pair, then a valid certificate for the same key
    indented by hand in cert.pem (OpenSSL does not read it; a lenient parse does)."""
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    certificate_for_the_key_in_use(home, EXPIRES - dt.timedelta(days=10),
                                    EXPIRES + dt.timedelta(days=365))
    indent_by_hand(home)


def test_an_expired_previous_certificate_is_said_while_cert_pem_does_not_load(admin, home,
                                                                              clock):
    certificate_for_the_key_in_use(home, EXPIRES - dt.timedelta(days=90), EXPIRES)
    _keep_as_previous_and_indent(home)
    _set_clock(admin, clock, EXPIRES + dt.timedelta(days=1))
    page = _page(admin, CERTIFICATES)
    assert "The key and certificate in tls/ do not load" in page
    assert ("The previous certificate, in cert.pem.previous (served while cert.pem does not "
            "load), expired on 2026-11-28 22:07 UTC: the console's HTTPS and the SMTP STARTTLS "
            "still offer it") in page
    status = _page(admin, "/status/")
    assert ("— does not load; the servers go on with the last good pair, the previous pair "
            "(cert.pem.previous) from their next start; the previous pair's certificate expired "
            "on 2026-11-28 (see Certificate Management)") in status


def test_a_previous_certificate_near_its_expiry_is_said_and_a_valid_one_is_not(admin, home,
                                                                              clock):
    certificate_for_the_key_in_use(home, EXPIRES - dt.timedelta(days=90), EXPIRES)
    _keep_as_previous_and_indent(home)
    _set_clock(admin, clock, EXPIRES - dt.timedelta(days=60))
    assert "certificate, in cert.pem.previous" not in _page(admin, CERTIFICATES)
    assert "the previous pair's certificate" not in _page(admin, "/status/")
    _set_clock(admin, clock, EXPIRES - dt.timedelta(days=10, hours=1))
    assert ("The previous certificate, in cert.pem.previous (served while cert.pem does not "
            "load), expires on 2026-11-28 22:07 UTC, in 10 days") in _page(admin, CERTIFICATES)
    assert ("from their next start; the previous pair's certificate expires on 2026-11-28"
            in _page(admin, "/status/"))
