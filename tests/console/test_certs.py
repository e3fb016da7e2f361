"""Certificate Management: CSR → signed by a test CA → installed → served over HTTPS, verified."""

from __future__ import annotations

import datetime as dt
import html
import re
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from console import certs
from console.serve import ConsoleServer
from shared.events import Action

from .conftest import Console

REQUEST = {"request-common_name": "localhost", "request-organization": "Bright School",
           "request-unit": "Education", "request-city": "Springfield",
           "request-state": "Illinois", "request-country": "US",
           "request-email": "admin@example.com"}


class CertificateAuthority:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailmoat Test CA")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        now = dt.datetime.now(dt.timezone.utc)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert = (x509.CertificateBuilder().subject_name(csr.subject)
                .issuer_name(self.cert.subject).public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=10))
                .add_extension(san, critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def _https_get(port: int, ca_file, timeout=5.0) -> str:
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /logon HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return tls.recv(200).decode("latin-1")


def _request_pem(admin: Console) -> str:
    response = admin.post("/configuration/setup/certificates/request", REQUEST)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    page = admin.get("/configuration/setup/certificates").get_data(as_text=True)
    match = re.search(r'<textarea class="pem" id="request-pem"[^>]*>(.*?)</textarea>', page, re.S)
    return html.unescape(match.group(1))


def test_signed_csr_is_installed_and_served_over_https_without_restart(home, clock, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.pem())
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0, clock=clock,
                           app_config={"TESTING": True})
    server.start()
    poller = threading.Thread(target=server.serve_until_stopped, daemon=True)
    poller.start()
    try:
        port = server.listeners["https"].port
        with pytest.raises(ssl.SSLCertVerificationError):
            _https_get(port, ca_file)  # init's self-signed certificate is not from our CA

        admin = Console(server.app, home)
        assert admin.logon().status_code == 302
        csr_pem = _request_pem(admin)
        assert csr_pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
            "Bright School"
        # until the certificate comes back, HTTPS keeps serving the old pair
        with pytest.raises(ssl.SSLCertVerificationError):
            _https_get(port, ca_file)

        response = admin.post("/configuration/setup/certificates/install",
                              {"install-certificate": ca.sign(csr_pem)})
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
        deadline = time.monotonic() + 5
        while True:
            try:
                reply = _https_get(port, ca_file)
                break
            except ssl.SSLCertVerificationError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert reply.startswith("HTTP/1.1 200")
        assert not certs.request_key_path(home).exists()
        assert (home.tls / "cert.pem.previous").exists()
        status = admin.get("/configuration/setup/certificates").get_data(as_text=True)
        assert "Mailmoat Test CA" in status
        event = admin.events(Action.OBJECT_MODIFIED)[-1]
        assert event["data"]["page"] == "certificates"
    finally:
        server.request_stop()
        poller.join(5)
        server.stop()


def test_the_subject_names_the_email_attribute_emailaddress(admin, ca):
    # guide36 finding 7: shown as its OID, 1.2.840.113549.1.9.1=admin@example.com
    response = admin.post("/configuration/setup/certificates/install",
                          {"install-certificate": ca.sign(_request_pem(admin))})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    page = html.unescape(admin.get("/configuration/setup/certificates").get_data(as_text=True))
    [subject] = re.findall(r'<th scope="row">Subject</th><td>(.*?)</td>', page)
    assert subject.endswith(", C=US, emailAddress=admin@example.com")
    assert "1.2.840" not in page


def test_certificate_for_another_key_is_refused(admin, home, ca):
    _request_pem(admin)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_csr = (x509.CertificateSigningRequestBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                 .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
                 .sign(stranger, hashes.SHA256()))
    before = home.tls_cert.read_bytes()
    response = admin.post("/configuration/setup/certificates/install", {
        "install-certificate": ca.sign(other_csr.public_bytes(serialization.Encoding.PEM).decode())})
    assert response.status_code == 200
    assert "does not match the private key" in response.get_data(as_text=True)
    assert home.tls_cert.read_bytes() == before


@pytest.mark.parametrize("text,message", [
    ("MIIB...no header", "including the -----BEGIN CERTIFICATE-----"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "not a valid certificate"),
])
def test_install_needs_pem_with_header_and_footer(admin, text, message):
    response = admin.post("/configuration/setup/certificates/install", {"install-certificate": text})
    assert message in html.unescape(response.get_data(as_text=True))


def test_self_signed_certificate_replaces_the_pair(admin, home):
    old = certs.certificate_status(home).fingerprint
    response = admin.post("/configuration/setup/certificates/self-signed",
                          {"self-common_name": "gw.example.com"})
    assert response.status_code == 302
    status = certs.certificate_status(home)
    assert status.fingerprint != old and status.self_signed
    assert "gw.example.com" in status.subject
    assert admin.events(Action.OBJECT_MODIFIED)[-1]["data"]["changes"]["tls.certificate"] == \
        [old, status.fingerprint]


def test_status_shows_key_and_certificate_dates_and_expiry(admin):
    page = admin.get("/configuration/setup/certificates").get_data(as_text=True)
    for label in ("Private key installed", "Certificate installed", "Expires"):
        assert label in page
    assert "Mailmoat self-signed" in page


def test_request_form_checks_country_code(admin):
    response = admin.post("/configuration/setup/certificates/request",
                          {**REQUEST, "request-country": "USA"})
    assert "a two-letter country code" in response.get_data(as_text=True)


def test_installed_certificate_date_appears_on_status_page(admin):
    html_text = admin.get("/status/").get_data(as_text=True)
    assert re.search(r"SSL certificate installed</th><td class=\"num\">\d{4}-\d\d-\d\d", html_text)
