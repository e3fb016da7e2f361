"""Certificates the tests write into a data home's tls/."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The subject of `chain_into_tls`'s intermediate, as pages and messages show it
INTERMEDIATE = "CN=Chain Test Intermediate"


def certificate_for_the_key_in_use(home, not_before: dt.datetime,
                                   not_after: dt.datetime) -> bytes:
    """A self-signed certificate for tls/key.pem with these dates, written over cert.pem in
    place, as `cp` does; returns its DER."""
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.expiry.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    home.tls_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _signed(subject, public_key, issuer, issuer_key, not_before, not_after, ca: bool):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def chain_into_tls(home, now: dt.datetime, intermediate_expires: dt.datetime,
                   leaf_expires: dt.datetime | None = None) -> None:
    """cert.pem: a leaf for tls/key.pem valid from a day before `now` to `leaf_expires`
    (default: a year after `now`), then its intermediate (INTERMEDIATE), which expires at
    `intermediate_expires`, issued by a root valid ten years."""
    day = dt.timedelta(days=1)
    root_key, int_key = ec.generate_private_key(ec.SECP256R1()), \
        ec.generate_private_key(ec.SECP256R1())
    root = _name("Chain Test Root")
    intermediate = _signed(_name("Chain Test Intermediate"), int_key.public_key(), root,
                           root_key, now - 400 * day, intermediate_expires, ca=True)
    key = serialization.load_pem_private_key(home.tls_key.read_bytes(), password=None)
    leaf = _signed(_name("mail.chain.test"), key.public_key(), intermediate.subject, int_key,
                   now - day, leaf_expires or now + 365 * day, ca=False)
    home.tls_cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                       for c in (leaf, intermediate)))


def indent_by_hand(home) -> None:
    """cert.pem with every line indented, as a careless paste leaves it: OpenSSL does not read
    it, while cryptography's lenient parse does (certs17 B1)."""
    text = home.tls_cert.read_text()
    home.tls_cert.write_text("".join("  " + line for line in text.splitlines(True)))


async def reported_once_when_it_expires(home, clock, nursery, dates_events) -> str:
    """Run a core in this task's `nursery` on `clock` (a FakeClock two days before tls/'s
    certificate expires), pass three days, and return the one report `dates_events(home)`
    finds: none while the certificate was valid, no second one at later looks. The core is
    cancelled before returning."""
    import trio

    from core.app import run_core
    from core.smtp.tls import TlsFiles
    from tests.support.waiting import until

    core = await nursery.start(lambda task_status: run_core(home, clock=clock,
                                                            task_status=task_status))
    await trio.sleep(2 * TlsFiles.CHECK_SECONDS)       # looked at while valid
    await core.events.aflush()
    assert dates_events(home) == []
    clock.advance(3 * 86400)
    [info] = await until(lambda: dates_events(home), 10, flush=core.events.aflush)
    await trio.sleep(3 * TlsFiles.CHECK_SECONDS)       # more looks write nothing more
    await core.events.aflush()
    assert len(dates_events(home)) == 1
    core.cancel_scope.cancel()
    return info
