"""`mailmoat run`'s start lines say what is wrong with the certificate the servers start
with, in the words of the core's events and the console's pages.

Regression test for certs18 item 4: the start lines (also `make run`'s, which ends in
`mailmoat run`) said nothing of a certificate that had expired, was not yet valid or would
expire within 30 days, and said a pair that does not load only inside the Console line,
without what the servers serve meanwhile. A real `mailmoat run` on a real data home, and
the same lines for other states of tls/ from the function that writes them.
"""

from __future__ import annotations

import datetime as dt
import shutil

from core.commands import certificate_lines
from shared.tls import load_server_pair, out_of_dates_message, served_certificate
from tests.support.certificates import certificate_for_the_key_in_use, indent_by_hand
from tests.support.core import make_home, run_banner

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


def test_the_start_lines_say_the_certificate_served_has_expired(tmp_path):
    home = make_home(tmp_path / "home")
    expired = NOW - DAY
    certificate_for_the_key_in_use(home, NOW - 90 * DAY, expired)
    banner = run_banner(home)
    cert, which, chain = served_certificate(home, load_server_pair(home))
    # the core's event text, to the minute, whatever the second the run started in
    expected = out_of_dates_message(cert, NOW, which, chain)
    assert expected.startswith(f"the certificate in cert.pem expired on "
                               f"{expired:%Y-%m-%d %H:%M} UTC: the console's HTTPS and the "
                               "SMTP STARTTLS still offer it")
    assert f"\nCertificate: {expected}.\n" in banner, banner
    assert banner.index("Certificate:") < banner.index("SMTP:")


def test_a_certificate_not_valid_yet_and_one_near_its_expiry_get_a_line(tmp_path):
    home = make_home(tmp_path / "home")
    certificate_for_the_key_in_use(home, NOW + 3 * DAY, NOW + 90 * DAY)
    [line] = certificate_lines(home, NOW)
    assert line.startswith(f"the certificate in cert.pem is not valid before "
                           f"{NOW + 3 * DAY:%Y-%m-%d %H:%M} UTC"), line
    certificate_for_the_key_in_use(home, NOW - DAY, NOW + 20 * DAY + dt.timedelta(hours=1))
    [line] = certificate_lines(home, NOW)
    assert line.startswith(f"the certificate in cert.pem expires on "
                           f"{NOW + 20 * DAY + dt.timedelta(hours=1):%Y-%m-%d %H:%M} UTC, "
                           "in 20 days; then browsers and mail servers that check "
                           "certificates refuse it. Ask your CA for a renewed certificate "
                           "now"), line


def test_a_pair_that_does_not_load_gets_a_line_with_what_is_served_meanwhile(tmp_path):
    home = make_home(tmp_path / "home")
    # init's pair is valid from the moment it was made: NOW, taken when the module was
    # imported, may be before that (under pytest-xdist, minutes before)
    now = dt.datetime.now(dt.timezone.utc)
    assert certificate_lines(home, now) == []           # init's self-signed pair
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    indent_by_hand(home)
    [line] = certificate_lines(home, now)
    assert line.startswith("the key and certificate in tls/ do not load: OpenSSL cannot read "
                           "cert.pem as PEM (lines indented"), line
    assert ("Meanwhile each of HTTPS and STARTTLS uses the previous pair (key.pem.previous "
            "and cert.pem.previous).") in line
    # and the previous certificate's dates, which is what is served then
    certificate_for_the_key_in_use(home, now - 90 * DAY, now - DAY)
    shutil.copy2(home.tls_cert, home.tls_cert.with_name("cert.pem.previous"))
    indent_by_hand(home)
    unusable, dates = certificate_lines(home, now)
    assert unusable.startswith("the key and certificate in tls/ do not load")
    assert dates.startswith("the previous certificate, in cert.pem.previous (served while "
                            "cert.pem does not load), expired on"), dates
    for path in (home.tls_key, home.tls_cert):
        path.with_name(path.name + ".previous").unlink()
    [line] = certificate_lines(home, now)
    assert "Meanwhile HTTPS is off and SMTP offers no STARTTLS." in line, line
