"""Certificate management for the console's HTTPS (and the core's STARTTLS): the data home's tls/.

What it does (guide §3 "Configuring HTTPS options", SPEC §7):
- `create_request`: a new RSA key and a CSR from the guide's fields. The new key waits in
  tls/request-key.pem, so the certificate in use keeps working until the CA's answer comes.
- `install_certificate`: a CA-signed certificate in PEM (header and footer included, chain
  after the leaf allowed) — refused unless it matches the pending request's key or the key
  in use. Then key.pem and cert.pem are replaced atomically; the previous pair is kept as
  *.previous. The HTTPS listener notices the new files and reloads (console.serve).
- `install_self_signed`: a new key and a self-signed certificate.
- `certificate_status`: key date, certificate date, validity, subject, issuer.

Rules: X.509 building with `cryptography`; key/certificate matching with pyOpenSSL, the
only module of the console that imports it. Never write a key anywhere but tls/ (mode 0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from shared.paths import DataHome
from shared.tls import make_self_signed, write_atomically

__all__ = ["CertificateError", "RequestFields", "CertificateStatus", "create_request",
           "install_certificate", "install_self_signed", "certificate_status",
           "server_context", "request_key_path", "request_path", "fingerprint",
           "KEY_BITS"]

KEY_BITS = 2048
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


class CertificateError(ValueError):
    """The request or certificate cannot be used; the message is for the administrator."""


@dataclass(frozen=True)
class RequestFields:
    common_name: str
    organization: str
    unit: str
    city: str
    state: str
    country: str
    email: str


@dataclass(frozen=True)
class CertificateStatus:
    key_installed_at: float | None
    cert_installed_at: float | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    subject: str | None
    issuer: str | None
    self_signed: bool
    fingerprint: str | None
    request_pem: str | None         # the pending CSR, until its certificate is installed
    request_created_at: float | None
    problem: str | None = None


def request_key_path(home: DataHome) -> Path:
    return home.tls / "request-key.pem"


def request_path(home: DataHome) -> Path:
    return home.tls / "request.csr"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


# --- request ------------------------------------------------------------------------------

def create_request(home: DataHome, fields: RequestFields) -> str:
    """Make a new key and CSR; returns the CSR in PEM. Raises CertificateError."""
    attributes = [(NameOID.COMMON_NAME, fields.common_name),
                  (NameOID.ORGANIZATION_NAME, fields.organization),
                  (NameOID.ORGANIZATIONAL_UNIT_NAME, fields.unit),
                  (NameOID.LOCALITY_NAME, fields.city),
                  (NameOID.STATE_OR_PROVINCE_NAME, fields.state),
                  (NameOID.COUNTRY_NAME, fields.country.upper()),
                  (NameOID.EMAIL_ADDRESS, fields.email)]
    try:
        name = x509.Name([x509.NameAttribute(oid, value.strip())
                          for oid, value in attributes if value and value.strip()])
    except ValueError as exc:
        raise CertificateError(f"the request fields are not valid: {exc}") from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    try:
        alt = x509.IPAddress(ipaddress.ip_address(fields.common_name.strip()))
    except ValueError:
        alt = x509.DNSName(fields.common_name.strip())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name)
           .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    write_atomically(request_key_path(home), key_pem, 0o600)
    write_atomically(request_path(home), csr_pem, 0o644)
    return csr_pem.decode("ascii")


# --- install ------------------------------------------------------------------------------

def _parse_chain(pem_text: str) -> tuple[list[x509.Certificate], bytes]:
    data = pem_text.replace("\r\n", "\n").strip().encode("ascii", "replace")
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise CertificateError("paste the whole certificate in PEM format, including the "
                               "-----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines")
    try:
        chain = [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError:
        raise CertificateError("the text between the BEGIN and END lines is not a valid "
                               "certificate") from None
    return chain, b"\n".join(blocks) + b"\n"


def _matches(key_pem: bytes, cert_pem: bytes) -> bool:
    """pyOpenSSL's own check that the private key belongs to the certificate."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        context = SSL.Context(SSL.TLS_METHOD)
        try:
            context.use_privatekey(key)
            context.use_certificate(cert)
        except TypeError:  # pyOpenSSL < 24.3 takes only its own objects
            context.use_privatekey(crypto.PKey.from_cryptography_key(key))
            context.use_certificate(crypto.X509.from_cryptography(cert))
        context.check_privatekey()
        return True
    except (SSL.Error, crypto.Error, ValueError, TypeError):
        return False


def _replace_pair(home: DataHome, key_pem: bytes, cert_pem: bytes) -> None:
    for path in (home.tls_key, home.tls_cert):
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".previous"))
            os.chmod(path.with_name(path.name + ".previous"), 0o600)
    write_atomically(home.tls_key, key_pem, 0o600)
    write_atomically(home.tls_cert, cert_pem, 0o644)


def install_certificate(home: DataHome, pem_text: str, now: dt.datetime | None = None) -> str:
    """Install a CA-signed certificate; returns its SHA-256 fingerprint.

    Raises CertificateError when it is not PEM, has expired, or matches neither the pending
    request's key nor the key in use.
    """
    chain, chain_pem = _parse_chain(pem_text)
    leaf = chain[0]
    now = now or dt.datetime.now(dt.timezone.utc)
    if leaf.not_valid_after_utc <= now:
        raise CertificateError(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)
    for key_path in (request_key_path(home), home.tls_key):
        if key_path.exists() and _matches(key_path.read_bytes(), leaf_pem):
            key_pem = key_path.read_bytes()
            _replace_pair(home, key_pem, chain_pem)
            if key_path == request_key_path(home):
                request_key_path(home).unlink(missing_ok=True)
                request_path(home).unlink(missing_ok=True)
            return fingerprint(leaf)
    raise CertificateError("the certificate does not match the private key of the last "
                           "certificate request (nor the key in use); install the certificate "
                           "issued for this server's request")


def install_self_signed(home: DataHome, common_name: str) -> str:
    """A new key and a self-signed certificate for `common_name`; returns the fingerprint."""
    common_name = common_name.strip()
    if not common_name or len(common_name) > 64:
        raise CertificateError("the common name must be 1 to 64 characters")
    try:
        key_pem, cert_pem = make_self_signed(common_name)
    except ValueError as exc:
        raise CertificateError(f"cannot make a certificate for {common_name!r}: {exc}") from None
    _replace_pair(home, key_pem, cert_pem)
    return fingerprint(x509.load_pem_x509_certificate(cert_pem))


# --- status and serving -------------------------------------------------------------------

def certificate_status(home: DataHome) -> CertificateStatus:
    request_pem = None
    if request_path(home).exists() and request_key_path(home).exists():
        request_pem = request_path(home).read_text("ascii", "replace")
    base = dict(key_installed_at=_mtime(home.tls_key), cert_installed_at=_mtime(home.tls_cert),
                request_pem=request_pem, request_created_at=_mtime(request_path(home)))
    try:
        cert = x509.load_pem_x509_certificate(home.tls_cert.read_bytes())
    except FileNotFoundError:
        return CertificateStatus(**base, not_before=None, not_after=None, subject=None,
                                 issuer=None, self_signed=False, fingerprint=None,
                                 problem="no certificate is installed")
    except ValueError:
        return CertificateStatus(**base, not_before=None, not_after=None, subject=None,
                                 issuer=None, self_signed=False, fingerprint=None,
                                 problem="the installed certificate file cannot be read")
    return CertificateStatus(**base, not_before=cert.not_valid_before_utc,
                             not_after=cert.not_valid_after_utc,
                             subject=cert.subject.rfc4514_string(),
                             issuer=cert.issuer.rfc4514_string(),
                             self_signed=cert.issuer == cert.subject,
                             fingerprint=fingerprint(cert))


def server_context(home: DataHome) -> ssl.SSLContext:
    """A TLS server context from tls/ (raises ssl.SSLError/OSError when the pair is unusable)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(home.tls_cert), str(home.tls_key))
    return context
