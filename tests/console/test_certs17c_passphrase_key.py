"""Installing a certificate while tls/key.pem has a passphrase says that the key in use
cannot be read, not that the certificate does not match it.

Regression test for certs17 finding C8: with a passphrase-protected key.pem copied in by
hand, its own certificate was refused as "does not match the private key of the last
certificate request (nor the key in use)": it does match; the key could not be read.
"""

from __future__ import annotations

import datetime as dt
import html
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERTIFICATES = "/configuration/setup/certificates"
REQUEST = {"request-common_name": "mail.example.com", "request-organization": "Example Ltd",
           "request-unit": "", "request-city": "Springfield", "request-state": "Illinois",
           "request-country": "US", "request-email": "admin@example.com"}
CANNOT_BE_READ = ("the key in use cannot be read: tls/key.pem is protected by a passphrase, "
                  "and Mailmoat needs the key without one (openssl pkey -in key.pem -out "
                  "plain.pem asks for it; put plain.pem in its place as key.pem, mode 0600), "
                  "then install the certificate again")


def _key_with_passphrase_and_its_certificate(home) -> str:
    """key.pem replaced by a key under a passphrase, as copied in by hand; returns the
    certificate a CA signed for that key, in PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    home.tls_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret passphrase")))
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.com")]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passphrase CA")]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _install_error(admin, pem: str) -> str:
    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": pem})
    assert response.status_code == 200
    [error] = re.findall(r'<span class="error" id="install-certificate-error">(.*?)</span>',
                         response.get_data(as_text=True), re.S)
    return html.unescape(error)


def test_the_certificate_of_a_key_with_a_passphrase_is_refused_for_the_passphrase(admin, home):
    pem = _key_with_passphrase_and_its_certificate(home)
    cert_before = home.tls_cert.read_bytes()
    error = _install_error(admin, pem)
    assert error == CANNOT_BE_READ
    assert "does not match" not in error
    assert home.tls_cert.read_bytes() == cert_before


def test_with_a_pending_request_both_keys_are_accounted_for(admin, home):
    pem = _key_with_passphrase_and_its_certificate(home)
    assert admin.post(f"{CERTIFICATES}/request", REQUEST).status_code == 302
    error = _install_error(admin, pem)
    assert error == ("the certificate does not match the private key of the last certificate "
                     "request, and " + CANNOT_BE_READ)
