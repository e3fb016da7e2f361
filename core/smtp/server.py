"""The trio SMTP listener: connections accepted where the settings say and admitted to
sessions within the session limits.

What this module owns
    `SmtpServer`, which the core (core/app.py) and each listener process
    (core/smtp/listener_main.py) run, and what its sessions share: the session slots, each
    client's session count, the RBL checker, the spool's free space. The rest of the
    listener is in modules of one job each: listen_sockets.py (binding, rebinding,
    accepting), session.py (one session: deadlines, STARTTLS, the end of a session),
    transaction.py (MAIL FROM and RCPT TO, the refusals' events), reception.py (DATA and
    its reply), group_commit.py (messages made durable in batches).

Rules:
- At most `smtp.max_incoming` sessions are served at once; further connections are accepted
  by the kernel and wait for a slot (SPEC §4: queued, not refused). One whose client hangs
  up while it waits ends there (`_slot_or_hang_up`): it is neither counted against the
  client any longer nor served later. A client that gave up waiting and came back on a new
  connection was otherwise counted twice, and after a few such tries refused 421 by the
  per-client limit below with not one session served.
- One client (one IP address) has at most half of smtp.max_incoming sessions (`client_limit`,
  served and waiting together, counted in every listener process: core/smtp/
  client_sessions.py; a listener process that counts alone, for a full disk, gives a client
  only its part of that, shared out as the sessions are, `part_of`); its next connection
  is answered at once `421 4.7.0 Too many connections from your host` and closed, with a `rejected` event of rule smtp.max_incoming
  and a `connection_from` whose result is CONNECTION_FAILED, as delivery.reject_incoming's
  421 is recorded. Without it one host holding every slot with idle connections made every
  other sender wait up to the command limit each time (Postfix:
  smtpd_client_connection_count_limit, half its process limit). Exempt, and
  served or queued as SPEC §4 says of every connection: the host itself (HOST_ITSELF: a
  local MTA in front, monitoring, an administrator's test) and clients of relay.allowed by
  address, the organisation's own servers, which open many (a host-name entry would need a
  DNS lookup before the limit could apply, for every connection past it, so it does not
  count here).
- Exceptions that escape a session (setting it up, closing it) end that session only,
  with an event, never the listener; inside it core/smtp/session.py answers the client.
- `stop_accepting` (a change of the listener processes, core/smtp/listeners.py) closes the
  listening sockets, the connections already queued on them taken in first
  (listen_sockets.accept_queued_and_close), and lets the open sessions finish: `serve`
  returns when the last has ended; cancelled before that, it stops as at shutdown.
- The listener follows `smtp.port`/`smtp.listen`: a change rebinds within the settings poll.
  The new sockets bind before the old ones close; a change that cannot be bound (a port
  another program holds, no address of the list the host has) leaves the listener where it
  was, with a `service_start_failed` event, until the settings change again
  (core/smtp/listen_sockets.py says how). At start it raises ListenFailed instead (SPEC §3:
  "a port already in use … the old value kept"). The event's rule is the setting to
  correct (smtp.port or smtp.listen).
- An address of smtp.listen this host lacks, or a broadcast address of its networks, while
  others can be bound, is left out, at start as at a change: the listener serves the
  others, a `service_start_failed` event of rule smtp.listen and a line on stderr name the
  address (and the Status page, from `not_listening`), and it is tried again every
  MISSING_RETRY_SECONDS (an interface that comes up late, an IPv6 address still in
  duplicate address detection), on trio's clock. Once it is bound, a `service_started`
  event of rule smtp.listen and a line on stderr say so: the failure is otherwise the
  last word the events have on it. One that comes back but still cannot be bound (its
  port taken by another program meanwhile) is reported as that, once, with the rule to
  correct (smtp.port), and tried again all the same; a report is written when an
  address's reason changes, never at every retry.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import ssl
import sys
from typing import Callable, Mapping

import trio

from core.delivery.routing import host_port
from core.smtp import replies as R
from core.smtp.client_sessions import (AloneClientSessions, LocalClientSessions,
                                       SharedClientSessions)
from core.smtp.conversation import WriteFailures
from core.smtp.group_commit import GroupCommitter
from core.smtp.listen_sockets import (NO_SUCH_ADDRESS, Bound, ListenFailed, accept_connections,
                                      accept_queued_and_close, bind_missing,
                                      close_listen_sockets, open_listen_sockets, rebind)
from core.smtp.policy import Refusal, listed_relay_client
from core.smtp.rbl import SUSPEND_SECONDS, RblChecker
from core.smtp.session import Session, say_shutting_down
from core.smtp.streams import TcpStream
from shared.disk import DiskSpace
from shared.events import Action
from shared.spool import Envelope

__all__ = ["SmtpServer", "client_limit", "part_of", "HOST_ITSELF", "DISK_CHECK_SECONDS",
           "MISSING_RETRY_SECONDS"]

DISK_CHECK_SECONDS = 1.0
MISSING_RETRY_SECONDS = 10.0    # an address of smtp.listen this host lacks: tried again
# Connections from these addresses come from this host itself (module rules).
HOST_ITSELF = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_STOP_ACCEPTING = object()      # _next_binding: stop_accepting was asked


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


def part_of(total: int, processes: int, index: int) -> int:
    """Process `index`'s part of `total` shared out over `processes` listener processes: the
    parts add up to it (15 over 2 processes: 8 and 7), at least 1 each."""
    base, extra = divmod(total, processes)
    return max(1, base + (index < extra))


class SmtpServer:
    def __init__(self, *, settings: Callable[[], Mapping], spool, committer: GroupCommitter,
                 events, counters, clock,
                 on_accepted: Callable[[str, Envelope, bytes], None],
                 ssl_context: Callable[[], ssl.SSLContext | None], diagnostics_dir,
                 resolver=None, hostname: Callable[[], str], reuse_port: bool = False,
                 share: int = 1, share_index: int = 0,
                 auto_whitelisted: Callable[[str, Mapping], bool] | None = None,
                 client_sessions: LocalClientSessions | SharedClientSessions
                 | AloneClientSessions | None = None,
                 on_space_refused: Callable[[], None] = lambda: None):
        """`on_space_refused()`: mail was refused for the spool's space
        (`refused_for_space`)."""
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
        # SO_REUSEPORT: listener processes share the port, and the listeners of a change of
        # their count bind beside the old ones (core/smtp/listeners.py)
        self.reuse_port = reuse_port
        self.share = share            # ... and smtp.max_incoming between them;
        self.share_index = share_index    # this one is number share_index (from 0) of them
        self.reports_listen_errors = share_index == 0   # not N times the same event
        self.limiter = trio.CapacityLimiter(self._sessions_allowed(settings()))
        # each client's sessions, waiting too: in all listener processes when they share
        self.client_sessions = client_sessions or LocalClientSessions()
        self.active = 0
        self.max_active_seen = 0
        self.bound: list[tuple[str, int]] = []
        self.missing: list[ListenFailed] = []   # addresses left out, tried again (rules)
        self._rebind = trio.Event()
        self._stopping = False          # stop_accepting asked (module rules)
        self._disk_space = (DiskSpace(1, 1), -DISK_CHECK_SECONDS)
        self.on_space_refused = on_space_refused
        self._space_refused_at = -math.inf

    def disk_space(self) -> DiskSpace:
        """The spool's file system, statvfs at most once a second: it is asked at every
        MAIL."""
        value, checked = self._disk_space
        now = trio.current_time()
        if now - checked >= DISK_CHECK_SECONDS:
            value = self.spool.disk_space()
            self._disk_space = (value, now)
        return value

    def refused_for_space(self) -> None:
        """A 452 4.3.1 went out for the spool's space (core/smtp/policy.py
        check_spool_space, or a spool write that met a full disk): `on_space_refused()`, at
        most once every DISK_CHECK_SECONDS, so that the core's resource monitor looks at the
        disk at once (core/notify.py ResourceMonitor.check_soon)."""
        now = trio.current_time()
        if now - self._space_refused_at >= DISK_CHECK_SECONDS:
            self._space_refused_at = now
            self.on_space_refused()

    # --- listeners ---------------------------------------------------------------------
    def _sessions_allowed(self, settings: Mapping) -> int:
        """This process's part of smtp.max_incoming (`part_of`)."""
        return part_of(settings["smtp.max_incoming"], self.share, self.share_index)

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
        still sends its 250 (within QUEUED_REPLY_SECONDS, core/smtp/reception.py); every
        other session gets 421 4.3.2 and is closed, and its client sends again what got no
        250.

        Raises ListenFailed before it is ready when it cannot listen where the settings say.
        A later change that cannot be bound is reported (service_start_failed) and the
        listener stays where it was until the settings change again."""
        # The STARTTLS context is decided now, not at the first session: a pair that does
        # not load copied into tls/ before any client came is then a change this listener
        # outlives with the pair it loaded (core/smtp/tls.py), not a start without one.
        self.ssl_context()
        self._rebind, self._stopping = trio.Event(), False   # a serve after a drain
        s = self.settings()
        bound = open_listen_sockets(s["smtp.listen"], s["smtp.port"],
                                    reuse_port=self.reuse_port)
        await self.serve_on(bound, task_status=task_status)

    async def serve_on(self, bound: Bound, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """`serve`, on the sockets `bound` already holds; its missing addresses are tried
        again (module rules). Tests begin here with an address that has come back: none
        can come into existence on a test host without a network namespace."""
        try:
            async with trio.open_nursery() as sessions:
                self.bound, self.missing = bound.addresses, bound.missing
                self._report_missing(bound)
                task_status.started(self.bound)
                while True:
                    async with trio.open_nursery() as accepting:
                        for listener in bound.sockets:
                            accepting.start_soon(accept_connections, listener, sessions,
                                                 self._session)
                        wanted = await self._next_binding(retry=bool(bound.missing))
                        accepting.cancel_scope.cancel()
                    if wanted is _STOP_ACCEPTING:
                        accept_queued_and_close(bound.sockets, sessions, self._session)
                        self.bound = []
                        break       # the sessions nursery waits for the open sessions
                    was = bound
                    if wanted is None:
                        bound = bind_missing(bound, self.bound[0][1],
                                             reuse_port=self.reuse_port)
                    else:
                        bound = rebind(bound, *wanted, reuse_port=self.reuse_port,
                                       on_failed=self._listen_failed)
                    self.bound, self.missing = bound.addresses, bound.missing
                    if wanted is None:
                        self._report_retried(was, bound)
                    elif bound is not was:
                        self._report_missing(bound)
        finally:
            self.missing = []
            close_listen_sockets(bound.sockets)

    async def stop_accepting(self) -> None:
        """Close the listening sockets and let the open sessions finish (module rules)."""
        self._stopping = True
        self._rebind.set()
        await trio.lowlevel.checkpoint()

    def not_listening(self) -> list[dict]:
        """The status snapshot's `smtp_not_listening` (shared.status): each address of
        smtp.listen left out now, why, and how often it is tried again."""
        return [{"address": exc.address, "problem": exc.problem,
                 "retry_seconds": MISSING_RETRY_SECONDS} for exc in self.missing]

    async def _next_binding(self, *, retry: bool):
        """Wait for a change of smtp.port/smtp.listen; returns the (hosts, port) wanted,
        or _STOP_ACCEPTING once stop_accepting was asked. With `retry` (addresses
        missing), None after MISSING_RETRY_SECONDS without either."""
        with trio.move_on_after(MISSING_RETRY_SECONDS if retry else float("inf")):
            await self._rebind.wait()
            self._rebind = trio.Event()
            if self._stopping:
                return _STOP_ACCEPTING
            s = self.settings()
            return list(s["smtp.listen"]), s["smtp.port"]
        return None

    def _where(self) -> str:
        return ", ".join(host_port(h, p) for h, p in self.bound)

    def _listen_failed(self, exc: ListenFailed) -> None:
        self._say(exc.rule, f"{exc}; still listening on {self._where()} until smtp.port or "
                            f"smtp.listen changes")

    def _report_missing(self, bound: Bound) -> None:
        for exc in bound.missing:
            self._report_left_out(exc)

    def _report_left_out(self, exc: ListenFailed) -> None:
        retry = (f"listening on {self._where()} without it, and trying it again every "
                 f"{MISSING_RETRY_SECONDS:.0f} s")
        if exc.is_missing:
            self._say(exc.rule, f"{exc}: {NO_SUCH_ADDRESS}; {retry}")
        else:
            self._say(exc.rule, f"{exc}: {retry}")

    def _report_retried(self, was: Bound, now: Bound) -> None:
        """What a retry of the missing addresses changed (module rules): those bound now,
        and those that still cannot be, for a reason other than the one last reported."""
        reported = {exc.host: exc.errno for exc in was.missing}
        still_missing = {exc.host for exc in now.missing}
        found = [host for host in reported if host not in still_missing]
        if found:
            self._say("smtp.listen", f"now listening for SMTP on {self._where()} ("
                                     f"{', '.join(found)} can be bound again)",
                      action=Action.SERVICE_STARTED)
        for exc in now.missing:
            if exc.errno != reported[exc.host]:
                self._report_left_out(exc)

    def _say(self, rule: str, message: str, *,
             action: Action = Action.SERVICE_START_FAILED) -> None:
        """A listening failure (or, `action` SERVICE_STARTED, the end of one): an event of
        `rule` and a line on stderr (module rules)."""
        if self.reports_listen_errors:
            self.events.record(action, rule=rule, info=message)
            print(f"mailmoat core: {message}", file=sys.stderr, flush=True)

    # --- admitting a connection to a session ------------------------------------------
    async def _session(self, stream: TcpStream) -> None:
        try:
            client_ip = stream.socket.getpeername()[0]
        except OSError:             # gone before its session began (ENOTCONN)
            await stream.aclose()
            return
        sessions = self.client_sessions.opened(client_ip)
        try:
            settings = self.settings()
            whole = client_limit(settings["smtp.max_incoming"])
            limit = whole if self.client_sessions.is_together \
                else part_of(whole, self.share, self.share_index)
            if sessions > limit and not _from_host_itself(client_ip) \
                    and not listed_relay_client(client_ip, None, settings):
                await self._refuse_client(stream, client_ip, sessions, limit, whole)
            else:
                await self._serve_client(stream, client_ip)
        finally:
            self.client_sessions.closed(client_ip)

    async def _slot_or_hang_up(self, stream: TcpStream) -> bool:
        """A session slot for `stream` (True), or False when its client hung up while it
        waited for one (module rules). Bytes an early talker sends meanwhile are only
        peeked at, and stay for its session."""
        try:
            self.limiter.acquire_nowait()
            return True
        except trio.WouldBlock:
            pass
        acquired = False

        async def watch_for_hang_up(scope: trio.CancelScope) -> None:
            while True:
                await trio.lowlevel.wait_readable(stream.socket)
                try:
                    data = stream.socket.recv(1, socket.MSG_PEEK)
                except BlockingIOError:
                    continue
                except OSError:             # reset: gone as well
                    data = b""
                if not data:
                    scope.cancel()
                return

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_for_hang_up, nursery.cancel_scope)
                await self.limiter.acquire()
                acquired = True
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # a stop cancels both tasks: raised as the one Cancelled acquire() alone raises,
            # which _serve_client answers with the 421 every waiting client is told
            cancelled, rest = group.split(trio.Cancelled)
            if rest is None:
                raise cancelled.exceptions[0] from None
            raise
        return acquired

    async def _refuse_client(self, stream: TcpStream, client_ip: str, sessions: int,
                             limit: int, whole: int) -> None:
        """421 at once, without a session slot (module rules)."""
        share = "half of smtp.max_incoming" if limit == whole else (
            f"this listener process's part of half of smtp.max_incoming ({whole}), while it "
            f"counts its clients' sessions alone")
        refusal = Refusal(R.R421_TOO_MANY_CONNECTIONS, "smtp.max_incoming",
                          f"{sessions} connections at once from this client; a client may "
                          f"have {limit}: {share} (clients of relay.allowed have no such "
                          f"limit)")
        try:
            await Session(self, stream, client_ip).run(refusal)
        except Exception as exc:
            self.events.record(Action.CONNECTION_CLOSED, client_ip=client_ip, result="error",
                               info=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_client(self, stream: TcpStream, client_ip: str) -> None:
        try:
            if not await self._slot_or_hang_up(stream):
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                return
        except trio.Cancelled:
            # a stop while it waited for a session slot: told as the served ones are
            await say_shutting_down(lambda: stream.send_all(R.R421_SHUTTING_DOWN.to_bytes()))
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        try:
            self.active += 1
            self.max_active_seen = max(self.max_active_seen, self.active)
            try:
                session = Session(self, stream, client_ip)
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

