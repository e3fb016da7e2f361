"""A certificate request's e-mail address with an international domain is written in A-labels.

Regression test for certs17 finding C6: `admin@müller.example` went into the request's
emailAddress, an IA5String (RFC 5280 §4.1.2.6: ASCII only), as raw UTF-8, a request CAs may
reject; the A-label form the address check returns was thrown away.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from console import certs

REQUEST = {"request-common_name": "mail.example.com", "request-organization": "Müller GmbH",
           "request-unit": "IT", "request-city": "Köln", "request-state": "NRW",
           "request-country": "DE", "request-email": "admin@müller.example"}


def test_the_email_address_of_a_request_has_its_domain_in_a_labels(admin, home):
    response = admin.post("/configuration/setup/certificates/request", REQUEST,
                          follow_redirects=True)
    assert response.status_code == 200
    csr = x509.load_pem_x509_csr(certs.request_path(home).read_bytes())
    [email] = csr.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
    assert email.value == "admin@xn--mller-kva.example"
    # DER: an IA5String (tag 0x16) of the 27 ASCII bytes
    assert b"\x16\x1badmin@xn--mller-kva.example" in csr.public_bytes(Encoding.DER)
