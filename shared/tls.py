"""The data home's TLS key and certificate, shared by SMTP STARTTLS and the console's HTTPS.

`init` makes a self-signed certificate here so both processes offer TLS from the first start;
the console's certificate management replaces the files atomically (write temp, rename).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["ensure_self_signed", "make_self_signed", "write_atomically"]

SELF_SIGNED_DAYS = 825  # the longest validity browsers accept for a server certificate


def make_self_signed(hostname: str, key=None, days: int = SELF_SIGNED_DAYS) -> tuple[bytes, bytes]:
    """A new RSA-2048 key (unless given) and a self-signed certificate for `hostname`.

    Returns (key_pem, cert_pem).
    """
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mailmoat self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    for address in ("127.0.0.1", "::1"):
        alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_self_signed(key_path: Path, cert_path: Path, hostname: str) -> bool:
    """Create a self-signed key + certificate unless both exist; True when created."""
    if key_path.exists() and cert_path.exists():
        return False
    key_pem, cert_pem = make_self_signed(hostname)
    write_atomically(key_path, key_pem)
    write_atomically(cert_path, cert_pem, 0o644)
    return True
