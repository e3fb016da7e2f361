"""A form field sent as a file upload is answered 400, with nothing in the log but one line.

Regression tests for certs17 finding C9: a multipart post with a field sent as a file
(`curl -F username=@/etc/hostname`) reached WTForms as an upload object, its Length
validator raised TypeError, and the console answered 500 with a traceback in its log — on
the certificate forms and on the logon form, which anyone can post to.

The logon goes over a real socket (ConsoleServer on loopback, a multipart body as curl
sends it); the certificate forms through Flask's client, which encodes multipart the same
way.
"""

from __future__ import annotations

import http.client
import io
import logging
import re
import secrets

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from console.serve import ConsoleServer
from tests.support.core import ADMIN_PASSWORD

CERTIFICATES = "/configuration/setup/certificates"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body as curl -F makes it, and its Content-Type."""
    boundary = "------------------------" + secrets.token_hex(8)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
              f'filename="{name}.txt"\r\nContent-Type: text/plain\r\n\r\n'.encode()
              + content + b"\r\n" for name, content in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def _no_traceback(caplog) -> None:
    assert not [record for record in caplog.records if record.exc_info], \
        [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("as_file", ["username", "password", "csrf_token"])
def test_a_logon_field_sent_as_a_file_is_answered_400_without_a_traceback(home, caplog,
                                                                          as_file):
    caplog.set_level(logging.INFO, logger="mailmoat")
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        client = http.client.HTTPConnection("127.0.0.1", server.listeners["http"].port,
                                            timeout=10)
        client.request("GET", "/logon")
        response = client.getresponse()
        cookie = response.getheader("Set-Cookie").split(";", 1)[0]
        token = _CSRF.search(response.read().decode()).group(1)
        fields = {"csrf_token": token, "username": "admin", "password": ADMIN_PASSWORD}
        body, content_type = _multipart(
            {k: v for k, v in fields.items() if k != as_file},
            {as_file: fields[as_file].encode()})
        client.request("POST", "/logon", body=body,
                       headers={"Content-Type": content_type, "Cookie": cookie})
        response = client.getresponse()
        page = response.read().decode()
        client.close()
    finally:
        server.stop()
    assert response.status == 400
    assert "take text, not files" in page
    assert "Traceback" not in page
    _no_traceback(caplog)


@pytest.mark.parametrize("form,field", [("install", "install-certificate"),
                                        ("self-signed", "self-common_name"),
                                        ("request", "request-common_name")])
def test_a_certificate_form_field_sent_as_a_file_is_answered_400(admin, home, caplog, form,
                                                                 field):
    caplog.set_level(logging.INFO, logger="mailmoat")
    before = home.tls_cert.read_bytes()
    response = admin.post(f"{CERTIFICATES}/{form}",
                          {field: (io.BytesIO(b"gw.example.com"), "name.txt")},
                          content_type="multipart/form-data")
    assert response.status_code == 400
    assert "take text, not files" in response.get_data(as_text=True)
    assert home.tls_cert.read_bytes() == before
    _no_traceback(caplog)


def test_a_multipart_form_without_files_is_still_read(admin, home):
    response = admin.post(f"{CERTIFICATES}/self-signed", {"self-common_name": "gw.example.com"},
                          content_type="multipart/form-data")
    assert response.status_code == 302
    cert = x509.load_pem_x509_certificate(home.tls_cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw.example.com"
