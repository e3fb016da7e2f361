"""STARTTLS when the key and certificate in tls/ do not load (an administrator copied a key
that belongs to another certificate, as docs/console.md allows).

Regression tests for the day-one finding: core/smtp/tls.py returned None for such a pair, so
EHLO silently stopped offering STARTTLS although smtp.tls.inbound is `offer` — inbound mail
then arrived in cleartext with no event and no log line. Now the core falls back on the
previous pair the console kept, keeps a context it already has, and says so once: one
`service_start_failed` event, not one per session nor one per listener process.

Real SMTP over loopback: smtplib's EHLO and STARTTLS against the core, certificates made
with `cryptography` here.
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import time

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.app import run_core
from shared.events import Action
from shared.tls import make_self_signed
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of, wait_for

# several seconds per test: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = pytest.mark.slow


def _break_key(home) -> None:
    """A private key that belongs to no certificate in tls/."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    home.tls_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))


def _keep_as_previous(home) -> bytes:
    """The good pair where the console keeps a replaced one; returns the certificate's DER."""
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    return x509.load_pem_x509_certificate(home.tls_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)


def _session(port: int) -> bytes | None:
    """EHLO, then STARTTLS when offered: the certificate served (DER), None without STARTTLS."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        if not client.has_extn("starttls"):
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.starttls(context=context)
        return client.sock.getpeercert(binary_form=True)


def _tls_events(home) -> list[str]:
    return [row["info"] for row in events_of(home, Action.SERVICE_START_FAILED)
            if "STARTTLS" in (row["info"] or "")]


# A backstop, not a measure: several listener processes start slowly on a loaded machine,
# and 15 s was too short at eight times more work than cores (flake20 F2).
def _wait_for(predicate, timeout=60.0):
    assert wait_for(predicate, timeout), "timed out"


def _reports_on_stderr(home) -> int:
    """The core's stderr line for the failure: printed as it is reported (in whichever
    process), so it counts the reports however the processes stopped."""
    log = (home.root / "core-test.log").read_text()
    return log.count("the key and certificate in tls/ do not load")


def test_core_start_with_a_mismatched_key_offers_starttls_with_the_previous_pair(tmp_path):
    home = make_home(tmp_path)
    previous = _keep_as_previous(home)
    _break_key(home)
    with CoreProcess(home) as core:
        assert [_session(core.smtp_port) for _ in range(4)] == [previous] * 4
        _wait_for(lambda: _tls_events(home))
    [info] = _tls_events(home)
    assert "key.pem is not the private key of the certificate in cert.pem" in info
    assert "STARTTLS uses the previous pair" in info
    assert "Certificate Management" in info
    assert _reports_on_stderr(home) == 1


def test_listener_processes_report_a_pair_without_fallback_once(tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=3)
    _break_key(home)                    # and no previous pair: nothing to offer
    with CoreProcess(home) as core:
        # service_started comes once every listener process listens: the sessions below
        # are spread over all three by the kernel
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))
        assert [_session(core.smtp_port) for _ in range(12)] == [None] * 12
        _wait_for(lambda: _tls_events(home))
    [info] = _tls_events(home)
    assert "SMTP offers no STARTTLS, so mail arrives unencrypted" in info
    assert _reports_on_stderr(home) == 1


@pytest.mark.trio
async def test_a_bad_pair_copied_in_while_running_keeps_starttls_and_is_reported(tmp_path,
                                                                                 nursery):
    home = make_home(tmp_path)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    served = await trio.to_thread.run_sync(_session, port)
    assert served is not None
    _break_key(home)

    async def still_served_and_reported():
        assert await trio.to_thread.run_sync(_session, port) == served
        return bool(_tls_events(home))

    with trio.fail_after(15):
        while not await still_served_and_reported():
            await trio.sleep(0.2)
    [info] = _tls_events(home)
    assert "STARTTLS goes on with the certificate it loaded before" in info
    for _ in range(3):
        assert await trio.to_thread.run_sync(_session, port) == served
    await core.events.aflush()                 # a second report would be written by now
    assert len(_tls_events(home)) == 1
    core.cancel_scope.cancel()


# --- every listener process keeps the pair it loaded at its start -------------------------
# docs finding B2: each listener process loaded the pair at its first session, so one that
# had served nobody yet counted as starting when a bad cert.pem was copied in: on a fresh
# home (no *.previous) STARTTLS vanished, and processes of one core served different
# certificates (the older previous pair, or none) and wrote two events for one change.
# Counts: 0 is the default `mailmoat run` uses (one process per CPU core), 3 makes sure
# there are several whatever the machine has.

def _subject(der: bytes | None) -> str | None:
    return None if der is None else x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _copy_in_a_certificate_of_another_key(home) -> str:
    """cert.pem overwritten in place, as `cp` does, with a certificate whose key is not
    key.pem; returns its subject."""
    _, cert_pem = make_self_signed("copied.test")
    home.tls_cert.write_bytes(cert_pem)
    return x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string()


def _serve_until_reported_and_stop(home, core: CoreProcess) -> list[str | None]:
    """Sessions until the change is reported, then a dozen more spread over a few seconds
    (each process looks twice, a second apart, before it reports); stops the core, which
    writes every process's events. Returns the subjects served (None: no STARTTLS)."""
    served = []

    def served_and_reported() -> bool:
        served.append(_subject(_session(core.smtp_port)))
        return bool(_tls_events(home))

    _wait_for(served_and_reported)
    for _ in range(12):
        served.append(_subject(_session(core.smtp_port)))
        time.sleep(0.2)
    core.stop()
    return served


@pytest.mark.slow       # several listener processes, each started and stopped (~8 s)
@pytest.mark.parametrize("processes", [0, 3])
def test_a_bad_certificate_copied_into_a_fresh_home_keeps_starttls_in_every_listener(
        tmp_path, processes):
    home = make_home(tmp_path, smtp__listener_processes=processes)
    assert not home.tls_cert.with_name("cert.pem.previous").exists()
    loaded = x509.load_pem_x509_certificate(home.tls_cert.read_bytes()).subject.rfc4514_string()
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))   # every process listens
        copied = _copy_in_a_certificate_of_another_key(home)
        served = _serve_until_reported_and_stop(home, core)
    assert copied != loaded
    assert served == [loaded] * len(served)
    [info] = _tls_events(home)
    assert "STARTTLS goes on with the certificate it loaded before" in info
    assert _reports_on_stderr(home) == 1


@pytest.mark.slow
def test_listener_processes_that_served_and_that_did_not_keep_one_certificate_and_one_event(
        tmp_path):
    # three processes: with the session below and CoreProcess's connect at start, at least
    # one has served nobody when the certificate is copied in
    home = make_home(tmp_path, smtp__listener_processes=3)
    # an older pair the console kept: a process that counted as starting served it
    key_pem, cert_pem = make_self_signed("previous.test")
    home.tls_key.with_name("key.pem.previous").write_bytes(key_pem)
    home.tls_cert.with_name("cert.pem.previous").write_bytes(cert_pem)
    loaded = x509.load_pem_x509_certificate(home.tls_cert.read_bytes()).subject.rfc4514_string()
    with CoreProcess(home) as core:
        _wait_for(lambda: events_of(home, Action.SERVICE_STARTED))
        # one session: a process has served
        assert _subject(_session(core.smtp_port)) == loaded
        _copy_in_a_certificate_of_another_key(home)
        served = _serve_until_reported_and_stop(home, core)
    assert len(_tls_events(home)) == 1, _tls_events(home)
    assert _reports_on_stderr(home) == 1
    assert served == [loaded] * len(served)
