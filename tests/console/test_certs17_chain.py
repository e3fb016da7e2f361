"""A chain after the certificate is refused, in words, when clients could not follow it.

Regression tests for certs17 finding C1: Certificate Management checked only the leaf's
dates and key, so a chain with an expired intermediate (clients refuse it as they refuse an
expired leaf), one with a certificate that has nothing to do with the leaf, and a leaf
followed by its intermediate 120 times (140 KB sent in every handshake) were installed.

Real certificates made with `cryptography` (a root, intermediates, a leaf for the key in
use), pasted through the console's form.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from console.certs import MAX_CHAIN_CERTIFICATES
from shared.events import Action

CERTIFICATES = "/configuration/setup/certificates"
NOW = dt.datetime.now(dt.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(public_key, subject: str, issuer: str, issuer_key, *, ca: bool,
                 not_before=NOW - dt.timedelta(days=10), not_after=NOW + dt.timedelta(days=60)):
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Ca:
    """A root; `intermediate` and `leaf` sign under it."""

    def __init__(self, name="Chain Root"):
        self.name, self.key = name, ec.generate_private_key(ec.SECP256R1())
        self.cert = _certificate(self.key.public_key(), name, name, self.key, ca=True)

    def intermediate(self, name="Chain Intermediate", issuer=None, **dates):
        issuer = issuer or (self.name, self.key)
        key = ec.generate_private_key(ec.SECP256R1())
        return _certificate(key.public_key(), name, issuer[0], issuer[1], ca=True,
                            **dates), key


def _pem(*certs) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _home_key(home):
    return serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)


def _leaf(home, issuer_cert, issuer_key):
    return _certificate(_home_key(home).public_key(), "mail.chain.test",
                        issuer_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                        issuer_key, ca=False)


def _install(admin, text: str) -> str:
    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": text},
                          follow_redirects=True)
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def root() -> Ca:
    return Ca()


def test_a_good_chain_with_its_root_is_installed(admin, home, root):
    intermediate, key = root.intermediate()
    text = _install(admin, _pem(_leaf(home, intermediate, key), intermediate, root.cert))
    assert "Certificate installed." in text
    assert home.tls_cert.read_text().count("BEGIN CERTIFICATE") == 3


def _refused(admin, home, text: str) -> str:
    before = home.tls_cert.read_bytes()
    page = _install(admin, text)
    assert "Certificate installed." not in page
    assert home.tls_cert.read_bytes() == before
    assert not admin.events(Action.OBJECT_MODIFIED)
    return page


def test_a_chain_with_an_expired_intermediate_is_refused(admin, home, root):
    intermediate, key = root.intermediate(not_before=NOW - dt.timedelta(days=400),
                                          not_after=NOW - dt.timedelta(days=2))
    leaf = _leaf(home, intermediate, key)
    page = _refused(admin, home, _pem(leaf, intermediate))
    assert (f"the chain certificate CN=Chain Intermediate expired on "
            f"{NOW - dt.timedelta(days=2):%Y-%m-%d}, and clients refuse a chain") in page
    assert "ask the CA for its current chain" in page


def test_a_chain_certificate_that_did_not_issue_the_one_before_is_refused(admin, home, root):
    intermediate, key = root.intermediate()
    unrelated, _ = Ca("Another Root").intermediate("Unrelated Intermediate")
    page = _refused(admin, home, _pem(_leaf(home, intermediate, key), unrelated))
    assert ("the chain certificate CN=Unrelated Intermediate did not issue the certificate "
            "before it (CN=mail.chain.test)") in page


def test_a_chain_whose_intermediate_comes_many_times_is_refused(admin, home, root):
    intermediate, key = root.intermediate()
    page = _refused(admin, home, _pem(_leaf(home, intermediate, key), *[intermediate] * 120))
    assert ("the certificate CN=Chain Intermediate is pasted 120 times; paste the server "
            "certificate, then each certificate of the chain once") in page


def test_a_chain_longer_than_any_ca_issues_is_refused(admin, home, root):
    chain, issuer = [], (root.name, root.key)
    for i in range(MAX_CHAIN_CERTIFICATES):
        cert, key = root.intermediate(f"Level {i}", issuer=issuer)
        chain.insert(0, cert)
        issuer = (f"Level {i}", key)
    leaf = _leaf(home, chain[0], issuer[1])
    page = _refused(admin, home, _pem(leaf, *chain))
    assert (f"the paste holds {MAX_CHAIN_CERTIFICATES + 1} certificates, more than the "
            f"{MAX_CHAIN_CERTIFICATES} a chain needs") in page
