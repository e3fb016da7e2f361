"""A cert.pem whose PEM is well formed but whose certificate does not parse is said to be
that, with cryptography's words, in tls/ and when it is pasted to be installed.

Regression test for certs18 item 2: OpenSSL reports a certificate it cannot parse (a subject
that is not valid UTF-8 in its UTF8String) as a "PEM lib" error, and Mailmoat explained every
such error as "OpenSSL cannot read cert.pem as PEM (lines indented …)"; an install of one
said the certificate did not match the key (matching it failed), DER cut short read "holds no
certificate in PEM format", and an indented key.pem was blamed on cert.pem. Real files in a
real tls/; the certificates are real ones with bytes changed so their DER stays well formed
(tests/support/unreadable_certificates.py).
"""

from __future__ import annotations

import base64
import html

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.tls import load_server_pair, make_self_signed
from tests.console.test_certs17_expiry import CERTIFICATES, _page
from tests.support.unreadable_certificates import certificate_with_an_unreadable_subject

CRYPTOGRAPHY_SAYS = ("(cryptography: error parsing asn1 value: ParseError { kind: "
                     "InvalidValue, location: [\"subject\"] })")


def _key(home):
    return serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)


def test_a_certificate_whose_subject_does_not_parse_is_said_so(admin, home):
    home.tls_cert.write_bytes(certificate_with_an_unreadable_subject(_key(home)))
    problem = load_server_pair(home).problem
    assert problem == ("cert.pem holds well-formed PEM, but the subject of the certificate in "
                       f"it does not parse {CRYPTOGRAPHY_SAYS}; ask its issuer for one "
                       "encoded correctly")
    page = _page(admin, CERTIFICATES)
    assert f"The key and certificate in tls/ do not load: {problem}." in page
    assert "indented" not in page


def test_installing_a_certificate_whose_subject_does_not_parse_says_so(admin, home):
    before = home.tls_cert.read_bytes()
    pasted = certificate_with_an_unreadable_subject(_key(home)).decode()
    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": pasted},
                          follow_redirects=True)
    text = html.unescape(response.get_data(as_text=True))
    assert ("the text pasted holds well-formed PEM, but the subject of the certificate in it "
            f"does not parse {CRYPTOGRAPHY_SAYS}") in text
    assert "does not match" not in text
    assert home.tls_cert.read_bytes() == before


def test_a_certificate_cut_short_in_well_formed_pem_is_said_so(home):
    der = x509.load_pem_x509_certificate(home.tls_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    body = base64.encodebytes(der[:-40]).decode()
    home.tls_cert.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    problem = load_server_pair(home).problem
    assert problem.startswith("cert.pem holds well-formed PEM, but the certificate in it does "
                              "not parse (cryptography: error parsing asn1 value:"), problem
    assert problem.endswith("; copy it again whole, as it was sent, or ask its issuer for one "
                            "encoded correctly"), problem


def test_an_indented_key_is_blamed_on_key_pem(home):
    key_pem, cert_pem = make_self_signed("indented.test")
    home.tls_cert.write_bytes(cert_pem)
    home.tls_key.write_bytes(b"".join(b"  " + line for line in key_pem.splitlines(True)))
    assert load_server_pair(home).problem.startswith(
        "OpenSSL cannot read key.pem as PEM (lines indented")
