"""A chain certificate (an intermediate) served after the leaf in cert.pem that is out of its
dates is said as an expired leaf is: an event and a line on stderr from the core, the dates
notice on Certificate Management and a mark on the Status page, naming which one (upgrade17
B2: an older release's install took an expired intermediate, and a CA's intermediate may
expire before the leaf; STARTTLS and HTTPS served it with no word, and clients that check
refuse it).

Real certificates (root, intermediate, a leaf for tls/key.pem); the core in process with a
fake wall clock that passes the intermediate's expiry; the console's pages through its app.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from console.app import create_app
from shared.clock import SYSTEM_CLOCK, FakeClock
from shared.events import Action
from tests.support.certificates import reported_once_when_it_expires
from tests.support.console import Console
from tests.support.core import make_home
from tests.support.waiting import events_of

INTERMEDIATE = "CN=Chain Test Intermediate"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _signed(subject, public_key, issuer, issuer_key, not_before, not_after, ca: bool):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def _chain_into_tls(home, now: dt.datetime, intermediate_expires: dt.datetime) -> None:
    """cert.pem: a leaf for tls/key.pem valid a year, then its intermediate, which expires
    at `intermediate_expires`, issued by a root valid ten years."""
    day = dt.timedelta(days=1)
    root_key, int_key = ec.generate_private_key(ec.SECP256R1()), \
        ec.generate_private_key(ec.SECP256R1())
    root = _name("Chain Test Root")
    intermediate = _signed(_name("Chain Test Intermediate"), int_key.public_key(), root,
                           root_key, now - 400 * day, intermediate_expires, ca=True)
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    leaf = _signed(_name("mail.chain.test"), key.public_key(), intermediate.subject, int_key,
                   now - day, now + 365 * day, ca=False)
    home.tls_cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                       for c in (leaf, intermediate)))


def _dates_events(home) -> list[str]:
    return [row["info"] for row in events_of(home, Action.SERVICE_START_FAILED)
            if "the chain certificate" in (row["info"] or "")]


@pytest.mark.trio
async def test_an_intermediate_that_expires_while_the_core_runs_is_reported_once(tmp_path,
                                                                                nursery,
                                                                                capfd):
    clock = FakeClock(1_800_000_000.0)
    home = make_home(tmp_path)
    now = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc)
    expires = now + dt.timedelta(days=2)
    _chain_into_tls(home, now, expires)
    info = await reported_once_when_it_expires(home, clock, nursery, _dates_events)
    assert info.startswith(
        f"the chain certificate {INTERMEDIATE} served after the certificate in cert.pem "
        f"expired on {expires:%Y-%m-%d %H:%M} UTC: the console's HTTPS and the SMTP STARTTLS "
        f"still offer it, but browsers and mail servers that check certificates refuse it.")
    assert f"mailmoat core: {info}\n" in capfd.readouterr().err


def test_the_pages_name_an_expired_intermediate(tmp_path):
    home = make_home(tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    expired = now - dt.timedelta(days=1)
    _chain_into_tls(home, now, expired)
    console = Console(create_app(home, clock=SYSTEM_CLOCK, config={"TESTING": True}), home)
    try:
        assert console.logon().status_code == 302
        status = html.unescape(console.get("/status/").get_data(as_text=True))
        page = html.unescape(console.get("/configuration/setup/certificates")
                             .get_data(as_text=True))
    finally:
        console.app.extensions["mailmoat"].close()
    assert (f" — its chain certificate {INTERMEDIATE} expired on {expired:%Y-%m-%d} (see "
            f"Certificate Management)") in status
    assert (f"The chain certificate {INTERMEDIATE} served after the certificate in cert.pem "
            f"expired on {expired:%Y-%m-%d %H:%M} UTC: the console's HTTPS and the SMTP "
            f"STARTTLS still offer it") in page
