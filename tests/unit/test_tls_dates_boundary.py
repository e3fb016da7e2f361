"""A certificate's dates are judged by one rule (shared.tls.out_of_dates), wherever they are
shown or checked: at its notAfter instant it has expired, at its notBefore instant it is
valid (review17 C4: the install's refusal, the status page's mark and its notice each wrote
the comparison again). Real certificates for the key in a real tls/.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from console.certs import CertificateError, certificate_status, install_certificate
from shared.paths import DataHome
from shared.tls import make_self_signed, out_of_dates, write_atomically

AT = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def home(tmp_path) -> DataHome:
    home = DataHome(tmp_path)
    home.tls.mkdir()
    key_pem, cert_pem = make_self_signed("in-use.test")
    write_atomically(home.tls_key, key_pem)
    write_atomically(home.tls_cert, cert_pem)
    return home


def _for_the_key_in_use(home, not_before, not_after) -> bytes:
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dates.test")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def test_at_its_not_after_instant_a_certificate_has_expired_everywhere(home):
    pem = _for_the_key_in_use(home, AT - dt.timedelta(days=90), AT)
    assert out_of_dates(x509.load_pem_x509_certificate(pem), AT).expired
    with pytest.raises(CertificateError, match="the certificate expired on 2030-06-01"):
        install_certificate(home, pem.decode(), now=AT)
    home.tls_cert.write_bytes(pem)
    status = certificate_status(home, AT.timestamp())
    assert status.is_expired
    assert status.dates_mark == "expired on 2030-06-01"
    assert "expired on 2030-06-01 12:00 UTC" in status.dates


def test_at_its_not_before_instant_a_certificate_is_valid_everywhere(home):
    pem = _for_the_key_in_use(home, AT, AT + dt.timedelta(days=365))
    assert out_of_dates(x509.load_pem_x509_certificate(pem), AT) is None
    install_certificate(home, pem.decode(), now=AT)
    status = certificate_status(home, AT.timestamp())
    assert not status.is_expired
    assert status.dates_mark is None and status.dates is None


def test_a_second_before_its_not_before_instant_it_is_not_valid_yet(home):
    pem = _for_the_key_in_use(home, AT, AT + dt.timedelta(days=365))
    before = AT - dt.timedelta(seconds=1)
    with pytest.raises(CertificateError, match="not valid before 2030-06-01 12:00 UTC"):
        install_certificate(home, pem.decode(), now=before)
    home.tls_cert.write_bytes(pem)
    status = certificate_status(home, before.timestamp())
    assert not status.is_expired
    assert status.dates_mark == "not valid before 2030-06-01"
