"""While the pair in tls/ does not load, the Status page's certificate row says so and what is
served instead, and Certificate Management does not say below cert.pem's details that the
servers use it (upgrade17 B3, C1: Status showed the date of a certificate not in use, with
no word, and Certificate Management said both that it does not load and that HTTPS and
STARTTLS use it). Real keys and certificates; the servers' side is in test_certificate_faults.
"""

from __future__ import annotations

import html
import shutil

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CERTIFICATES = "/configuration/setup/certificates"
ROW = '<th scope="row">SSL certificate installed</th><td class="num">'
USED = "The console's HTTPS port and the SMTP STARTTLS use this certificate."
NOT_USED = ("This is tls/cert.pem, which does not load: the console's HTTPS port and the SMTP "
            "STARTTLS do not use it (above: what they use instead).")


def _break_key(home) -> None:
    """A key copied in that belongs to another certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    home.tls_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))


def _row(admin) -> str:
    page = html.unescape(admin.get("/status/").get_data(as_text=True))
    start = page.index(ROW) + len(ROW)
    return page[start:page.index("</td>", start)]


def _certificates(admin) -> str:
    return html.unescape(admin.get(CERTIFICATES).get_data(as_text=True))


def test_a_pair_that_loads_is_said_to_be_used(admin, home):
    assert " — " not in _row(admin)
    page = _certificates(admin)
    assert USED in page and NOT_USED not in page


def test_without_a_previous_pair_status_says_https_is_off_and_no_starttls(admin, home):
    _break_key(home)
    assert _row(admin).endswith(
        " — does not load, and there is no previous pair: from a start on, HTTPS is off and "
        "SMTP offers no STARTTLS (see Certificate Management)")
    page = _certificates(admin)
    assert NOT_USED in page and USED not in page


def test_with_a_previous_pair_status_says_it_is_served_instead(admin, home):
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    _break_key(home)
    assert _row(admin).endswith(" — does not load; the servers go on with the last good pair, "
                                "the previous pair (cert.pem.previous) from their next start "
                                "(see Certificate Management)")
    page = _certificates(admin)
    assert NOT_USED in page and USED not in page


def test_a_cert_pem_that_is_no_certificate_is_said_too(admin, home):
    """It read "Not installed", the pair's mark dropped (review17b B3)."""
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    home.tls_cert.write_text("garbage\n")
    assert _row(admin) == ("No certificate — does not load; the servers go on with the last good "
                           "pair, the previous pair (cert.pem.previous) from their next start "
                           "(see Certificate Management)")
