"""An expired certificate in tls/ is said on Certificate Management and on the Status page.

Regression tests for certs17 finding C3: a certificate copied into tls/ by hand after it
expired, or one that aged out, was shown as a plain "Expires" date, with no mark on the
Status page, while HTTPS and STARTTLS went on offering it (OpenSSL loads an expired
certificate; clients that check it refuse it). The console's clock decides what "now" is,
so a test moves it across the dates of a real certificate.
"""

from __future__ import annotations

import datetime as dt
import html

from tests.support.certificates import certificate_for_the_key_in_use

CERTIFICATES = "/configuration/setup/certificates"


def _page(admin, url) -> str:
    return html.unescape(admin.get(url).get_data(as_text=True))


def _set_clock(admin, clock, when: dt.datetime) -> None:
    """The console's clock at `when`, and a logon at that time (a session idle that long
    has expired)."""
    clock.value = when.timestamp()
    assert admin.logon().status_code == 302


EXPIRES = dt.datetime(2026, 11, 28, 22, 7, tzinfo=dt.timezone.utc)


def test_an_expired_certificate_in_tls_is_said_on_both_pages(admin, home, clock):
    certificate_for_the_key_in_use(home, EXPIRES - dt.timedelta(days=90), EXPIRES)
    _set_clock(admin, clock, EXPIRES + dt.timedelta(days=1))
    page = _page(admin, CERTIFICATES)
    assert ("The certificate in cert.pem expired on 2026-11-28 22:07 UTC: the console's HTTPS "
            "and the SMTP STARTTLS still offer it, but browsers and mail servers that check "
            "certificates refuse it. Install a valid certificate below") in page
    assert "2026-11-28 22:07 UTC <strong>(expired)</strong>" in page
    status = _page(admin, "/status/")
    assert "— expired on 2026-11-28 (see Certificate Management)" in status


def test_a_certificate_is_marked_as_it_comes_near_its_expiry_and_passes_it(admin, home, clock):
    certificate_for_the_key_in_use(home, EXPIRES - dt.timedelta(days=90), EXPIRES)
    _set_clock(admin, clock, EXPIRES - dt.timedelta(days=45))
    assert "expire" not in _page(admin, CERTIFICATES).split("Private key installed")[0]
    assert "(see Certificate Management)" not in _page(admin, "/status/")

    _set_clock(admin, clock, EXPIRES - dt.timedelta(days=10, hours=1))
    page = _page(admin, CERTIFICATES)
    assert "The certificate expires on 2026-11-28 22:07 UTC, in 10 days: ask your CA" in page
    assert "<strong>(expired)</strong>" not in page
    assert "— expires on 2026-11-28 (see Certificate Management)" in _page(admin, "/status/")

    _set_clock(admin, clock, EXPIRES + dt.timedelta(seconds=1))
    assert "expired on 2026-11-28 22:07 UTC" in _page(admin, CERTIFICATES)
    assert "— expired on 2026-11-28" in _page(admin, "/status/")


def test_a_certificate_not_valid_yet_is_said(admin, home, clock):
    starts = EXPIRES + dt.timedelta(days=3)
    certificate_for_the_key_in_use(home, starts, starts + dt.timedelta(days=90))
    _set_clock(admin, clock, EXPIRES)
    assert ("The certificate in cert.pem is not valid before 2026-12-01 22:07 UTC"
            in _page(admin, CERTIFICATES))
    assert "— not valid before 2026-12-01" in _page(admin, "/status/")
