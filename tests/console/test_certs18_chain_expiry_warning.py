"""The warning 30 days before an expiry is of the certificate served that expires first: the
leaf, or a chain certificate (an intermediate) after it, named.

Regression test for certs18 item 1: the warning (Certificate Management's notice, the Status
page's mark, `mailmoat run`'s start line) looked at the leaf only, so an intermediate that
expired before the leaf was said only once it had expired and clients refused the chain.
Real certificates (root, intermediate, a leaf for tls/key.pem); the console's clock decides
what "now" is.
"""

from __future__ import annotations

import datetime as dt

from core.commands import certificate_lines
from tests.console.test_certs17_expiry import CERTIFICATES, EXPIRES, _page, _set_clock
from tests.support.certificates import INTERMEDIATE, chain_into_tls

DAY = dt.timedelta(days=1)


def test_an_intermediate_that_expires_before_the_leaf_is_warned_of_by_name(admin, home, clock):
    now = EXPIRES - 10 * DAY - dt.timedelta(hours=1)
    chain_into_tls(home, now, intermediate_expires=EXPIRES)     # the leaf: a year
    _set_clock(admin, clock, now)
    page = _page(admin, CERTIFICATES)
    assert (f"The chain certificate {INTERMEDIATE} served after the certificate expires on "
            "2026-11-28 22:07 UTC, in 10 days: ask your CA for its current chain now") in page
    assert (f"— its chain certificate {INTERMEDIATE} expires on 2026-11-28 (see Certificate "
            "Management)") in _page(admin, "/status/")
    [line] = certificate_lines(home, now)
    assert line.startswith(
        f"the chain certificate {INTERMEDIATE} served after the certificate in cert.pem "
        "expires on 2026-11-28 22:07 UTC, in 10 days; then browsers and mail servers that "
        "check certificates refuse it. Ask your CA for its current chain"), line


def test_the_leaf_is_warned_of_when_it_expires_first(admin, home, clock):
    now = EXPIRES - 10 * DAY - dt.timedelta(hours=1)
    chain_into_tls(home, now, intermediate_expires=EXPIRES + 5 * DAY, leaf_expires=EXPIRES)
    _set_clock(admin, clock, now)
    page = _page(admin, CERTIFICATES)
    assert "The certificate expires on 2026-11-28 22:07 UTC, in 10 days: ask your CA" in page
    assert "The chain certificate" not in page
    assert "— expires on 2026-11-28 (see Certificate Management)" in _page(admin, "/status/")
    [line] = certificate_lines(home, now)
    assert line.startswith("the certificate in cert.pem expires on 2026-11-28 22:07 UTC, in "
                           "10 days; then browsers"), line


def test_an_intermediate_more_than_30_days_from_its_expiry_is_not_warned_of(admin, home,
                                                                            clock):
    now = EXPIRES - 31 * DAY
    chain_into_tls(home, now, intermediate_expires=EXPIRES)
    _set_clock(admin, clock, now)
    assert "expires on" not in _page(admin, CERTIFICATES)
    assert "(see Certificate Management)" not in _page(admin, "/status/")
    assert certificate_lines(home, now) == []
