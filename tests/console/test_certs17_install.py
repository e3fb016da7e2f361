"""Installing a CA's certificate the servers cannot load is refused, in words.

Regression tests for certs17 findings B1 and B2: Certificate Management checked only the
leaf's dates and key, so a leaf or chain signed with SHA-1 or MD5 (OpenSSL's security level
refuses them: CA_MD_TOO_WEAK) was "installed" and never served, and a certificate pasted
with indented lines (a mail client's quote) was written as pasted, a cert.pem OpenSSL cannot
read; pasting it again correctly then answered "already installed; nothing changed".

The weak signatures are made by the `openssl` command (cryptography no longer signs with
SHA-1 or MD5); what is written is checked by loading it with Python's ssl and `openssl x509`.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.events import Action

CERTIFICATES = "/configuration/setup/certificates"
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


def _write_key(path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _csr(key, common_name: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateSigningRequestBuilder().subject_name(name)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


class OpensslCa:
    """A root CA (SHA-256) in files, signing with the `openssl` command."""

    def __init__(self, directory):
        self.dir = directory
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Certs17 Root")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(1)
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=60))
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_path, self.key_path = directory / "root.pem", directory / "root.key"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key_path, self.key)
        self.serial = 1

    def sign(self, key, common_name: str, digest: str, *, ca: bool = False,
             issuer: tuple | None = None) -> bytes:
        """A certificate for `key` signed with `digest` ("sha1", "md5", "sha256") by this root,
        or by `issuer` (cert path, key path); returns it in PEM."""
        self.serial += 1
        stem = self.dir / f"c{self.serial}"
        stem.with_suffix(".csr").write_bytes(_csr(key, common_name))
        extensions = ("basicConstraints=critical,CA:TRUE\n" if ca else
                      f"basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:{common_name}\n")
        stem.with_suffix(".ext").write_text(extensions)
        cert_path, key_path = issuer or (self.cert_path, self.key_path)
        subprocess.run([OPENSSL, "x509", "-req", "-in", stem.with_suffix(".csr"),
                        "-CA", cert_path, "-CAkey", key_path, "-set_serial", str(self.serial),
                        "-days", "30", f"-{digest}", "-extfile", stem.with_suffix(".ext"),
                        "-out", stem.with_suffix(".pem")],
                       check=True, capture_output=True)
        return stem.with_suffix(".pem").read_bytes()

    def intermediate(self, digest: str) -> tuple[bytes, object]:
        """An intermediate CA signed with `digest`: (its PEM, a signer for sign(issuer=))."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.sign(key, "Certs17 Intermediate", digest, ca=True)
        cert_path, key_path = self.dir / "int.pem", self.dir / "int.key"
        cert_path.write_bytes(pem)
        _write_key(key_path, key)
        return pem, (cert_path, key_path)


@pytest.fixture
def ca(tmp_path) -> OpensslCa:
    directory = tmp_path / "ca"
    directory.mkdir()
    return OpensslCa(directory)


def _home_key(home):
    return serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)


def _install(admin, pem: str | bytes):
    text = pem.decode() if isinstance(pem, bytes) else pem
    return admin.post(f"{CERTIFICATES}/install", {"install-certificate": text},
                      follow_redirects=True)


def _loads(home) -> bool:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(home.tls_cert, home.tls_key)
    except ssl.SSLError:
        return False
    return True


@needs_openssl
@pytest.mark.parametrize("digest,shown", [("sha1", "SHA-1"), ("md5", "MD5")])
def test_a_leaf_signed_with_a_weak_digest_is_refused_and_nothing_written(admin, home, ca,
                                                                         digest, shown):
    before = home.tls_cert.read_bytes()
    response = _install(admin, ca.sign(_home_key(home), "mail.certs17.test", digest))
    text = html.unescape(response.get_data(as_text=True))
    assert "Certificate installed." not in text
    assert (f"the certificate CN=mail.certs17.test is signed with {shown}, which OpenSSL "
            "refuses as too weak") in text
    assert "signed with SHA-256" in text              # what to ask the CA for
    assert home.tls_cert.read_bytes() == before
    assert not admin.events(Action.OBJECT_MODIFIED)
    assert not list(home.tls.glob(".try-*"))          # the trial files are gone


@needs_openssl
def test_a_good_leaf_after_which_comes_a_sha1_intermediate_is_refused(admin, home, ca):
    intermediate, signer = ca.intermediate("sha1")
    leaf = ca.sign(_home_key(home), "mail.certs17.test", "sha256", issuer=signer)
    before = home.tls_cert.read_bytes()
    text = html.unescape(_install(admin, leaf + intermediate).get_data(as_text=True))
    assert "the certificate CN=Certs17 Intermediate is signed with SHA-1" in text
    assert home.tls_cert.read_bytes() == before


@needs_openssl
def test_a_chain_pasted_with_indented_lines_is_written_as_pem_openssl_reads(admin, home, ca):
    intermediate, signer = ca.intermediate("sha256")
    chain = ca.sign(_home_key(home), "mail.certs17.test", "sha256", issuer=signer) + intermediate
    quoted = "".join(f"    {line}\r\n" for line in chain.decode().splitlines())
    response = _install(admin, quoted)
    assert "Certificate installed." in response.get_data(as_text=True)
    assert _loads(home)
    assert home.tls_cert.read_bytes() == chain        # the CA's text, whatever the paste
    subprocess.run([OPENSSL, "x509", "-noout", "-in", home.tls_cert], check=True,
                   capture_output=True)


@needs_openssl
def test_the_same_certificate_pasted_again_repairs_a_cert_pem_that_does_not_load(admin, home,
                                                                                ca):
    # what the console wrote before the fix: the paste as it was, indented
    leaf = ca.sign(_home_key(home), "mail.certs17.test", "sha256")
    home.tls_cert.write_bytes(b"".join(b"    " + line + b"\n" for line in leaf.splitlines()))
    assert not _loads(home)
    page = html.unescape(admin.get(CERTIFICATES).get_data(as_text=True))
    assert "OpenSSL cannot read cert.pem as PEM (lines indented" in page

    response = _install(admin, leaf)
    text = response.get_data(as_text=True)
    assert "already installed" not in text
    assert "Certificate installed." in text
    assert _loads(home)
    assert home.tls_cert.read_bytes() == leaf
    [event] = admin.events(Action.OBJECT_MODIFIED)
    assert "tls.certificate" in event["data"]["changes"]
    # and now it is installed: the same paste changes nothing
    assert "already installed; nothing changed" in _install(admin, leaf).get_data(as_text=True)
