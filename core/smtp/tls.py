"""The SMTP listener's TLS context from the data home's key and certificate.

The console installs a new certificate by replacing `tls/key.pem` and `tls/cert.pem`; the
context is rebuilt when the files change. Each process that serves SMTP looks at them once a
second (`TlsFiles.watch`, as the console's HTTPS polls them), whether sessions come or not,
and a session asks too, at most once a second.

Rules:
- Each listener (the core's own or a listener process) decides its context when it starts,
  before it listens (SmtpServer.serve), never at its first session: otherwise a listener
  that had served nobody yet counted as starting when a bad pair came, and the processes
  of one core served different certificates, or some none.
- A pair that does not load never silently turns STARTTLS off (inbound mail would then
  arrive in cleartext unnoticed). What is served meanwhile is the last good pair, as
  shared.tls.pair_to_serve decides for every server: the previous pair, unless this
  process has a pair and the console kept no newer previous one since it loaded it.
  STARTTLS is off only when nothing loads.
- The files are looked at once a second even when no session asks (`watch`): a listener
  process that looked only when a session asked had not loaded an install made while it
  served nobody, and a pair that did not load then left it with an older pair than the
  others served (certs17 B3: a copy by hand keeps no previous pair to go back to).
- Each distinct failure is reported once — a `service_start_failed` event and a line on
  standard error — not once per session and not once per listener process: the processes
  of one core run agree through a marker file in run/ that only the first creates. What
  is reported once is the failure (the files and what is wrong with them) with the
  certificate served meanwhile, not the words for it: a process that loaded cert.pem after
  the console wrote the previous pair keeps its own while one that loaded it before goes
  back to the previous pair — the same certificate, one report (their two wordings were two:
  CI, the last-good-pair test) — but a process started since with nothing to serve, STARTTLS
  off, is reported too.
- A changed pair that fails while a context is in use is looked at once more before it is
  reported: an install is two renames, and a session may come between them.
- A certificate that loads but is out of its dates (copied in after it expired, or aged
  out while running: OpenSSL serves it, clients that check it refuse it) is reported once
  per core run and certificate, at start or within a second of its expiry, as a
  `service_start_failed` event and a line on standard error (certs17 C3). It is the
  certificate served that is looked at: the previous pair's, or the one loaded before,
  while cert.pem does not load (regress17 R2: an expired cert.pem.previous was served
  after a restart and nothing said so). Not again every
  day: the console's Certificate Management and Status pages say it while it lasts. This
  event is also the console's: its text names the console's HTTPS with STARTTLS, which
  serve the same files, and the console writes none of its own (certs18 3).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
import sys
import time

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from shared.events import Action, EventWriter
from shared.paths import DataHome
from shared.tls import (FILE_CONTENT_ERRORS, IN_CERT_PEM, IN_PREVIOUS, LOADED_BEFORE, ServerPair,
                        chain_after_leaf, load_server_pair, out_of_dates, out_of_dates_message,
                        pair_signature, pair_to_serve, previous_path, unusable_message)

__all__ = ["TlsFiles"]

_REPORTED_PREFIX = "tls-reported."   # run/tls-reported.<run>.<hash>: that failure has its event
# run/tls-dates.<hash>: that certificate's dates have their event. Apart from the failures':
# those are forgotten when a pair loads, which every process's look at the files precedes.
_DATES_PREFIX = "tls-dates."


class TlsFiles:
    """The data home's key + certificate as an SSL context, rebuilt when the files change
    (the console installs a new certificate by replacing them). Call it for the context,
    or None when STARTTLS cannot be offered."""

    CHECK_SECONDS = 1.0  # look at the files once a second (`watch`; sessions: at most)

    def __init__(self, home: DataHome, events: EventWriter):
        self.home = home
        self._events = events       # the process's writer (ARCHITECTURE invariant 4)
        self._stamp = None          # the files' signature the context was decided for
        self._doubted = None        # a signature that failed once while a context was in use
        self._serving: ServerPair | None = None   # its context is the one STARTTLS uses
        # the served certificate, the words for which it is (shared.tls.dates_problem) and
        # the chain served after it
        self._leaf: tuple[x509.Certificate, str, list[x509.Certificate]] | None = None
        self._dates_seen = None     # what `_check_dates` last reported
        self._checked = -self.CHECK_SECONDS

    @property
    def _context(self) -> ssl.SSLContext | None:
        return self._serving.context if self._serving is not None else None

    def __call__(self) -> ssl.SSLContext | None:
        if time.monotonic() - self._checked >= self.CHECK_SECONDS:
            self.look()
        return self._context

    async def watch(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Look at the files every CHECK_SECONDS until cancelled (module rules)."""
        task_status.started()
        while True:
            self.look()
            await trio.sleep(self.CHECK_SECONDS)

    def look(self) -> None:
        """Decide the context again if the files changed; report what is wrong with them."""
        self._checked = time.monotonic()
        stamp = pair_signature(self.home)
        if stamp != self._stamp:
            self._decide(stamp)
        self._check_dates()

    def _decide(self, stamp: tuple) -> None:
        pair = load_server_pair(self.home)
        if pair.problem is None:
            self._stamp, self._serving, self._doubted = stamp, pair, None
            self._leaf = _leaf_of(self.home.tls_cert, IN_CERT_PEM)
            self._forget_reports(_REPORTED_PREFIX)
            return
        serving, kept = pair_to_serve(pair, self._serving)
        if serving is not self._serving:
            self._leaf = (_leaf_of(previous_path(self.home.tls_cert), IN_PREVIOUS)
                          if serving.context is not None else None)
        elif self._leaf is not None and self._leaf[1] == IN_CERT_PEM:
            self._leaf = (self._leaf[0], LOADED_BEFORE, self._leaf[2])  # cert.pem changed
        if self._context is not None and stamp != self._doubted:
            # perhaps between an install's two renames: not reported before a second look
            self._doubted, self._serving = stamp, serving
            return
        self._stamp, self._serving = stamp, serving
        # reported once per failure and what is served meanwhile (module rules), whichever
        # words the process has for it: its own pair kept or the previous pair, the same
        # certificate, is one report; STARTTLS off in a process started since is another
        self._report(_REPORTED_PREFIX, (stamp, pair.problem, self._served()), unusable_message(
            "STARTTLS", pair, kept=kept,
            off="SMTP offers no STARTTLS, so mail arrives unencrypted"))

    def _served(self) -> tuple[bytes, ...] | None:
        """The certificates this process serves (the leaf and its chain, as SHA-256
        fingerprints); None while STARTTLS is off, () when the served file could no longer
        be read."""
        if self._context is None:
            return None
        if self._leaf is None:
            return ()
        return tuple(cert.fingerprint(hashes.SHA256())
                     for cert in (self._leaf[0], *self._leaf[2]))

    def _check_dates(self) -> None:
        if self._leaf is None:
            return
        now = datetime.datetime.fromtimestamp(self._events.clock.now(), datetime.timezone.utc)
        message = out_of_dates_message(self._leaf[0], now, self._leaf[1], self._leaf[2])
        if message is None:
            return
        # once per core run, certificate and state (module rules), not per wording (the
        # previous pair's or the one loaded before: the same certificate) nor per stamp
        served = (self._leaf[0], *self._leaf[2])
        what = (self._served(), tuple(out_of_dates(cert, now) for cert in served))
        if what != self._dates_seen:
            self._dates_seen = what
            self._report(_DATES_PREFIX, what, message)

    # --- reporting once -------------------------------------------------------------------
    def _report(self, prefix: str, what: tuple, message: str) -> None:
        """`message` as an event and on standard error, unless a process of this core run
        reported `what` (the failure, or the dates) already."""
        if not self._first_to_report(prefix, what):
            return
        self._events.record(Action.SERVICE_START_FAILED, info=message)
        print(f"mailmoat core: {message}", file=sys.stderr, flush=True)

    def _first_to_report(self, prefix: str, what: tuple) -> bool:
        """True for the first process of this core run to report `what`."""
        try:  # the core's pid, written at each start: a new run reports again
            run = (self.home.run / "core.running").read_text()
        except OSError:
            run = ""
        this_run = prefix + hashlib.sha256(run.encode()).hexdigest()[:8] + "."
        marker = self.home.run / (this_run + hashlib.sha256(repr(what).encode()).hexdigest()[:16])
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        except OSError:
            return True     # run/ unwritable: a report too many beats none
        # earlier runs' markers go; this run's stay, each a report made (several can stand
        # at once — processes serving different pairs — and forgetting one reported it again:
        # review20d R3)
        self._forget_reports(prefix, keep=this_run)
        return True

    def _forget_reports(self, prefix: str, keep: str | None = None) -> None:
        """Remove the markers of `prefix` but those whose names start with `keep`."""
        try:
            for path in self.home.run.glob(prefix + "*"):
                if keep is None or not path.name.startswith(keep):
                    path.unlink(missing_ok=True)
        except OSError:
            pass


def _leaf_of(cert_path, which: str) -> tuple[x509.Certificate, str, list] | None:
    """The first certificate of `cert_path`, with `which` and the chain after it; None when
    it cannot be read (replaced since it loaded: the next look decides again)."""
    try:
        pem = cert_path.read_bytes()
        return x509.load_pem_x509_certificate(pem), which, chain_after_leaf(pem)
    except FILE_CONTENT_ERRORS:
        return None
