"""Certificates that load in `cryptography` but raise when a part of them is read, as an
administrator may copy into tls/ (review17 B1). Made from real ones by changing bytes of the
same length in their DER, so each is otherwise well formed (its signature no longer checks,
which nothing here depends on).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# DER of the curve OIDs: P-256 (1.2.840.10045.3.1.7) and SM2 (1.2.156.10197.1.301), which
# cryptography does not support: SM2 certificates are in real use.
P256_OID = bytes.fromhex("06082a8648ce3d030107")
SM2_OID = bytes.fromhex("06082a811ccf5501822d")
_MARK = "unreadable-subject"


def _self_signed(key, common_name: str) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def certificate_on_an_unknown_curve() -> bytes:
    """A certificate (PEM) for an EC key on SM2: `public_key()` raises UnsupportedAlgorithm."""
    der = _self_signed(ec.generate_private_key(ec.SECP256R1()), "sm2.test")
    assert der.count(P256_OID) == 1
    return _pem(der.replace(P256_OID, SM2_OID))


def certificate_with_an_unreadable_subject(key) -> bytes:
    """A certificate (PEM) for `key` whose subject and issuer common names are not valid
    UTF-8: `subject` and `issuer` raise ValueError."""
    der = _self_signed(key, _MARK)
    return _pem(der.replace(_MARK.encode(), b"\xff\xfe" * (len(_MARK) // 2)))
