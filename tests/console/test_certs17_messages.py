"""What Certificate Management says and changes when a certificate is installed.

Regression tests for certs17 findings: C5, the success message named only the HTTPS
listener though the SMTP STARTTLS uses the certificate too (the page's hint says both); C4,
"Private key installed" changed at every certificate install, the key unchanged (key.pem
was written again each time).
"""

from __future__ import annotations

import datetime as dt
import html

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERTIFICATES = "/configuration/setup/certificates"


def _signed_for_home_key(home, common_name="mail.certs17.test") -> str:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Certs17 Messages CA")])
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_install_message_names_https_and_smtp_starttls(admin, home):
    response = admin.post(f"{CERTIFICATES}/install",
                          {"install-certificate": _signed_for_home_key(home)},
                          follow_redirects=True)
    text = html.unescape(response.get_data(as_text=True))
    assert ("Certificate installed. The console's HTTPS and the SMTP STARTTLS use it within "
            "a few seconds") in text


def test_a_certificate_for_the_key_in_use_leaves_key_pem_and_its_date(admin, home):
    key_before = home.tls_key.stat()
    response = admin.post(f"{CERTIFICATES}/install",
                          {"install-certificate": _signed_for_home_key(home)})
    assert response.status_code == 302
    key_after = home.tls_key.stat()
    assert (key_after.st_ino, key_after.st_mtime_ns) == (key_before.st_ino,
                                                         key_before.st_mtime_ns)
    assert "mail.certs17.test" in x509.load_pem_x509_certificate(
        home.tls_cert.read_bytes()).subject.rfc4514_string()
    # and the previous pair is whole: the key beside the certificate it replaced
    assert (home.tls / "key.pem.previous").read_bytes() == home.tls_key.read_bytes()
