"""The trio SMTP listener: sockets, limits, timeouts and TLS around the sans-IO protocol.

Rules:
- At most `smtp.max_incoming` sessions are served at once; further connections are accepted
  by the kernel and wait for a slot (SPEC §4: queued, not refused).
- One client (one IP address) has at most half of smtp.max_incoming sessions (`client_limit`,
  served and waiting together, counted in every listener process: core/smtp/
  client_sessions.py); its next connection is answered at once `421 4.7.0 Too many
  connections from your host` and closed, with a `rejected` event of rule smtp.max_incoming
  and a `connection_from` whose result is CONNECTION_FAILED, as delivery.reject_incoming's
  421 is recorded. Without it one host holding every slot with idle connections made every
  other sender wait up to the command limit each time (Postfix:
  smtpd_client_connection_count_limit, half its process limit). Exempt, and
  served or queued as SPEC §4 says of every connection: the host itself (HOST_ITSELF: a
  local MTA in front, monitoring, an administrator's test) and clients of relay.allowed by
  address, the organisation's own servers, which open many (a host-name entry would need a
  DNS lookup before the limit could apply, for every connection past it, so it does not
  count here).
- Every read has a deadline from trio's clock (SPEC §4) → 421 4.4.2 and close (at most
  DEADLINE_SLACK_SECONDS late, never early). The limits are the constants below:
  COMMAND_IDLE_SECONDS (5 min) for a whole command line, counted from the greeting or the
  previous reply, so bytes dripped into an unfinished line do not extend it; DATA_IDLE_SECONDS
  (10 min) between reads in DATA and DATA_TOTAL_SECONDS (30 min) for a whole DATA phase; and
  SESSION_TOTAL_SECONDS (1 hour) for the session: once it has lasted that long, its next wait
  for a command ends it (a message being received then is finished first, under the DATA
  limits). A client sending one valid command every 4.9 minutes thus holds a session slot for
  an hour, not for ever.
- 250 after DATA only when `GroupCommitter.commit` returned: message and envelope fsync'd,
  renamed into fast/, directory fsync'd (ARCHITECTURE invariant 1).
- A client that vanishes mid-DATA leaves nothing queued: the incoming entry is aborted.
- `RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.5.1: always accepted), and
  postmaster@ the gateway's own host name, is mail for this gateway's postmaster: accepted
  from any client (no relay check) as the addresses of `admin.emails`, which the envelope
  and the accepted event then name. An administrator should set `admin.emails`; while it is
  empty such mail goes to postmaster@ the gateway's host name (smtp.hostname, else the
  machine's), which reaches someone only if routing.local or DNS leads that name to a mail
  server with a postmaster. Before, it went out as <Postmaster> to whatever next hop
  routing.default named, someone else's postmaster (smtp-security finding 5).
- A refused recipient's `rejected` event is written when its transaction reaches DATA or
  ends (`_settle_refusals`): only then is it known whether a message was rejected, and the
  reports and the Rejected counter count messages (guide Tables 7-1, 7-2).
- Exceptions stop at the session boundary: an event, 421 if the socket still works, close.
  Exception text never goes into a reply.
- The listener follows `smtp.port`/`smtp.listen`: a change rebinds within the settings poll.
  The new sockets bind before the old ones close; a change that cannot be bound (a port
  another program holds, an address the host lacks) leaves the listener where it was, with a
  `service_start_failed` event, until the settings change again. At start it raises
  ListenFailed instead (SPEC §3: "a port already in use … the old value kept").
"""

from __future__ import annotations

import errno
import ipaddress
import re
import secrets
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Callable, Mapping

import trio

from core.delivery.routing import host_port
from core.pipeline.decompose.mime import head_facts
from core.smtp import replies as R
from core.smtp.client_sessions import LocalClientSessions, SharedClientSessions
from core.smtp.conversation import ConversationLog, WriteFailures
from core.smtp.events import (NEED_DATA, ConnectionClosed, DataChunk, DataComplete,
                              DataRequested, Ehlo, MailFrom, ProtocolViolation, RcptTo,
                              RecipientLimitReached, Rset, StartTlsRequested,
                              UnsupportedCommand, ViolationKind)
from core.smtp.policy import (Refusal, check_recipient, check_spool_space, listed_relay_client,
                              max_message_octets, relay_needs_ptr)
from core.smtp.protocol import ServerConnection
from core.smtp.rbl import SUSPEND_SECONDS, RblChecker, RblListing, check_rbl_sender
from core.smtp.state import State
from core.smtp.streams import TcpStream
from shared.clock import mail_date
from shared.disk import DiskSpace, is_out_of_space
from shared.events import Action
from shared.idn import domain_form
from shared.report import CONNECTION_FAILED, CONNECTION_SUCCEEDED, RECIPIENT_REFUSED
from shared.spool import SUBJECT_META, Envelope, new_queue_id

__all__ = ["SmtpServer", "GroupCommitter", "ListenFailed", "COMMAND_IDLE_SECONDS", "DATA_IDLE_SECONDS",
           "DATA_TOTAL_SECONDS", "SESSION_TOTAL_SECONDS"]

# The session time limits (SPEC §4; docs/operations.md "SMTP limits" lists them for admins).
# A whole command line within 5 minutes of our greeting or previous reply (RFC 5321
# §4.5.3.2.7): restarting the timer at every byte let 26 clients dripping one byte each 50 s
# hold every session slot for hours (smtp-security finding 1).
COMMAND_IDLE_SECONDS = 5 * 60
DATA_IDLE_SECONDS = 10 * 60     # RFC 5321 §4.5.3.2.6, restarted by every read in DATA
DATA_TOTAL_SECONDS = 30 * 60    # SPEC §4: overall limit on a slow sender
# Outside DATA a session ends at its first wait for a command after this long. Real senders
# reuse a connection for minutes (Postfix's smtp_connection_reuse_time_limit is 300 s,
# Exchange closes a receive session after 10 minutes); an hour leaves them ample room and
# bounds the slot a client holds with one valid command every 4.9 minutes.
SESSION_TOTAL_SECONDS = 60 * 60
DEADLINE_SLACK_SECONDS = 1.0    # how late a read timeout may fire (see _Session._serve)
TLS_HANDSHAKE_SECONDS = 60
READ_OCTETS = 64 * 1024
BUFFER_OCTETS = 256 * 1024  # messages up to this size stay in memory until the group commit
# accept(2) errors about one connection, not the listener (trio.SocketListener's list)
_ACCEPT_ERRORS_TO_IGNORE = {getattr(errno, name) for name in (
    "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
    "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT", "EPROTONOSUPPORT",
    "ETIMEDOUT", "ECONNRESET") if hasattr(errno, name)}
DISK_CHECK_SECONDS = 1.0
HEAD_OCTETS = 64 * 1024         # where the Subject and the hops are counted (head_facts)
MAX_HOPS = 100                  # more Received fields than this: a loop (RFC 5321 §6.3)
MAX_SUBJECT_CHARS = 998         # RFC 5322's line limit: what an event keeps of a Subject
QUEUED_REPLY_SECONDS = 5.0      # how long a shutdown waits for a queued message's 250
SHUTDOWN_REPLY_SECONDS = 1.0    # ... and for the 421 to any other session
# What the Received field shows of a client's HELO argument and PTR name: the characters of a
# domain or an address literal, the rest as "?" (as Postfix writes them), at most a domain's
# length. The client chooses both: verbatim it could write a fake "([10.9.9.9]) by host"
# hop, break the field's grammar with "(" or ";", or put raw 8-bit text into a message
# relayed without SMTPUTF8 (smtp-security finding 4). The envelope keeps the argument as sent.
_NOT_IN_RECEIVED_NAME = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
RECEIVED_NAME_CHARS = 255
# The conversation log's error class (diagnostics.conversation.errors; docs/operations.md,
# Troubleshooting, "SMTP conversations") of a violation, when it is not "protocol":
# refusals by our own limits and rules are "local", as the guide's example, a message over
# the size limit; a parameter we recognise but do not implement is an "unsupported" request.
_VIOLATION_LOG_CLASS = {
    ViolationKind.SIZE_DECLARED_OVER_LIMIT: "local",
    ViolationKind.UNRELAYABLE_ADDRESS: "local",
    ViolationKind.PARAMETER_NOT_IMPLEMENTED: "unsupported",
}


class ListenFailed(Exception):
    """The listener cannot bind where the settings say: the message names the address and
    the reason (an operator's failure, not a bug: `mailmoat core` prints it as one line)."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


def _received_name(name: str) -> str:
    """`name` as the Received field shows it (see _NOT_IN_RECEIVED_NAME)."""
    return _NOT_IN_RECEIVED_NAME.sub("?", name[:RECEIVED_NAME_CHARS])


async def _say_shutting_down(send) -> None:
    """At a stop, `await send()` the 421 4.3.2 (RFC 5321 §3.8: the client tries again later,
    rather than seeing a broken connection): shielded, bounded, a client gone meanwhile no
    error."""
    with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_REPLY_SECONDS):
        try:
            await send()
        except Exception:
            pass


# Connections from these addresses come from this host itself (module rules).
HOST_ITSELF = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _from_host_itself(client_ip: str) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in HOST_ITSELF)


def client_limit(max_incoming: int) -> int:
    """The sessions one client may have, served or waiting (module rules): half of
    smtp.max_incoming, rounded up."""
    return (max_incoming + 1) // 2


def _close(listeners: list[socket.socket]) -> None:
    for listener in listeners:
        if listener.fileno() != -1:
            trio.lowlevel.notify_closing(listener)
            listener.close()


@dataclass
class PendingMessage:
    """A received message on its way to fast/: buffered in memory (small messages) or
    already streaming into its incoming/ file (large ones)."""

    queue_id: str
    envelope: Envelope
    chunks: list[bytes] | None = None
    incoming: object | None = None
    envelope_json: bytes = b""      # set by the commit: the envelope as written


class GroupCommitter:
    """Makes received messages durable in batches, in one worker thread per batch: write
    each message and envelope into incoming/ (`Spool.write_incoming`, or `prepare` for a
    message already streamed there), make the whole batch durable with one sync of the
    file system, then rename all of them into fast/ and fsync fast/ once (`Spool.commit`).
    Messages that finish while a batch is being written form the next batch, so one sync
    covers every message accepted at the same moment (group commit) and the event loop
    pays one thread hop per batch.

    When `run` ends (shutdown cancels it) it still commits what is pending, and later
    commits fail at once: a session waiting for its commit, shielded, must never wait for
    a committer that is gone — that hung listener processes and the core at shutdown."""

    def __init__(self, spool):
        self.spool = spool
        self._pending: list[PendingMessage] = []
        self._waiters: list[trio.Event] = []
        self._wakeup = trio.Event()
        self._results: dict[int, OSError | None] = {}
        self._closed = False

    async def commit(self, pending: PendingMessage) -> None:
        """Return once the message is in fast/ and durable; OSError when it is not."""
        if self._closed:
            raise OSError(errno.ESHUTDOWN, "the listener is shutting down")
        done = trio.Event()
        self._pending.append(pending)
        self._waiters.append(done)
        self._wakeup.set()
        with trio.CancelScope(shield=True):  # the commit happens whether or not we wait
            await done.wait()
        error = self._results.pop(id(done))
        if error is not None:
            raise error

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self._commit_pending()
        finally:
            self._closed = True
            with trio.CancelScope(shield=True):
                await self._commit_pending()

    async def _commit_pending(self) -> None:
        batch, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        if not batch:
            return
        with trio.CancelScope(shield=True):
            errors = await trio.to_thread.run_sync(self._write_batch, batch)
        for item, done in zip(batch, waiters):
            self._results[id(done)] = errors.get(item.queue_id)
            done.set()

    def _write_batch(self, batch: list[PendingMessage]) -> dict[str, OSError]:
        errors: dict[str, OSError] = {}
        prepared = []
        for item in batch:
            try:
                if item.incoming is None:
                    message = self.spool.write_incoming(item.envelope, item.chunks or ())
                else:
                    message = item.incoming.prepare(item.envelope, sync=False)
                item.envelope_json = message.envelope_json
                prepared.append(message)
            except OSError as exc:
                errors[item.queue_id] = exc
                if item.incoming is not None:
                    item.incoming.abort()
        try:
            self.spool.commit(prepared)
        except OSError as exc:
            # Those already renamed stay queued (a duplicate at worst after the client's
            # retry); the rest are removed.
            for message in prepared:
                errors[message.queue_id] = exc
                self.spool.discard_incoming(message.queue_id)
        return errors


class SmtpServer:
    def __init__(self, *, settings: Callable[[], Mapping], spool, committer: GroupCommitter,
                 events, counters, clock,
                 on_accepted: Callable[[str, Envelope, bytes], None],
                 ssl_context: Callable[[], ssl.SSLContext | None], diagnostics_dir,
                 resolver=None, hostname: Callable[[], str], reuse_port: bool = False,
                 share: int = 1, share_index: int = 0,
                 auto_whitelisted: Callable[[str, Mapping], bool] | None = None,
                 client_sessions: LocalClientSessions | SharedClientSessions | None = None):
        self.settings = settings
        self.spool = spool
        self.committer = committer
        self.events = events
        self.counters = counters
        self.clock = clock
        self.on_accepted = on_accepted
        self.ssl_context = ssl_context
        self.diagnostics_dir = diagnostics_dir
        self.log_failures = WriteFailures(events, "diagnostics.conversation.inbound")
        self.resolver = resolver
        self.rbl = (RblChecker(resolver, on_refused=lambda: counters.incr("rbl_refused"),
                               on_skipped=lambda: counters.incr("rbl_skipped"),
                               on_suspended=self._rbl_zone_suspended)
                    if resolver is not None else None)
        self.auto_whitelisted = auto_whitelisted   # (domain, settings) -> bool: RBL exemption
        self.hostname = hostname
        self.reuse_port = reuse_port  # several listener processes share the port
        self.share = share            # ... and smtp.max_incoming between them;
        self.share_index = share_index    # this one is number share_index (from 0) of them
        self.reports_listen_errors = share_index == 0   # not N times the same event
        self.limiter = trio.CapacityLimiter(self._sessions_allowed(settings()))
        # each client's sessions, waiting too: in all listener processes when they share
        self.client_sessions = client_sessions or LocalClientSessions()
        self.active = 0
        self.max_active_seen = 0
        self.bound: list[tuple[str, int]] = []
        self._rebind = trio.Event()
        self._disk_space = (DiskSpace(1, 1), -DISK_CHECK_SECONDS)

    def disk_space(self) -> DiskSpace:
        """The spool's file system, statvfs at most once a second: it is asked at every
        MAIL."""
        value, checked = self._disk_space
        now = trio.current_time()
        if now - checked >= DISK_CHECK_SECONDS:
            value = self.spool.disk_space()
            self._disk_space = (value, now)
        return value

    # --- listeners ---------------------------------------------------------------------
    def _sessions_allowed(self, settings: Mapping) -> int:
        """This process's part of smtp.max_incoming: the parts add up to the setting (15 over
        2 processes: 8 and 7), at least 1 each."""
        base, extra = divmod(settings["smtp.max_incoming"], self.share)
        return max(1, base + (self.share_index < extra))

    def _rbl_zone_suspended(self, zone: str, failures: int) -> None:
        self.events.record(
            Action.SCAN_ERROR, rule="rbl.zones", result="suspended", data={"zone": zone},
            info=f"real-time blacklist {zone}: {failures} lookups in a row failed or timed "
                 f"out; not asked for {SUSPEND_SECONDS:.0f} s at a time until it answers "
                 f"again (clients count as not listed there meanwhile)")

    def settings_changed(self, old: Mapping, new: Mapping) -> None:
        self.limiter.total_tokens = self._sessions_allowed(new)
        if (old["smtp.port"], old["smtp.listen"]) != (new["smtp.port"], new["smtp.listen"]):
            self._rebind.set()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled. At shutdown a session whose message is already queued
        still sends its 250 (within QUEUED_REPLY_SECONDS); every other session gets 421
        4.3.2 and is closed, and its client sends again what got no 250.

        Raises ListenFailed before it is ready when it cannot listen where the settings say.
        A later change that cannot be bound is reported (service_start_failed) and the
        listener stays where it was until the settings change again."""
        s = self.settings()
        listeners = self._open_listeners(s["smtp.listen"], s["smtp.port"])
        try:
            async with trio.open_nursery() as sessions:
                self.bound = [l.getsockname()[:2] for l in listeners]
                task_status.started(self.bound)
                while True:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept_loop, listener, sessions)
                        wanted = await self._next_binding()
                        accepting.cancel_scope.cancel()
                    listeners = self._rebound(listeners, wanted)
                    self.bound = [l.getsockname()[:2] for l in listeners]
        finally:
            _close(listeners)

    async def _next_binding(self) -> tuple[list[str], int]:
        """Wait for a change of smtp.port/smtp.listen; returns the (hosts, port) wanted."""
        await self._rebind.wait()
        self._rebind = trio.Event()
        s = self.settings()
        return list(s["smtp.listen"]), s["smtp.port"]

    def _rebound(self, listeners: list[socket.socket],
                 wanted: tuple[list[str], int]) -> list[socket.socket]:
        """The listeners for `wanted`, or `listeners` (still open) when it cannot be bound.

        The new sockets are bound beside the old ones, so a refusal costs nothing. On the
        same port our own old sockets may be what is in the way (0.0.0.0 after 127.0.0.1):
        then the old ones close first and, if the new ones still cannot bind, open again."""
        hosts, port = wanted
        try:
            new = self._open_listeners(hosts, port)
        except ListenFailed as exc:
            if exc.errno != errno.EADDRINUSE or port != self.bound[0][1]:
                self._listen_failed(exc)
                return listeners
            old_hosts = [address[0] for address in self.bound]
            _close(listeners)
            try:
                new = self._open_listeners(hosts, port)
            except ListenFailed as exc:
                self._listen_failed(exc)
                return self._open_listeners(old_hosts, port)
        _close(listeners)
        return new

    def _listen_failed(self, exc: ListenFailed) -> None:
        where = ", ".join(host_port(h, p) for h, p in self.bound)
        message = f"{exc}; still listening on {where} until smtp.port or smtp.listen changes"
        if self.reports_listen_errors:
            self.events.record(Action.SERVICE_START_FAILED, info=message)
            print(f"mailmoat core: {message}", file=sys.stderr, flush=True)

    def _open_listeners(self, hosts, port: int) -> list[socket.socket]:
        """One listening socket per address of `hosts` (IP addresses, the setting's rule);
        raises ListenFailed naming the address and the reason."""
        listeners = []
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                if host == "::":
                    continue  # IPv6 switched off on this host: serve IPv4 only
                raise
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6 \
                        and host == "::":
                    continue  # a host without IPv6: serve IPv4 only
                _close(listeners)
                raise ListenFailed(f"cannot listen for SMTP on {host_port(host, port)} "
                                   f"({exc.strerror})", exc.errno) from None
            sock.setblocking(False)
            sock.listen(256)
            listeners.append(sock)
        if not listeners:
            raise ListenFailed(f"cannot listen for SMTP on any of {', '.join(hosts)} "
                               f"(no such address on this host)", errno.EADDRNOTAVAIL)
        return listeners

    async def _accept_loop(self, listener: socket.socket, sessions: trio.Nursery) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    await trio.sleep(0.1)  # out of descriptors: back off, keep listening
                    continue
                if exc.errno in _ACCEPT_ERRORS_TO_IGNORE:
                    continue  # that client is gone; the listener is fine
                raise
            sessions.start_soon(self._session, TcpStream(connection))
            await trio.lowlevel.checkpoint()

    # --- one session -------------------------------------------------------------------
    async def _session(self, stream: TcpStream) -> None:
        try:
            client_ip = stream.socket.getpeername()[0]
        except OSError:             # gone before its session began (ENOTCONN)
            await stream.aclose()
            return
        sessions = self.client_sessions.opened(client_ip)
        try:
            settings = self.settings()
            limit = client_limit(settings["smtp.max_incoming"])
            if sessions > limit and not _from_host_itself(client_ip) \
                    and not listed_relay_client(client_ip, None, settings):
                await self._refuse_client(stream, client_ip, sessions, limit)
            else:
                await self._serve_client(stream, client_ip)
        finally:
            self.client_sessions.closed(client_ip)

    async def _refuse_client(self, stream: TcpStream, client_ip: str, sessions: int,
                             limit: int) -> None:
        """421 at once, without a session slot (module rules)."""
        refusal = Refusal(R.R421_TOO_MANY_CONNECTIONS, "smtp.max_incoming",
                          f"{sessions} connections at once from this client; a client may "
                          f"have {limit}: half of smtp.max_incoming (clients of "
                          f"relay.allowed have no such limit)")
        try:
            await _Session(self, stream, client_ip).run(refusal)
        except Exception as exc:
            self.events.record(Action.CONNECTION_CLOSED, client_ip=client_ip, result="error",
                               info=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_client(self, stream: TcpStream, client_ip: str) -> None:
        try:
            await self.limiter.acquire()
        except trio.Cancelled:
            # a stop while it waited for a session slot: told as the served ones are
            await _say_shutting_down(lambda: stream.send_all(R.R421_SHUTTING_DOWN.to_bytes()))
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        try:
            self.active += 1
            self.max_active_seen = max(self.max_active_seen, self.active)
            try:
                session = _Session(self, stream, client_ip)
                await session.run()
            except Exception as exc:
                # run() answers the client for failures inside the conversation; this is
                # the rest (setting up, closing): one session's failure must never end
                # the listener and with it every other session.
                self.events.record(Action.CONNECTION_CLOSED, client_ip=client_ip,
                                   result="error",
                                   info=f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self.active -= 1
                with trio.CancelScope(shield=True):
                    await stream.aclose()
        finally:
            self.limiter.release()


class _Session:
    def __init__(self, server: SmtpServer, stream, client_ip: str):
        self.server = server
        self.stream = stream
        self.client_ip = client_ip
        self.settings = server.settings()  # one snapshot per session (invariant 5)
        self.connection_id = secrets.token_hex(6)
        self.hostname = server.hostname()
        self.log = ConversationLog(
            self.settings, "inbound", self.connection_id,
            f"inbound connection {self.connection_id} from {client_ip}", now=server.clock.now)
        limit = max_message_octets(self.settings)
        tls_ok = self.settings["smtp.tls.inbound"] == "offer" and server.ssl_context() is not None
        self.conn = ServerConnection(self.hostname, max_message_octets=limit,
                                     tls_available=tls_ok, size_advertised=limit)
        self.helo = ""
        self.is_extended = False       # the hello was EHLO (Received: "with ESMTP", not "SMTP")
        # The client's forward-confirmed PTR name (core/delivery/mx.py rule 7), asked only
        # when relay.allowed names hosts; None also when its PTR name does not resolve back.
        # Relaying, the RBL exemption and the Received field trust no other name.
        self.client_ptr: str | None = None
        self.rbl_answers = None        # core/smtp/rbl.py RblAnswers: the zones' answers at connect
        self.rbl_listing = None        # ...the listing they make at this transaction's MAIL FROM
        self.sender: str | None = None
        self.mail_params: dict = {}
        self.recipients: list[str] = []
        # (address, Refusal) of the first recipient this transaction refused: its event waits
        # for the end (`_settle_refusals`), which decides whether it rejected a message. The
        # later ones cannot, and are written at once: a client naming refused recipients
        # for an hour must not grow a list.
        self.first_refused: tuple[str, Refusal] | None = None
        self.incoming = None           # the incoming/ file, once a message outgrows memory
        self.buffered: list[bytes] | None = None
        self.buffered_octets = 0
        self.head = b""                # the message's first HEAD_OCTETS, for its Subject
        self.write_failed: OSError | None = None   # streaming into incoming/ failed
        self.queue_id: str | None = None
        self.deadline_total: float | None = None   # of the DATA phase
        self.session_deadline = trio.current_time() + SESSION_TOTAL_SECONDS

    def record(self, action: Action, **fields) -> None:
        self.server.events.record(action, connection_id=self.connection_id,
                                  client_ip=self.client_ip, **fields)

    async def write(self, data: bytes) -> None:
        if data:
            self.log.server(data)
            await self.stream.send_all(data)

    async def run(self, refusal: Refusal | None = None) -> None:
        """The session; with `refusal` (or delivery.reject_incoming) only its 421."""
        server = self.server
        server.counters.incr("connections")
        if refusal is None and self.settings["delivery.reject_incoming"]:
            refusal = Refusal(R.R421_SERVICE_NOT_AVAILABLE, "delivery.reject_incoming",
                              "incoming mail refused (421)")
        # guide Table 7-6: the connection's result; one answered only 421 failed
        self.record(Action.CONNECTION_FROM,
                    result=CONNECTION_SUCCEEDED if refusal is None else CONNECTION_FAILED,
                    rule=refusal.rule if refusal is not None else None)
        try:
            if refusal is not None:
                await self.write(self.conn.send(refusal.reply))
                self.log.error("local", f"{refusal.rule}: {refusal.reason}")
                server.counters.incr("rejected")
                self.record(Action.REJECTED, rule=refusal.rule, info=refusal.reason)
                return
            await self._look_up_client()
            await self.write(self.conn.send(R.R220_READY(self.hostname)))
            await self._loop()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError,
                ssl.SSLError) as exc:
            reason = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
            self.log.error("communication", f"connection lost: {reason}")
        except trio.Cancelled:
            await _say_shutting_down(lambda: self.write(self.conn.send(R.R421_SHUTTING_DOWN)))
            raise
        except trio.TooSlowError:
            over = self.conn.state is not State.DATA \
                and trio.current_time() >= self.session_deadline
            self.log.error("communication", "session time limit" if over else "timeout")
            with trio.move_on_after(5):
                try:
                    await self.write(self.conn.send(R.R421_TIMEOUT))
                except Exception:
                    pass
        except Exception as exc:  # session boundary: never a traceback to the client
            self.log.error("local", f"{type(exc).__name__}")
            self.record(Action.CONNECTION_CLOSED, result="error",
                        info=f"internal error: {type(exc).__name__}: {exc}")
            with trio.move_on_after(5):
                try:
                    await self.write(R.R451_LOCAL_ERROR.to_bytes())
                except Exception:
                    pass
        finally:
            if self.incoming is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.incoming.abort)
                self.incoming = None
            self._settle_refusals()
            self.record(Action.DISCONNECTED)
            with trio.CancelScope(shield=True):
                await self.log.close(self.server.diagnostics_dir, self.server.log_failures)

    async def _look_up_client(self) -> None:
        """The client's confirmed PTR name (for host names in relay.allowed) and RBL answers,
        asked side by side: each is time-limited (the PTR name by two lookups' time, its
        forward lookups side by side: core/delivery/mx.py rule 7), so DNS delays the greeting
        by the longer of the two, not their sum (and a zone that keeps failing is skipped:
        core/smtp/rbl.py rule 5).
        What the answers mean is decided at each MAIL FROM (`_rbl_listing_now`)."""
        server = self.server
        lookups = []
        if relay_needs_ptr(self.settings) and server.resolver is not None:
            lookups.append(self._look_up_ptr)
        if server.rbl is not None and server.rbl.enabled_zones(self.settings):
            lookups.append(self._check_rbl)
        if lookups:
            async with trio.open_nursery() as nursery:
                for lookup in lookups:
                    nursery.start_soon(lookup)

    async def _look_up_ptr(self) -> None:
        self.client_ptr = await self.server.resolver.confirmed_ptr(self.client_ip)

    async def _check_rbl(self) -> None:
        self.rbl_answers = await self.server.rbl.answers(self.client_ip, self.settings)

    def _rbl_listing_now(self) -> tuple[RblListing | None, Mapping]:
        """The client's RBL listing under the settings in force now, and those settings.

        SPEC §3 "every setting applies live": a session may stay open for hours (an MTA's
        connection cache), so each MAIL FROM reads the current rbl.*, whitelist and
        relay.allowed settings, not the session's snapshot. The connect-time answers are
        filtered again: a zone removed or disabled since no longer lists the client, and
        the current return codes decide (the usual reason to change a zone in a hurry is
        that it started listing everybody). A zone enabled after the client connected was
        not asked and does not count until the client's next connection: asking it here
        would stall a command in mid-session for up to the DNS time limit while the
        session holds its smtp.max_incoming slot, and adding a zone is not the urgent
        direction. A client of relay.allowed is one of the organisation's own mail hosts:
        its listing is ignored (as Postfix's permit_mynetworks comes before
        reject_rbl_client), or an RBL listing of its address range would lose all
        outbound mail."""
        current = self.server.settings()
        if self.rbl_answers is None:
            return None, current
        listing = self.rbl_answers.listing(current)
        if listing is not None and listed_relay_client(self.client_ip, self.client_ptr,
                                                        current):
            listing = None
        return listing, current

    def _read_deadline(self, waiting_since: float) -> float:
        """When the read now starting must have brought what it waits for: in DATA the
        next bytes; outside DATA the whole command line the session has been waiting for
        since `waiting_since` (its greeting or previous reply)."""
        if self.conn.state is State.DATA:
            return min(trio.current_time() + DATA_IDLE_SECONDS, self.deadline_total)
        return min(waiting_since + COMMAND_IDLE_SECONDS, self.session_deadline)

    async def _loop(self) -> None:
        # One scope for the session whose deadline follows the reads: a scope per read
        # cost three times as much, several times per message. Until the next read the
        # deadline also bounds the handling and the replies.
        with trio.CancelScope() as timer:
            await self._serve(timer)
        if timer.cancelled_caught:
            raise trio.TooSlowError

    async def _serve(self, timer: trio.CancelScope) -> None:
        conn = self.conn
        # When the wait for the next command began: set at the first read after an event or
        # a reply, kept while the reads bring only part of a line (COMMAND_IDLE_SECONDS).
        waiting_since: float | None = None
        while conn.state is not State.CLOSED:
            event = conn.next_event()
            replies = conn.data_to_send()
            if replies:
                await self.write(replies)
                waiting_since = None
            if event is NEED_DATA:
                if waiting_since is None:
                    waiting_since = trio.current_time()
                # A timeout fires DEADLINE_SLACK_SECONDS late at most, never early: the
                # deadline moves only when it leaves that window (a few times a session,
                # not at every read).
                due = self._read_deadline(waiting_since)
                if not due <= timer.deadline <= due + DEADLINE_SLACK_SECONDS:
                    timer.deadline = due + DEADLINE_SLACK_SECONDS
                data = await self.stream.receive_some(READ_OCTETS)
                if not data:
                    conn.receive_data(b"")
                    continue
                self.log.client(data)
                conn.receive_data(data)
                continue
            await self._handle(event)
            waiting_since = None
        await self.write(conn.data_to_send())

    async def _handle(self, event) -> None:
        conn = self.conn
        if isinstance(event, DataChunk):
            await self._append(event.data)
        elif isinstance(event, Ehlo):
            self.helo, self.is_extended = event.name, event.is_extended
            await self._reset()
        elif isinstance(event, MailFrom):
            await self._reset()
            self.rbl_listing, rbl_settings = self._rbl_listing_now()
            declared = event.params.get("SIZE") or 0
            refusal = check_spool_space(self.server.disk_space().free_fraction(declared)) \
                or check_rbl_sender(self.rbl_listing, event.address, rbl_settings,
                                    self.server.auto_whitelisted)
            if refusal:
                if refusal.rule.startswith("rbl."):
                    self.server.counters.incr("spam_rbl")
                    self.server.counters.incr("spam_messages")
                await self._refuse(refusal, event.address)
            else:
                self.sender = event.address
                self.mail_params = event.params
                await self.write(conn.send(R.R250_SENDER_OK))
        elif isinstance(event, RcptTo):
            if self._is_our_postmaster(event.address):
                self.recipients += self._postmasters()
                await self.write(conn.send(R.R250_RECIPIENT_OK))
                return
            refusal = check_recipient(event.address, self.client_ip, self.client_ptr,
                                      self.settings)
            if refusal:
                self.log.error("local", f"{refusal.rule}: {refusal.reason}")
                if self.first_refused is None:
                    self.first_refused = (event.address, refusal)
                else:
                    self._record_refusal(event.address, refusal, rejects_message=False)
                await self.write(conn.send(refusal.reply))
            else:
                self.recipients.append(event.address)
                await self.write(conn.send(R.R250_RECIPIENT_OK))
        elif isinstance(event, DataRequested):
            await self._start_data()
        elif isinstance(event, DataComplete):
            await self._finish_data(event)
        elif isinstance(event, Rset):
            await self._reset()
        elif isinstance(event, StartTlsRequested):
            await self._start_tls()
        elif isinstance(event, ProtocolViolation):
            self.log.error(_VIOLATION_LOG_CLASS.get(event.kind, "protocol"), event.detail)
            if event.kind is ViolationKind.SIZE_DECLARED_OVER_LIMIT:
                # The size policy (SPEC §5 step 1) refusing at MAIL: the protocol checks the
                # SIZE it advertised, but this is the rejection that after DATA is
                # `size.max_mb` too, and counts as a rejected message (guide Table 7-2).
                self.server.counters.incr("rejected")
                self.record(Action.REJECTED, rule="size.max_mb", info=event.detail,
                            result=str(event.reply.code))
                return
            self.server.counters.incr("protocol_violations")
            self.record(Action.PROTOCOL_VIOLATION, rule=str(event.kind), info=event.detail,
                        result=str(event.reply.code) if event.reply else None)
        elif isinstance(event, UnsupportedCommand):
            self.log.error("unsupported", f"{event.verb}: command not implemented")
        elif isinstance(event, RecipientLimitReached):
            # flow control, not an error (protocol.py Rule 7): one note a transaction
            self.log.note(f"more than {event.limit} recipients: the rest are answered "
                          f"452 4.5.3, for the client to send in another transaction")
        elif isinstance(event, ConnectionClosed):
            # After QUIT the loop ends before this event: the client hung up without it
            in_data = self.buffered is not None or self.incoming is not None
            self.log.error("communication", "the client closed the connection "
                           + ("in DATA: the message is lost" if in_data else "without QUIT"))

    def _is_our_postmaster(self, address: str) -> bool:
        """<Postmaster> (the only address without a domain) or postmaster@ this gateway's
        own host name, in any case (module rules)."""
        local, _, domain = address.rpartition("@")
        if not local:
            return True
        return local.lower() == "postmaster" and domain_form(domain) == domain_form(self.hostname)

    def _postmasters(self) -> list[str]:
        """Who gets mail for this gateway's postmaster (module rules)."""
        return list(self.settings["admin.emails"]) or [f"postmaster@{self.hostname}"]

    async def _refuse(self, refusal, sender: str) -> None:
        """Refuse the MAIL FROM of `sender`: a rejected message."""
        self.server.counters.incr("rejected")
        self.record(Action.REJECTED, sender=sender, rule=refusal.rule, info=refusal.reason,
                    result=str(refusal.reply.code))
        self.log.error("local", f"{refusal.rule}: {refusal.reason}")
        await self.write(self.conn.send(refusal.reply))

    def _settle_refusals(self) -> None:
        """Write the events of the recipients this transaction refused, now that it has
        ended (RSET, a new hello, QUIT, the connection gone) or has its recipients (DATA).

        Messages Rejected counts messages (guide Tables 7-1, 7-2): a transaction that went
        on with other recipients rejected none, and one whose recipients were all refused
        is one rejected message however many it named. So the first refusal of a
        transaction without an accepted recipient is the message's rejection (result: the
        reply code, and the Rejected counter); every other refused recipient gets the result
        RECIPIENT_REFUSED, which the counts leave out, with the reply code in its data."""
        if self.first_refused is not None:
            (address, refusal), self.first_refused = self.first_refused, None
            self._record_refusal(address, refusal, rejects_message=not self.recipients)

    def _record_refusal(self, address: str, refusal: Refusal, *, rejects_message: bool) -> None:
        code = str(refusal.reply.code)
        if rejects_message:
            self.server.counters.incr("rejected")
            result, data = code, {}
        else:
            result, data = RECIPIENT_REFUSED, {"reply": code}
        self.record(Action.REJECTED, sender=self.sender, recipients=[address],
                    rule=refusal.rule, info=refusal.reason, result=result, data=data)

    async def _reset(self) -> None:
        self._settle_refusals()
        self.buffered, self.buffered_octets = None, 0
        if self.incoming is not None:
            incoming, self.incoming = self.incoming, None
            await trio.to_thread.run_sync(incoming.abort)
        self.sender, self.mail_params, self.recipients = None, {}, []

    async def _start_data(self) -> None:
        self._settle_refusals()
        self.queue_id = new_queue_id()
        # One copy for a recipient named twice, or as an administrator and as <Postmaster>
        # (as Postfix's cleanup removes duplicate recipients).
        self.recipients = list(dict.fromkeys(self.recipients))
        header = self._received_header()
        self.buffered, self.buffered_octets = [header], len(header)
        self.head = b""
        self.write_failed = None
        self.deadline_total = trio.current_time() + DATA_TOTAL_SECONDS
        await self.write(self.conn.send(R.R354_START_DATA))

    async def _append(self, data: bytes) -> None:
        if len(self.head) < HEAD_OCTETS:
            self.head += data[:HEAD_OCTETS - len(self.head)]
        if self.write_failed is not None:
            return                  # read to its end and dropped: answered in _finish_data
        try:
            if self.incoming is not None:
                self.incoming.write(data)
                return
            self.buffered.append(data)
            self.buffered_octets += len(data)
            if self.buffered_octets > BUFFER_OCTETS:
                # Too big to keep in memory: stream the rest into incoming/ (page cache
                # writes; the fsyncs happen in the committer's thread).
                self.incoming = await trio.to_thread.run_sync(self.server.spool.open_incoming,
                                                              self.queue_id)
                for chunk in self.buffered:
                    self.incoming.write(chunk)
                self.buffered, self.buffered_octets = None, 0
        except OSError as exc:      # a full disk: the client hears 452 at the end of data
            self.write_failed = exc
            self.buffered, self.buffered_octets = None, 0

    def _received_header(self) -> bytes:
        # RFC 3848 / RFC 5321 §4.4: SMTP after HELO, ESMTP after EHLO; STARTTLS is an ESMTP
        # extension, so a session under TLS is ESMTPS whatever its last hello.
        with_ = "ESMTPS" if self.conn.is_tls else "ESMTP" if self.is_extended else "SMTP"
        ptr = f"{_received_name(self.client_ptr)} " if self.client_ptr else ""
        helo = _received_name(self.helo) if self.helo else "unknown"
        rcpt = f"\r\n\tfor <{self.recipients[0]}>" if len(self.recipients) == 1 else ""
        # TCP-info is an address literal (RFC 5321 §4.4, §4.1.3): [IPv6:2001:db8::1]
        literal = f"IPv6:{self.client_ip}" if ":" in self.client_ip else self.client_ip
        text = (f"Received: from {helo} ({ptr}[{literal}])\r\n"
                f"\tby {self.hostname} (Mailmoat) with {with_} id {self.queue_id}{rcpt};\r\n"
                f"\t{mail_date(self.server.clock.now())}\r\n")
        return text.encode("utf-8", "replace")

    async def _refuse_for_spool(self, incoming, exc: OSError, size: int) -> None:
        """The spool could not take the message: 452 4.3.1 for a full disk (or quota),
        else 451; either way the client tries again later and nothing of it is kept."""
        reply = R.R452_INSUFFICIENT_STORAGE if is_out_of_space(exc) else R.R451_LOCAL_ERROR
        await self._refuse_message(incoming, reply, "spool", size=size, log_as="local",
                                   info=f"spool write failed: {exc.strerror or exc}")

    async def _refuse_message(self, incoming, reply: R.Reply, rule: str, *,
                              log_as: str = "local", **fields) -> None:
        """Refuse the message just received with `reply` (nothing of it is kept); the
        conversation log counts it under `log_as` (diagnostics.conversation.errors)."""
        if incoming is not None:
            await trio.to_thread.run_sync(incoming.abort)
        self.server.counters.incr("rejected")
        self.record(Action.REJECTED, sender=self.sender, recipients=self.recipients,
                    rule=rule, result=str(reply.code), **fields)
        info = fields.get("info")
        self.log.error(log_as, f"{rule}: {info}" if info else rule)
        await self.write(self.conn.send(reply))
        self.sender, self.recipients = None, []

    async def _finish_data(self, event: DataComplete) -> None:
        incoming, self.incoming = self.incoming, None
        buffered, self.buffered, self.buffered_octets = self.buffered, None, 0
        server = self.server
        if self.write_failed is not None:
            await self._refuse_for_spool(incoming, self.write_failed, event.size)
            return
        if event.line_too_long or event.size_exceeded:
            reply = R.R554_LINE_TOO_LONG_IN_DATA if event.line_too_long else R.R552_SIZE_EXCEEDED
            rule = "smtp.max_text_line" if event.line_too_long else "size.max_mb"
            await self._refuse_message(incoming, reply, rule, size=event.size,
                                       log_as="protocol" if event.line_too_long else "local")
            return
        # A message streamed into incoming/ is on the disk already; a buffered one is not.
        writing = event.size if incoming is None else 0
        refusal = check_spool_space(server.spool.disk_space().free_fraction(writing))
        if refusal:
            await self._refuse_message(incoming, refusal.reply, refusal.rule, size=event.size,
                                       info=refusal.reason)
            return
        facts = head_facts(self.head)
        hops = facts.received + 1                       # and ours
        if hops > MAX_HOPS:
            # A route pointing back at us (or two gateways at each other) would take the
            # message round for ever, a Received field longer each time.
            await self._refuse_message(
                incoming, R.R554_TOO_MANY_HOPS, "mail_loop", size=event.size,
                subject=facts.subject or None,
                info=f"{hops} Received fields, more than {MAX_HOPS}: a mail loop")
            return
        envelope = Envelope.new(
            self.queue_id, self.sender or "", self.recipients, clock=server.clock.now,
            client_ip=self.client_ip, client_helo=self.helo, connection_id=self.connection_id,
            body="8BITMIME" if self.mail_params.get("BODY") == "8BITMIME" else "7BIT",
            smtputf8=bool(self.mail_params.get("SMTPUTF8")))
        if self.rbl_listing is not None:   # non-reject rbl.action applies after DATA
            envelope.meta["rbl"] = self.rbl_listing.to_meta()
        subject = " ".join(facts.subject.split())[:MAX_SUBJECT_CHARS]
        if subject:                         # for the events (guide Table 7-6)
            envelope.meta[SUBJECT_META] = subject
        pending = PendingMessage(self.queue_id, envelope, buffered, incoming)
        try:
            await server.committer.commit(pending)
        except OSError as exc:      # the committer removed what it could not commit
            await self._refuse_for_spool(None, exc, event.size)
            return
        server.counters.incr("accepted")
        server.counters.incr("bytes_received", envelope.size)
        self.record(Action.ACCEPTED, queue_id=self.queue_id, sender=envelope.sender,
                    recipients=self.recipients, size=envelope.size, subject=envelope.subject())
        # Handed over before the reply: a client that vanishes now (or a passed deadline)
        # must not leave the message in fast/ unannounced until the core's next rescan.
        # A failed hand-over only delays it until then: it never costs the client its 250.
        try:
            server.on_accepted(self.queue_id, envelope, pending.envelope_json)  # ours no more
        except Exception as exc:
            self.log.error("local", f"hand-over failed: {type(exc).__name__}")
        self.sender, self.recipients = None, []
        # The message is queued: the client must hear so even when a shutdown cancels the
        # session now, or it sends the message again and it is delivered twice (SPEC §4
        # allows duplicates after a crash only). Bounded: a client that does not read must
        # not hold the shutdown.
        with trio.CancelScope(shield=True) as reply:
            reply.deadline = trio.current_time() + QUEUED_REPLY_SECONDS
            await self.write(self.conn.send(R.R250_QUEUED(self.queue_id)))

    async def _start_tls(self) -> None:
        context = self.server.ssl_context()
        if context is None or self.conn.is_tls:
            await self.write(self.conn.send(R.R454_TLS_NOT_AVAILABLE))
            return
        await self.write(self.conn.send(R.R220_READY_TO_START_TLS))
        tls_stream = trio.SSLStream(self.stream, context, server_side=True)
        with trio.fail_after(TLS_HANDSHAKE_SECONDS):
            await tls_stream.do_handshake()
        self.log.tls(tls_stream)
        self.stream = tls_stream
        self.conn.start_tls_done()
        self.helo = ""
