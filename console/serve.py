"""Serving the console: one process, two cheroot WSGI listeners (HTTP and HTTPS) on one app.

Rules:
- Ports come from the settings `http.port` and `https.port`; when they change, the listener
  moves within about a second (the new port is bound first, then the old one closed; if the
  new port cannot be bound the old listener stays, the failure is logged once for that port,
  and the move is tried again at every poll).
- HTTPS uses tls/cert.pem and tls/key.pem of the data home. When either file changes, a new
  TLS context is built and swapped into the listener; connections already open keep theirs.
- A pair that does not load never stops the console: plain HTTP is what reaches Certificate
  Management to repair it. At start HTTPS uses the previous pair instead
  (shared.tls.load_server_pair), or stays off until a pair loads; while running, it serves
  the last good pair, as shared.tls.pair_to_serve decides for every server: the previous
  pair when the console kept one after HTTPS loaded its own (two installs less than a poll
  apart, the second a pair that does not load), else the context in use. A changed pair
  that fails is looked at again at the next poll (it may be caught between the two renames
  of an install) before it is reported, once: a `service_start_failed` event and a log
  line.
- A certificate served out of its dates has no event from here: the core's one event
  (core.smtp.tls) is about the pair both servers serve, the same files, and names the
  console's HTTPS with the SMTP STARTTLS; one from here would say that again at each start
  (certs18 3). The console's pages say it while it lasts.
- cheroot runs on Linux, macOS and Windows alike; nothing here needs root except ports < 1024.
- The request line and headers together are read up to MAX_REQUEST_HEADER_OCTETS; cheroot
  answers a longer request line 414 and longer headers 413 (its default reads them
  without a bound, so one client could fill the memory).
- An HTTP/1.1 request without a Host header, and a request of any version with more than
  one, is answered 400 before the console sees it (RFC 9112 §3.2: a server MUST; cheroot
  served both): `_Request.read_request_headers`. HTTP/1.0, which needs no Host, is served
  as before.
- A request cheroot refuses before the console sees it (a bad version 505, a malformed
  request line or header 400, HTTP/1.1 without Host 400, two Host headers 400, headers over
  MAX_REQUEST_HEADER_OCTETS 413, 414 …:
  console.security VIOLATION_STATUSES; a body cheroot finds too large is refused after the
  request was read, and is not one), and plain HTTP sent to the HTTPS port, are HTTP
  protocol violations, recorded by console.security's
  record_http_violation as the console's own 400s are. cheroot's own hooks carry them
  (`_Request.simple_response`, `_TlsAdapter.wrap`); nothing here parses HTTP: OpenSSL's
  handshake is what finds plain HTTP.
- Plain HTTP on the HTTPS port gets `400` in plain HTTP, as nginx answers it
  (`_answer_plain_http`). cheroot tries that too, but on the socket the failed handshake
  has already closed, so its client saw only a reset.
- What cheroot itself says (`Server.error_log`, its hook for that) goes to this module's
  log, never straight to stderr; its line for plain HTTP on the HTTPS port is left out,
  since the violation event and the answer have dealt with it, as with its other refusals;
  a client that closes the TLS handshake or refuses the certificate is logged at DEBUG
  only, and every other failed handshake (no shared cipher or protocol version, a
  timeout) at WARNING: the console's to fix (`_client_ended_handshake`). The terminal gets
  one line per thing to act on: libraries' routine INFO lines are left out
  (QUIET_LIBRARY_LOGGERS; APScheduler's in console.jobs, where the scheduler is made).
- One console per data home: `mailmoat console` holds the flock `run/console.lock` while it
  runs (shared.home.hold_lock), so its jobs run once and `mailmoat run` can tell a console
  it did not start. Under `mailmoat run` it stops cleanly when the run ends, kill -9
  included (shared.parent_watch).
- `ConsoleServer(ports fixed)` is what tests use: port 0 picks free ports, settings changes
  then do not move the listeners.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from cheroot import errors as cheroot_errors
from cheroot import wsgi
from cheroot.server import HeaderReader, HTTPConnection, HTTPRequest
from cheroot.ssl.builtin import BuiltinSSLAdapter

from console.app import create_app
from console.context import EXTENSION_KEY
from console.security import PLAIN_HTTP_ON_HTTPS, is_http_violation, record_http_violation
from shared import db as shared_db
from shared.clock import WallClock
from shared.events import Action
from shared.parent_watch import watch_supervisor
from shared.paths import DataHome
from shared.settings_store import load
from shared.tls import (FILE_CONTENT_ERRORS, ServerPair, load_server_pair, no_passphrase,
                        pair_signature, pair_to_serve, previous_path, unusable_message)

__all__ = ["ConsoleServer", "run", "POLL_SECONDS", "MAX_REQUEST_HEADER_OCTETS"]

log = logging.getLogger("mailmoat.console.serve")

POLL_SECONDS = 0.5   # settings and certificate files are checked this often
THREADS = 10         # worker threads per listener
SHUTDOWN_SECONDS = 5
# A browser's request line and headers, cookies included, stay well under this; Apache and
# nginx allow about 8 KiB a line, and the report pages' query strings are short.
MAX_REQUEST_HEADER_OCTETS = 64 * 1024
# Libraries whose INFO lines say nothing an administrator acts on (firstday20 C6); their
# warnings and errors still show. Flask-WTF: a bare "The CSRF token is missing." before the
# console's own line of the same refusal, which has the request id (console.security).
# APScheduler is quieted where the scheduler is made (console.jobs), for every console.
QUIET_LIBRARY_LOGGERS = ("flask_wtf.csrf",)
# What a client says when it refuses the certificate, as OpenSSL names the alert it sent: a
# browser at the self-signed one, several times a session (firstday20 C6).
CERTIFICATE_REFUSED_ALERTS = frozenset({
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE"})
# What an HTTP/1.1 request without a Host header is answered (with 400, `_Request`)
MISSING_HOST_TEXT = "An HTTP/1.1 request needs a Host header."
# What a request with more than one Host header is answered (with 400, `_Request`)
DUPLICATE_HOST_TEXT = "A request may have one Host header only."
# What a request with a folded header line is answered (with 400, `_HeaderReader`)
FOLDED_HEADER_TEXT = "A header line may not be folded onto the next."
PLAIN_HTTP_TEXT = b"This port speaks HTTPS only: the plain HTTP request was not read.\r\n"
PLAIN_HTTP_ANSWER = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(PLAIN_HTTP_TEXT), PLAIN_HTTP_TEXT))
# After the answer, the client's close is awaited this long, reading what it still sends:
# closing with its bytes unread would reset the connection, and a reset can throw away the
# answer before the client reads it. It runs in cheroot's accepting thread, so it is short:
# a browser has sent its request and closes at once; a client that sends more than
# MAX_REQUEST_HEADER_OCTETS or keeps quiet is closed on regardless.
PLAIN_HTTP_LINGER_SECONDS = 0.25


class _HeaderReader(HeaderReader):
    """cheroot's, which also counts the Host header lines it reads: it keeps only the last
    one's value in `inheaders`. One per request (`_Request.read_request_headers`). A folded
    header line (obs-fold) is refused: cheroot took the continuation for the whole value,
    so "Host: a.test" folded onto " b.test" read b.test, where a proxy in front may read
    a.test (RFC 9112 section 5.2: a server MUST refuse it with 400 or unfold it; review22c)."""

    def __init__(self):
        self.host_lines = 0

    def __call__(self, rfile, hdict=None):
        return super().__call__(_Unfolded(rfile), hdict)

    def _transform_key(self, key_name):
        key = super()._transform_key(key_name)
        if key == b"Host":
            self.host_lines += 1
        return key


class _Unfolded:
    """The request's header lines, refusing a folded one (`_HeaderReader`): cheroot answers
    the ValueError with 400 and its text."""

    def __init__(self, rfile):
        self._rfile = rfile

    def readline(self, *args):
        line = self._rfile.readline(*args)
        if line[:1] in (b" ", b"\t"):
            raise ValueError(FOLDED_HEADER_TEXT)
        return line


class _Request(HTTPRequest):
    """cheroot's request; an answer it gives a request it could not read (server.HTTPRequest
    parse_request, read_request_line/read_request_headers: not yet `ready`) is a violation
    when console.security says that status is one. An HTTP/1.1 request without a Host
    header, and any request with more than one, are among them (`read_request_headers`)."""

    def read_request_headers(self):
        """cheroot's, and then RFC 9112 §3.2: "A server MUST respond with a 400 (Bad
        Request) status code to any HTTP/1.1 request message that lacks a Host header
        field and to any request message that contains more than one Host header field
        line" (cheroot served both, with the last Host's value: a proxy in front that reads
        the first would disagree about the host). HTTP/1.0 has no Host requirement and is
        served as before. The field's value may be empty (a target without an authority); a
        value that is no host name is the console's 400 (console.security)."""
        self.header_reader = reader = _HeaderReader()
        if not super().read_request_headers():
            return False
        if reader.host_lines > 1:
            self.simple_response("400 Bad Request", DUPLICATE_HOST_TEXT)
            return False
        if self.response_protocol == "HTTP/1.1" and b"Host" not in self.inheaders:
            self.simple_response("400 Bad Request", MISSING_HOST_TEXT)
            return False
        return True

    def simple_response(self, status, msg=""):
        if not self.ready and is_http_violation(status):
            if "plain HTTP request" in msg:     # cheroot's own words for it (_handle_no_ssl)
                what = PLAIN_HTTP_ON_HTTPS
            else:
                what = f"{status}: {msg}" if msg else str(status)
            self.server.violation(self.conn.remote_addr, what)
        super().simple_response(status, msg)


class _Connection(HTTPConnection):
    RequestHandlerClass = _Request


class _Server(wsgi.Server):
    ConnectionClass = _Connection

    def __init__(self, *args, violation: Callable[[str | None, str], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.violation = violation

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        """cheroot's lines, into the console's log (its own writes them to stderr). It
        calls this while it handles the exception that it reports, if any: a failed TLS
        handshake is FatalSSLAlert, whatever failed. A client that closed it or refused the
        certificate (a browser at the self-signed one, several times a session; a port
        scanner) is the client's business: its line is DEBUG, off the terminal (firstday20
        C6). Any other is WARNING (review20c D5): no cipher or protocol version in common
        with an older client or a monitoring tool, a handshake that timed out."""
        handled = sys.exc_info()[1]
        if isinstance(handled, _PlainHttpAnswered):
            return
        if isinstance(handled, cheroot_errors.FatalSSLAlert):
            level = logging.DEBUG if _client_ended_handshake(handled) \
                else max(level, logging.WARNING)
        log.log(level, "cheroot: %s", msg, exc_info=traceback)


def _client_ended_handshake(alert: cheroot_errors.FatalSSLAlert) -> bool:
    """Whether the client ended the failed handshake: it closed the connection, or its
    alert refused the certificate (cheroot raises `alert` from the ssl or socket error)."""
    cause = alert.__cause__
    if isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
                          BrokenPipeError)):
        return True
    return isinstance(cause, ssl.SSLError) and cause.reason in CERTIFICATE_REFUSED_ALERTS


class _PlainHttpAnswered(cheroot_errors.NoSSLError):
    """Plain HTTP on the HTTPS port, recorded and answered by `_TlsAdapter.wrap`."""


class _TlsAdapter(BuiltinSSLAdapter):
    """cheroot's TLS adapter; a client that speaks plain HTTP to it is a violation, answered
    here, before any request object exists."""

    violation: Callable[[str | None, str], None] = staticmethod(lambda address, what: None)

    def wrap(self, sock):
        try:
            address = sock.getpeername()[0]   # before the handshake, which detaches sock
            spare = sock.dup()                # and closes it when it fails
        except OSError:     # gone already: the handshake says so
            address, spare = None, None
        try:
            return super().wrap(sock)
        except cheroot_errors.NoSSLError as plain:
            self.violation(address, PLAIN_HTTP_ON_HTTPS)
            if spare is not None:
                _answer_plain_http(spare)
            raise _PlainHttpAnswered(*plain.args) from plain
        finally:
            if spare is not None:
                spare.close()


def _answer_plain_http(sock: socket.socket) -> None:
    """PLAIN_HTTP_ANSWER, then the close, on `sock` (see PLAIN_HTTP_LINGER_SECONDS).
    Never raises: the client may be gone."""
    deadline = time.monotonic() + PLAIN_HTTP_LINGER_SECONDS
    try:
        sock.settimeout(PLAIN_HTTP_LINGER_SECONDS)
        sock.sendall(PLAIN_HTTP_ANSWER)
        sock.shutdown(socket.SHUT_WR)
        read = 0
        while read < MAX_REQUEST_HEADER_OCTETS and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            data = sock.recv(4096)
            if not data:    # the client closed: done
                return
            read += len(data)
    except OSError:         # timeout, reset
        pass


@dataclass
class _Listener:
    scheme: str
    server: _Server
    thread: threading.Thread
    port: int


def _default_host() -> str:
    """Dual-stack "::" where IPv6 exists, else every IPv4 address."""
    if socket.has_ipv6:
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            probe.close()
            return "::"
        except OSError:
            pass
    return "0.0.0.0"


@dataclass
class ConsoleServer:
    home: DataHome
    host: str | None = None
    http_port: int | None = None     # None = follow the settings
    https_port: int | None = None
    clock: WallClock | None = None
    app_config: dict | None = None
    listeners: dict[str, _Listener] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.host = self.host or _default_host()
        self.app = create_app(self.home, self.clock, self.app_config)
        self.context = self.app.extensions[EXTENSION_KEY]
        self._fixed = {"http": self.http_port, "https": self.https_port}
        self._tls_signature: tuple | None = None   # the files the HTTPS decision was made for
        self._tls_doubted: tuple | None = None     # failed once while HTTPS was on: look again
        self._adapter: _TlsAdapter | None = None
        self._tls_serving: ServerPair | None = None   # the pair whose context HTTPS uses
        self._stop = threading.Event()
        self._move_failed: dict[str, int] = {}     # scheme -> the port it could not move to

    # --- listeners ------------------------------------------------------------------------
    def _wanted_ports(self) -> dict[str, int]:
        values = None
        wanted = {}
        for scheme in ("http", "https"):
            if self._fixed[scheme] is not None:
                wanted[scheme] = self._fixed[scheme]
            else:
                if values is None:
                    conn = shared_db.connect(self.home.db)
                    try:
                        values = load(conn)
                    finally:
                        conn.close()
                wanted[scheme] = values[f"{scheme}.port"]
        return wanted

    def _make_adapter(self, pair: ServerPair) -> bool:
        """cheroot's adapter for the pair that loaded; False when its files changed since
        (the adapter loads them again), for the next poll to decide."""
        key, cert = self.home.tls_key, self.home.tls_cert
        if pair.is_previous:
            key, cert = previous_path(key), previous_path(cert)
        try:
            adapter = _TlsAdapter(str(cert), str(key), private_key_password=no_passphrase)
        except FILE_CONTENT_ERRORS:
            self._tls_signature = None
            return False
        adapter.context = pair.context
        adapter.violation = self._violation
        self._adapter, self._tls_serving = adapter, pair
        return True

    def _report_unusable(self, pair: ServerPair, kept: bool) -> None:
        message = unusable_message("HTTPS", pair, kept=kept)
        log.warning("%s", message)
        self.context.events.record(Action.SERVICE_START_FAILED, info=message)

    def _start_tls(self) -> bool:
        """Decide HTTPS at start: True when there is a pair to serve."""
        self._tls_signature = pair_signature(self.home)
        pair = load_server_pair(self.home)
        if pair.problem is not None:
            self._report_unusable(pair, kept=False)
        return pair.context is not None and self._make_adapter(pair)

    def _violation(self, address: str | None, what: str) -> None:
        record_http_violation(self.context, address, what)

    def _open(self, scheme: str, port: int) -> _Listener:
        server = _Server((self.host, port), self.app, numthreads=THREADS,
                         server_name="mailmoat-console", shutdown_timeout=SHUTDOWN_SECONDS,
                         violation=self._violation)
        server.max_request_header_size = MAX_REQUEST_HEADER_OCTETS
        if scheme == "https":
            server.ssl_adapter = self._adapter
        server.prepare()  # binds; raises OSError when the port cannot be used
        bound = server.bind_addr[1]
        thread = threading.Thread(target=server.serve, name=f"console-{scheme}", daemon=True)
        thread.start()
        self.context.bound_ports[scheme] = bound
        return _Listener(scheme, server, thread, bound)

    def _close(self, listener: _Listener) -> None:
        listener.server.stop()
        listener.thread.join(SHUTDOWN_SECONDS)

    def start(self) -> None:
        """Bind both listeners — HTTPS only when a pair loads (raises OSError if a port
        cannot be bound)."""
        wanted = self._wanted_ports()
        try:
            for scheme in ("http", "https"):
                if scheme == "https" and not self._start_tls():
                    self.context.https_off = True
                    continue
                self.listeners[scheme] = self._open(scheme, wanted[scheme])
        except BaseException:
            self.stop()
            raise

    def urls(self) -> dict[str, str]:
        host = "localhost" if self.host in ("::", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return {scheme: f"{scheme}://{host}:{listener.port}/"
                for scheme, listener in self.listeners.items()}

    # --- live changes ---------------------------------------------------------------------
    def reload_certificate_if_changed(self) -> bool:
        """Swap in a new TLS context when tls/ changed (opening HTTPS if it was off for
        want of a pair); True when swapped."""
        if not self.listeners:
            return False
        signature = pair_signature(self.home)
        if signature == self._tls_signature:
            return False
        pair = load_server_pair(self.home)
        serving = "https" in self.listeners
        if pair.problem is not None:
            if serving and signature != self._tls_doubted:
                self._tls_doubted = signature
                return False
            self._tls_signature = signature
            chosen, kept = pair_to_serve(pair, self._tls_serving if serving else None)
            self._report_unusable(pair, kept=kept)
            if kept or chosen.context is None:
                return False
            pair = chosen
        self._tls_signature, self._tls_doubted = signature, None
        if serving:
            self._adapter.context, self._tls_serving = pair.context, pair
            cert = previous_path(self.home.tls_cert) if pair.is_previous else self.home.tls_cert
            log.info("HTTPS now uses the certificate in %s", cert)
            return True
        if not self._make_adapter(pair):
            return False
        port = self._fixed["https"]
        try:
            if port is None:
                port = self._wanted_ports()["https"]
            self.listeners["https"] = self._open("https", port)
        except Exception as exc:  # a busy port or database must not stop serving HTTP
            log.error("cannot open the HTTPS listener on port %s (%s)", port, exc)
            return False
        self.context.https_off = False
        log.info("HTTPS is on: %s", self.urls()["https"])
        return True

    def follow_port_settings(self) -> None:
        try:
            wanted = self._wanted_ports()
        except Exception as exc:  # a busy or missing database must not stop serving
            log.warning("cannot read the port settings: %s", exc)
            return
        for scheme, port in wanted.items():
            current = self.listeners.get(scheme)
            if current is None or current.port == port or self._fixed[scheme] is not None:
                if current is not None and current.port == port:
                    self._move_failed.pop(scheme, None)    # set back: a new failure is news
                continue
            try:
                replacement = self._open(scheme, port)
            except OSError as exc:
                # tried again at every poll, said once: the port may be freed later
                if self._move_failed.get(scheme) != port:
                    self._move_failed[scheme] = port
                    log.error("cannot move the %s listener to port %s (%s); it stays on %s "
                              "and moves when the port is free", scheme.upper(), port, exc,
                              current.port)
                continue
            self._move_failed.pop(scheme, None)
            self.listeners[scheme] = replacement
            self._close(current)
            log.info("console %s listener moved from port %s to %s", scheme.upper(),
                     current.port, port)
            print(f"Mailmoat console: {self.urls()[scheme]}", flush=True)

    def poll_once(self) -> None:
        self.reload_certificate_if_changed()
        self.follow_port_settings()

    def serve_until_stopped(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll_once()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        for listener in list(self.listeners.values()):
            self._close(listener)
        self.listeners.clear()
        self.context.close()


def run(home: DataHome, out: Callable[[str], None] = print) -> int:
    """`mailmoat console`: serve until SIGTERM or Ctrl-C (or the end of the `mailmoat run`
    that started it); 0 after a clean stop. Raises AlreadyRunning when another console
    holds the data home."""
    from shared.home import CONSOLE_LOCK, hold_lock, open_db

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s mailmoat-console %(levelname)s %(message)s")
    for name in QUIET_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    open_db(home).close()  # refuses a missing home or a schema this code does not know
    home.create()
    lock = hold_lock(home, *CONSOLE_LOCK)
    try:
        return _serve(home, out)
    finally:
        os.close(lock)


def _serve(home: DataHome, out: Callable[[str], None]) -> int:
    server = ConsoleServer(home)
    try:
        server.start()
    except OSError as exc:
        out(f"mailmoat: the console cannot listen: {exc}")
        return 1
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda *_: server.request_stop())
    watch_supervisor("console")
    urls = server.urls()
    https = urls.get("https", "no HTTPS (see Certificate Management)")
    out(f"Mailmoat console: {urls['http']} and {https} (data home {home.root})")
    # The process's one scheduler (console.jobs): here, not in create_app, so it runs once.
    from console.jobs import start_jobs
    jobs = start_jobs(home, server.context.events, server.context.clock,
                      server.context.sessions)
    try:
        server.serve_until_stopped()
    finally:
        jobs.shutdown()
        server.stop()
    out("Mailmoat console stopped.")
    return 0
