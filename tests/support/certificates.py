"""Certificates the tests write into a data home's tls/."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID


def certificate_for_the_key_in_use(home, not_before: dt.datetime,
                                   not_after: dt.datetime) -> bytes:
    """A self-signed certificate for tls/key.pem with these dates, written over cert.pem in
    place, as `cp` does; returns its DER."""
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.expiry.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    home.tls_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)
