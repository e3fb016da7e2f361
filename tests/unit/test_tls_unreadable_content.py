"""A key or certificate in tls/ that `cryptography` loads but cannot read a part of is a pair
that does not load, with a reason: never an exception (review17 B1).

Loading the pair raised UnsupportedAlgorithm from `cert.public_key()` for a certificate on a
curve cryptography lacks (SM2, secp112r1), which stopped a running core within a second and
kept core and console from starting; Certificate Management raised ValueError from
`cert.subject` for a certificate whose name is not valid UTF-8. Real files in a real tls/.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from console.certs import certificate_status
from shared.paths import DataHome
from shared.tls import (load_server_pair, make_self_signed, pair_problem, previous_path,
                        write_atomically)
from tests.support.unreadable_certificates import (P256_OID, SM2_OID,
                                                   certificate_on_an_unknown_curve,
                                                   certificate_with_an_unreadable_subject)


def _home(tmp_path) -> DataHome:
    home = DataHome(tmp_path)
    home.tls.mkdir()
    return home


def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_a_certificate_on_an_unknown_curve_is_a_pair_that_does_not_load(tmp_path):
    home = _home(tmp_path)
    home.tls_key.write_bytes(_pem(_rsa_key()))
    home.tls_cert.write_bytes(certificate_on_an_unknown_curve())
    pair = load_server_pair(home)
    assert pair.context is None
    assert pair.problem.startswith(
        "the certificate in cert.pem is for a key of a type Mailmoat cannot use")
    assert "an RSA key of 2048 bits or more" in pair.problem


def test_the_previous_pair_is_served_beside_a_certificate_on_an_unknown_curve(tmp_path):
    home = _home(tmp_path)
    key_pem, cert_pem = make_self_signed("previous.test")
    write_atomically(previous_path(home.tls_key), key_pem)
    write_atomically(previous_path(home.tls_cert), cert_pem)
    home.tls_key.write_bytes(key_pem)
    home.tls_cert.write_bytes(certificate_on_an_unknown_curve())
    pair = load_server_pair(home)
    assert pair.is_previous
    assert "is for a key of a type Mailmoat cannot use" in pair.problem


def test_trying_a_certificate_on_an_unknown_curve_before_an_install_says_why(tmp_path):
    home = _home(tmp_path)
    problem = pair_problem(_pem(_rsa_key()), certificate_on_an_unknown_curve(), home.tls)
    assert "the certificate in cert.pem is for a key of a type Mailmoat cannot use" in problem
    assert list(home.tls.iterdir()) == []       # the scratch files are gone


def test_a_key_on_an_unknown_curve_is_named_as_such(tmp_path):
    home = _home(tmp_path)
    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    home.tls_key.write_bytes(_der_to_pem(der.replace(P256_OID, SM2_OID)))
    home.tls_cert.write_bytes(make_self_signed("other.test")[1])
    assert load_server_pair(home).problem.startswith(
        "key.pem holds a key of a type Mailmoat cannot use")


def _der_to_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN PRIVATE KEY-----\n" + b"\n".join(lines) + b"\n-----END PRIVATE KEY-----\n"


def test_certificate_management_status_of_a_certificate_whose_name_does_not_parse(tmp_path):
    home = _home(tmp_path)
    key = _rsa_key()
    home.tls_key.write_bytes(_pem(key))
    home.tls_cert.write_bytes(certificate_with_an_unreadable_subject(key))
    status = certificate_status(home)
    assert status.subject is None and status.cert_installed_at is None
    assert status.problem.startswith("The key and certificate in tls/ do not load")


def test_certificate_management_status_of_a_certificate_on_an_unknown_curve(tmp_path):
    home = _home(tmp_path)
    home.tls_key.write_bytes(_pem(_rsa_key()))
    home.tls_cert.write_bytes(certificate_on_an_unknown_curve())
    status = certificate_status(home)
    assert status.subject == "CN=sm2.test"      # what can be read of it is shown
    assert "is for a key of a type Mailmoat cannot use" in status.problem
