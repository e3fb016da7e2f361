"""Certificate Management shows a subject and an issuer common name first, as OpenSSL and
browsers show them, in one form (shared.tls.shown_name) for the page and its messages.

Regression test for certs17 finding C11: they were shown in RFC 4514 order, the reverse of
the certificate's, so the common name came last
(`emailAddress=admin@example.com,C=US,...,CN=mail.example.com`; `O=Mailmoat self-signed,CN=vm`).
"""

from __future__ import annotations

import datetime as dt
import html
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from console import certs

CERTIFICATES = "/configuration/setup/certificates"
REQUEST = {"request-common_name": "mail.example.com", "request-organization": "Müller, Söhne",
           "request-unit": "IT", "request-city": "Springfield", "request-state": "Illinois",
           "request-country": "US", "request-email": "admin@example.com"}
# A CA's name as CAs write it: country first, common name last.
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Trust"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "Test Issuing CA")])


def _rows(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in re.findall(
        r'<th scope="row">(Subject|Issuer)</th><td>(.*?)</td>', page)}


def _signed(csr_pem: str) -> str:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(CA_NAME)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_self_signed_certificate_of_init_is_shown_common_name_first(admin, home):
    common_name = x509.load_pem_x509_certificate(home.tls_cert.read_bytes()).subject \
        .get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    rows = _rows(admin.get(CERTIFICATES).get_data(as_text=True))
    assert rows == {"Subject": f"CN={common_name}, O=Mailmoat self-signed",
                    "Issuer": f"CN={common_name}, O=Mailmoat self-signed (self-signed)"}


def test_a_ca_signed_certificate_is_shown_common_name_first(admin, home):
    assert admin.post(f"{CERTIFICATES}/request", REQUEST).status_code == 302
    response = admin.post(f"{CERTIFICATES}/install", {
        "install-certificate": _signed(certs.request_path(home).read_text())})
    assert response.status_code == 302
    rows = _rows(admin.get(CERTIFICATES).get_data(as_text=True))
    # the most specific first, as browsers show it, whatever the certificate's order (the
    # request's: CN first; the CA's: C first); a comma inside a value escaped, as RFC 4514
    # does (review17b C1: the promised order held for neither)
    assert rows == {"Subject": "CN=mail.example.com, OU=IT, O=Müller\\, Söhne, L=Springfield, "
                               "ST=Illinois, C=US, emailAddress=admin@example.com",
                    "Issuer": "CN=Test Issuing CA, O=Test Trust, C=US"}
