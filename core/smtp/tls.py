"""The SMTP listener's TLS context from the data home's key and certificate.

The console installs a new certificate by replacing `tls/key.pem` and `tls/cert.pem`; the
context is rebuilt when their modification times change, looked at most once a second since
every session asks, and a half-written pair keeps the previous context.
"""

from __future__ import annotations

import ssl
import time

from shared.paths import DataHome

__all__ = ["TlsFiles"]


class TlsFiles:
    """The data home's key + certificate as an SSL context, rebuilt when the files change
    (the console installs a new certificate by replacing them)."""

    CHECK_SECONDS = 1.0  # asked at every session: look at the files at most once a second

    def __init__(self, home: DataHome):
        self.home = home
        self._stamp = None
        self._context: ssl.SSLContext | None = None
        self._checked = -self.CHECK_SECONDS

    def __call__(self) -> ssl.SSLContext | None:
        now = time.monotonic()
        if now - self._checked < self.CHECK_SECONDS:
            return self._context
        self._checked = now
        try:
            stamp = (self.home.tls_cert.stat().st_mtime_ns, self.home.tls_key.stat().st_mtime_ns)
        except FileNotFoundError:
            return None
        if stamp != self._stamp:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(self.home.tls_cert, self.home.tls_key)
            except (ssl.SSLError, OSError):
                return self._context  # a half-written pair: keep the previous one
            self._stamp, self._context = stamp, context
        return self._context
