"""Certificates that go wrong: a pair in tls/ that does not load, a certificate not yet valid,
host names a certificate cannot carry, a reinstall that changes nothing, the run banner.

Regression tests for the day-one findings: a key copied into tls/ that does not match the
certificate made the console exit at start ("the console cannot listen: [X509:
KEY_VALUES_MISMATCH]"), plain HTTP included, so Certificate Management could not be reached.
Certificates here are real ones made with `cryptography`; the start-up path runs over real
sockets (`mailmoat console` as a process, or ConsoleServer.start()).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from console.serve import ConsoleServer
from shared import db
from shared.events import Action
from shared.settings_store import apply_changes
from tests.support.console import console_process
from tests.support.core import free_ports
from tests.support.waiting import events_of

from .conftest import Console

CERTIFICATES = "/configuration/setup/certificates"


# --- real keys and certificates --------------------------------------------------------------

def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(key, common_name="localhost", *, issuer=None, issuer_key=None,
                 from_days=-1, to_days=30) -> x509.Certificate:
    """A certificate for `key`: self-signed, or signed by `issuer`/`issuer_key`."""
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=from_days))
            .not_valid_after(now + dt.timedelta(days=to_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
            .sign(issuer_key or key, hashes.SHA256()))


def _home_key(home):
    return serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)


def _ca():
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fault Test CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _break_key(home) -> None:
    """What an administrator does by copying a key that belongs to another certificate."""
    home.tls_key.write_bytes(_key_pem(_new_key()))


def _keep_as_previous(home) -> bytes:
    """The good pair as the console keeps a replaced one; returns its certificate (PEM)."""
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    return home.tls_cert.read_bytes()


def _served_certificate(port: int) -> bytes:
    """The DER certificate an HTTPS port presents (not verified: init's is self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def _wait(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _set(home, **changes):
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {k.replace("__", "."): v for k, v in changes.items()})
    finally:
        conn.close()


def _page(admin: Console, url=CERTIFICATES) -> str:
    return html.unescape(admin.get(url).get_data(as_text=True))


# --- a pair that does not load at start ------------------------------------------------------

def test_console_starts_with_a_mismatched_key_serves_http_and_turns_https_on_once_fixed(home):
    """`mailmoat console` itself: no exit 1, HTTP up, HTTPS off (no previous pair to fall
    back on), an event that names the problem and the fix; a good pair turns HTTPS on."""
    http_port, https_port = free_ports(2)
    _set(home, http__port=http_port, https__port=https_port)
    good_key = home.tls_key.read_bytes()
    _break_key(home)
    with console_process(home) as process:
        line = _readline(process.stdout)
        assert f":{http_port}/" in line, line + (process.stderr.read()
                                                 if process.poll() is not None else "")
        assert "no HTTPS" in line
        assert _http_status(f"http://127.0.0.1:{http_port}/logon") == 200
        with pytest.raises(OSError):
            _served_certificate(https_port)
        _wait(lambda: events_of(home, Action.SERVICE_START_FAILED), what="the TLS event")
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "key.pem is not the private key of the certificate in cert.pem" in event["info"]
        assert "HTTPS is off" in event["info"]
        assert "Certificate Management" in event["info"]

        home.tls_key.write_bytes(good_key)          # the administrator repairs the pair
        _wait(lambda: _reachable(https_port), what="HTTPS to come on")
        assert _served_certificate(https_port) == _der(home.tls_cert.read_bytes())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def _reachable(port: int) -> bool:
    try:
        _served_certificate(port)
        return True
    except OSError:
        return False


@pytest.mark.parametrize("damage", ["garbage certificate", "mismatched key"])
def test_console_start_falls_back_to_the_previous_pair(home, damage):
    previous_cert = _keep_as_previous(home)
    if damage == "garbage certificate":
        home.tls_cert.write_text("this is not a certificate\n")
    else:
        _break_key(home)
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        assert _http_status(server.urls()["http"] + "logon") == 200
        assert _served_certificate(server.listeners["https"].port) == _der(previous_cert)
        server.context.events.flush()
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "HTTPS uses the previous pair" in event["info"]
        assert ("cert.pem holds no certificate" if damage == "garbage certificate"
                else "key.pem is not the private key") in event["info"]
    finally:
        server.stop()


def test_a_bad_pair_copied_in_while_running_is_reported_once_and_the_old_one_kept(home):
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        port = server.listeners["https"].port
        served = _served_certificate(port)
        _break_key(home)
        # The polls the console's own poller makes, from this thread alone: a poller thread
        # beside them made two threads check the same change.
        for _ in range(6):          # the first two decide (an install is two renames)
            server.poll_once()
        server.context.events.flush()
        [event] = events_of(home, Action.SERVICE_START_FAILED)
        assert "HTTPS goes on with the certificate it loaded before" in event["info"]
        assert _served_certificate(port) == served
    finally:
        server.stop()



def test_https_only_logons_while_https_is_off_say_how_to_get_in(home):
    """The logon page sent the browser to the HTTPS port, where nothing listened."""
    _set(home, https__logons=True)
    _break_key(home)                                # and no previous pair: HTTPS is off
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0,
                           app_config={"TESTING": True})
    server.start()
    try:
        assert "https" not in server.listeners
        url = server.urls()["http"] + "logon"
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(url, timeout=10)
        assert answer.value.code == 503
        page = answer.value.read().decode()
        assert "Logons need HTTPS, which is off" in page
        assert "mailmoat config set https.logons false" in page
        _set(home, https__logons=False)
        assert _http_status(url) == 200
    finally:
        server.stop()

# --- the Certificate Management page ---------------------------------------------------------

def test_status_says_when_the_key_does_not_match_the_certificate(admin, home):
    _break_key(home)
    page = _page(admin)
    assert "The key and certificate in tls/ do not load" in page
    assert "key.pem is not the private key of the certificate in cert.pem" in page
    assert "HTTPS is off and SMTP offers no STARTTLS" in page     # no previous pair here


def test_status_does_not_show_a_garbage_file_as_an_installed_certificate(admin, home):
    _keep_as_previous(home)
    home.tls_cert.write_text("garbage\n")
    page = _page(admin)
    assert "cert.pem holds no certificate in PEM format" in page
    assert "they use the previous pair" in page
    assert "Certificate installed</th><td>—" in page
    assert "SSL certificate installed</th><td class=\"num\">No certificate — does not load" \
        in _page(admin, "/status/")


def test_a_repair_does_not_keep_the_broken_pair_as_previous(admin, home):
    _keep_as_previous(home)
    good = {name: (home.tls / name).read_bytes() for name in ("key.pem", "cert.pem")}
    _break_key(home)
    response = admin.post(f"{CERTIFICATES}/self-signed", {"self-common_name": "gw.example.com"})
    assert response.status_code == 302
    for name, content in good.items():      # still what the servers can fall back on
        assert (home.tls / f"{name}.previous").read_bytes() == content


# --- installing ------------------------------------------------------------------------------

def test_a_certificate_not_yet_valid_is_refused_with_its_date(admin, home):
    before = home.tls_cert.read_bytes()
    future = _certificate(_home_key(home), from_days=10, to_days=40)
    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": _pem(future)})
    assert response.status_code == 200
    text = html.unescape(response.get_data(as_text=True))
    assert f"not valid before {future.not_valid_before_utc:%Y-%m-%d %H:%M} UTC" in text
    assert home.tls_cert.read_bytes() == before


def test_reinstalling_the_certificate_in_use_changes_nothing_and_writes_no_event(admin, home):
    ca_key, ca_cert = _ca()
    signed = _certificate(_home_key(home), issuer=ca_cert, issuer_key=ca_key)
    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": _pem(signed)})
    assert response.status_code == 302
    [first] = admin.events(Action.OBJECT_MODIFIED)
    old, new = first["data"]["changes"]["tls.certificate"]
    assert old != new
    previous = (home.tls / "cert.pem.previous").read_bytes()

    response = admin.post(f"{CERTIFICATES}/install", {"install-certificate": _pem(signed)},
                          follow_redirects=True)
    assert "already installed; nothing changed" in response.get_data(as_text=True)
    assert len(admin.events(Action.OBJECT_MODIFIED)) == 1
    assert (home.tls / "cert.pem.previous").read_bytes() == previous  # not overwritten


def test_adding_the_chain_to_the_certificate_in_use_is_recorded_as_a_chain_change(admin, home):
    ca_key, ca_cert = _ca()
    signed = _certificate(_home_key(home), issuer=ca_cert, issuer_key=ca_key)
    admin.post(f"{CERTIFICATES}/install", {"install-certificate": _pem(signed)})
    admin.post(f"{CERTIFICATES}/install",
               {"install-certificate": _pem(signed) + _pem(ca_cert)})
    changes = admin.events(Action.OBJECT_MODIFIED)[-1]["data"]["changes"]
    assert "tls.certificate" not in changes
    assert changes["tls.chain"][0] is None and changes["tls.chain"][1]
    for old, new in changes.values():
        assert old != new


def test_self_signed_for_an_international_name_uses_its_a_labels(admin, home):
    response = admin.post(f"{CERTIFICATES}/self-signed", {"self-common_name": "müller.example"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    cert = x509.load_pem_x509_certificate(home.tls_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "xn--mller-kva.example" in names.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("form,field", [("self-signed", "self-common_name"),
                                        ("request", "request-common_name")])
@pytest.mark.parametrize("name", ["bad name!", "exa_mple..com", "bücher!.example"])
def test_a_common_name_that_is_no_host_name_is_refused_in_words(admin, home, form, field,
                                                                name):
    before = home.tls_cert.read_bytes()
    data = {field: name}
    if form == "request":
        data.update({"request-organization": "Org", "request-city": "City",
                     "request-state": "State", "request-country": "US",
                     "request-email": "admin@example.com"})
    response = admin.post(f"{CERTIFICATES}/{form}", data)
    assert response.status_code == 200
    text = html.unescape(response.get_data(as_text=True))
    assert "is not a host name such as mail.example.com or an IP address" in text
    assert "A-label" not in text
    assert home.tls_cert.read_bytes() == before


def test_a_request_for_an_international_name_asks_for_its_a_labels(admin):
    response = admin.post(f"{CERTIFICATES}/request", {
        "request-common_name": "müller.example", "request-organization": "Org",
        "request-city": "City", "request-state": "State", "request-country": "DE",
        "request-email": "admin@example.com"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    page = _page(admin)
    pem = page[page.index("-----BEGIN CERTIFICATE REQUEST-----"):
               page.index("-----END CERTIFICATE REQUEST-----") + 33]
    csr = x509.load_pem_x509_csr(pem.encode())
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["xn--mller-kva.example"]


# --- the `mailmoat run` banner ---------------------------------------------------------------

def _readline(stream, timeout: float = 60.0) -> str:
    """The next line of a child's output, or an assertion error after `timeout`: a child
    that hangs before printing must fail the test, not hang the suite."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no line of output within {timeout} s"
    return lines[0]


def _run_banner(home) -> str:
    """The Console line `mailmoat run` prints; the run is stopped right after."""
    smtp, http, https = free_ports(3)
    _set(home, smtp__port=smtp, http__port=http, https__port=https,
         smtp__listen=["127.0.0.1"], smtp__listener_processes=1,
         dns__resolvers=["127.0.0.1:9"])
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
         "run", "--home", str(home.root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        for _ in range(20):
            line = _readline(process.stdout)
            if line.startswith("Console:"):
                return line
        raise AssertionError("no Console line in the banner")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_run_banner_calls_only_a_self_signed_certificate_self_signed(home):
    assert "self-signed certificate until you install one" in _run_banner(home)
    ca_key, ca_cert = _ca()
    home.tls_cert.write_text(_pem(_certificate(_home_key(home), issuer=ca_cert,
                                               issuer_key=ca_key)))
    assert "self-signed" not in _run_banner(home)
