"""A pair that does not load is reported once per core run, whatever each listener process
does meanwhile.

Regression test for a failure of CI's slow suite (test_starttls_last_good_pair): the marker
that lets only the first process report held the event's whole text, and the text says what
that process does meanwhile. A process that had loaded cert.pem after the console kept the
previous pair keeps its own ("goes on with the certificate it loaded before"); one that
loaded it before goes back to the previous pair ("uses the previous pair") — the same
certificate both times, but two texts, so two events and two lines on standard error.

Two TlsFiles on one data home stand for two listener processes of one core run (each
process has its own, sharing run/ and the files); the certificates come from the console's
own install code.
"""

from __future__ import annotations

import time

from console import certs
from core.smtp.tls import TlsFiles
from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.home import initialise
from shared.paths import DataHome
from shared.tls import SELF_SIGNED_DAYS, make_self_signed, previous_path, write_atomically


def _failures(home: DataHome) -> list[str]:
    conn = db.connect(home.db)
    try:
        return [row["info"] for row in conn.execute(
            "SELECT info FROM events WHERE action = ?", (Action.SERVICE_START_FAILED,))]
    finally:
        conn.close()


def test_processes_doing_different_things_meanwhile_report_the_failure_once(tmp_path):
    home = DataHome(tmp_path / "home")
    initialise(home, "Pass-word-1")
    writers = [EventWriter(home.db, "core"), EventWriter(home.db, "core")]
    early, late = (TlsFiles(home, writer) for writer in writers)
    assert early() is not None and late() is not None
    certs.install_self_signed(home, "installed.test")
    early.look()                    # loads the install; the previous pair is init's
    for path in (home.tls_key, home.tls_cert):
        write_atomically(previous_path(path), path.read_bytes())
    late.look()                     # loads it after the previous pair became the same
    other_cert = make_self_signed("other-key.test")[1]
    write_atomically(home.tls_cert, other_cert, 0o644)
    for _ in range(2):              # a changed pair is reported at its second look
        early.look()
        late.look()
    for writer in writers:
        writer.flush()
        writer.close()
    [info] = _failures(home)
    assert "is not the private key of the certificate in cert.pem" in info
    # what the reporting process did meanwhile: the one that looked first
    assert "STARTTLS uses the previous pair" in info


def test_a_process_started_since_with_starttls_off_is_reported_too(tmp_path):
    # review20a R1: keyed on the failure alone, the report of a process that went on with its
    # own pair hid that one started since (a crash restart, a reshape) offers no STARTTLS
    home = DataHome(tmp_path / "home")
    initialise(home, "Pass-word-1")
    assert not previous_path(home.tls_cert).exists()
    writers = [EventWriter(home.db, "core"), EventWriter(home.db, "core")]
    running = TlsFiles(home, writers[0])
    assert running() is not None
    # a certificate of another key copied over cert.pem by hand: no previous pair
    write_atomically(home.tls_cert, make_self_signed("other-key.test")[1], 0o644)
    running.look()
    running.look()
    started_since = TlsFiles(home, writers[1])
    assert started_since() is None and running() is not None
    for writer in writers:
        writer.flush()
        writer.close()
    kept, off = _failures(home)
    assert "STARTTLS goes on with the certificate it loaded before" in kept
    assert "SMTP offers no STARTTLS, so mail arrives unencrypted" in off


def test_an_expired_certificate_is_reported_once_whatever_each_process_calls_it(tmp_path):
    # review20a R2: the previous pair's certificate and "the one loaded before" are the same
    # certificate; its expiry was two events, one per wording
    home = DataHome(tmp_path / "home")
    initialise(home, "Pass-word-1")
    now = time.time()
    clocks = [FakeClock(now), FakeClock(now)]
    writers = [EventWriter(home.db, "core", clock) for clock in clocks]
    early, late = (TlsFiles(home, writer) for writer in writers)
    assert early() is not None and late() is not None
    certs.install_self_signed(home, "installed.test")
    early.look()
    for path in (home.tls_key, home.tls_cert):
        write_atomically(previous_path(path), path.read_bytes())
    late.look()
    write_atomically(home.tls_cert, make_self_signed("other-key.test")[1], 0o644)
    for _ in range(2):
        early.look()
        late.look()
    for clock in clocks:        # the served (installed) certificate expires
        clock.advance((SELF_SIGNED_DAYS + 1) * 86_400)
    for _ in range(2):
        early.look()
        late.look()
    for writer in writers:
        writer.flush()
        writer.close()
    expired = [info for info in _failures(home) if "expired on" in info]
    assert len(expired) == 1, expired


def test_a_report_for_what_one_process_serves_does_not_unmake_another_processs(tmp_path):
    # review20d R3: the marker of a new report deleted the others, so a process deciding
    # after a restarted one reported what another process had reported already
    home = DataHome(tmp_path / "home")
    initialise(home, "Pass-word-1")
    writers = [EventWriter(home.db, "core") for _ in range(3)]
    first, second = TlsFiles(home, writers[0]), TlsFiles(home, writers[1])
    assert first() is not None and second() is not None
    write_atomically(home.tls_cert, make_self_signed("other-key.test")[1], 0o644)
    first.look()
    second.look()                   # both doubt a changed pair at their first look
    first.look()                    # reports: goes on with its own
    restarted = TlsFiles(home, writers[2])
    assert restarted() is None      # reports: STARTTLS off
    second.look()                   # goes on with its own, as the first reported
    for writer in writers:
        writer.flush()
        writer.close()
    kept, off = _failures(home)
    assert "goes on with the certificate it loaded before" in kept
    assert "SMTP offers no STARTTLS" in off
