"""One inbound SMTP session over trio: the sans-IO protocol driven with reads that have
deadlines, its events answered, STARTTLS, and the session's end.

What this module owns
    `Session`: the connection's facts (client address, the address it connected to, hello,
    confirmed PTR name, RBL answers, the connect-time settings snapshot), the conversation
    log, the read loop and its deadlines,
    and the dispatch of each protocol event: MAIL FROM and RCPT TO to the current
    `InboundTransaction` (core/smtp/transaction.py), the message content to a
    `MessageReception` (core/smtp/reception.py). core/smtp/server.py decides when a
    connection is served, and whether it only hears a refusal (`run`'s `refusal`).

Rules:
- SPEC §3: every setting applies live, to sessions already open too. The SMTP-time policy
  of each command reads the settings in force when it is answered (`settings_now`), not
  the connect-time snapshot: relay.*, address_chars.*, routing.local and admin.emails at
  each RCPT TO, rbl.* and whitelists at each MAIL FROM, delivery.reject_incoming at each
  MAIL FROM, RCPT TO and DATA (`refuses_new_mail`: the connect's 421 4.3.2, then close).
  Narrowing relay.allowed is an administrator's emergency (a gateway found relaying spam,
  a compromised host), and a session lasts up to an hour: before, a removed client went
  on relaying on the connections it had open (smtp18 A1). Fixed for the session, on
  purpose, from the snapshot `settings`: what the greeting and EHLO told the client
  (smtp.hostname, the SIZE limit advertised, and applied after DATA, size.*, and whether
  STARTTLS is offered, smtp.tls.inbound: RFC 1870 §6 lets a client rely on the advertised
  SIZE for the session), the conversation log's diagnostics.conversation.* (one log per
  connection, in one mode) and the RBL zones asked at connect (core/smtp/transaction.py
  `_rbl_listing_now`).
- DNS in mid-session, one policy: a lookup is made during the session, once, when without
  its answer mail that the settings in force accept would be refused; one whose answer
  could only refuse mail waits for the client's next connection (a command stalled up to
  the DNS time limit holds the session's smtp.max_incoming slot, and refusing more is not
  the urgent direction). So the client's confirmed PTR name is asked at connect when relay.allowed
  names hosts, else at the first command that needs it (`confirmed_ptr`): a RCPT TO's
  relay check, or a MAIL FROM's RBL exemption of a listed client, both reading that one
  answer (before, a relay host named by PTR name only after the connect was refused for
  its RBL listing at MAIL FROM and recognised at RCPT TO: review18b D4). An RBL zone
  enabled after the connect is not asked.
- Every read has a deadline from trio's clock (SPEC §4) → 421 4.4.2 and close (at most
  DEADLINE_SLACK_SECONDS late, never early). The limits are the constants below:
  COMMAND_IDLE_SECONDS (5 min) for a whole command line, counted from the greeting or the
  previous reply, so bytes dripped into an unfinished line do not extend it; DATA_IDLE_SECONDS
  (10 min) between reads in DATA and DATA_TOTAL_SECONDS (30 min) for a whole DATA phase; and
  SESSION_TOTAL_SECONDS (1 hour) for the session: once it has lasted that long, its next wait
  for a command ends it (a message being received then is finished first, under the DATA
  limits). A client sending one valid command every 4.9 minutes thus holds a session slot for
  an hour, not for ever.
- Exceptions stop at the session boundary (`run`): an event, 421 if the socket still works,
  close. Exception text never goes into a reply. During a STARTTLS handshake nothing is
  written (a time limit, a stop): the client is speaking TLS by then, and a plaintext 421
  would reach it as a corrupt TLS record (smtp18 C3); the connection is just closed.
- Past the session's error limit (core/smtp/protocol.py Rule 2a) a MAIL FROM or RCPT TO
  the policy refuses is answered 421 4.7.0 instead (`too_many_errors`), as the protocol
  answers its own 21st error.
- A session ends with one event (guide Table 7-6): `disconnected` when it ended as SMTP
  means (the client's QUIT, or our 421: a refusal, a time limit, a stop), else
  `connection_closed`: the client hung up without QUIT (in DATA: its message is lost), the
  connection broke, or an internal error (result "error"). A connection_closed names the
  last command and the last reply (`_record_end`); keeping them costs one assignment each
  (`ServerConnection.last_command`, `write`), nothing is formatted before the end. One that
  cuts a message in DATA also names whose message was lost: its sender, recipients and the
  Subject as far as it was read (taken when the cut is seen, `_closed`: the message is
  aborted before the end event).
"""

from __future__ import annotations

import ipaddress
import secrets
import ssl

import trio

from core.smtp import replies as R
from core.smtp.conversation import ConversationLog
from core.smtp.events import (NEED_DATA, ConnectionClosed, DataChunk, DataComplete,
                              DataRequested, Ehlo, MailFrom, ProtocolViolation, RcptTo,
                              RecipientLimitReached, Rset, StartTlsRequested,
                              UnsupportedCommand, ViolationKind)
from core.smtp.policy import (Refusal, check_reject_incoming, max_message_octets,
                              relay_needs_ptr)
from core.smtp.protocol import ServerConnection
from core.smtp.reception import MessageReception
from core.smtp.state import State
from core.smtp.transaction import InboundTransaction
from shared.events import CONNECTION_FAILED, CONNECTION_SUCCEEDED, Action

__all__ = ["Session", "say_shutting_down", "COMMAND_IDLE_SECONDS", "DATA_IDLE_SECONDS",
           "DATA_TOTAL_SECONDS", "SESSION_TOTAL_SECONDS", "DEADLINE_SLACK_SECONDS"]

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
DEADLINE_SLACK_SECONDS = 1.0    # how late a read timeout may fire (see Session._serve)
TLS_HANDSHAKE_SECONDS = 60
READ_OCTETS = 64 * 1024
SHUTDOWN_REPLY_SECONDS = 1.0    # how long a stop waits for the 421 to a session
LAST_REPLY_CHARS = 200          # of the last reply, in a connection_closed event
# The conversation log's error class (diagnostics.conversation.errors; docs/operations.md,
# Troubleshooting, "SMTP conversations") of a violation, when it is not "protocol":
# refusals by our own limits and rules are "local", as the guide's example, a message over
# the size limit; a parameter we recognise but do not implement is an "unsupported" request.
_VIOLATION_LOG_CLASS = {
    ViolationKind.UNRELAYABLE_ADDRESS: "local",
    ViolationKind.PARAMETER_NOT_IMPLEMENTED: "unsupported",
}


async def say_shutting_down(send) -> None:
    """At a stop, `await send()` the 421 4.3.2 (RFC 5321 §3.8: the client tries again later,
    rather than seeing a broken connection): shielded, bounded, a client gone meanwhile no
    error."""
    with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_REPLY_SECONDS):
        try:
            await send()
        except Exception:
            pass


def _local_address(stream) -> str | None:
    """The address `stream`'s client connected to (an IPv4 client of a dual-stack socket as
    its IPv4 address), None without a socket (a test's memory stream)."""
    try:
        address = ipaddress.ip_address(stream.socket.getsockname()[0])
    except (AttributeError, OSError, ValueError):
        return None
    return str(getattr(address, "ipv4_mapped", None) or address)


class Session:
    """The session of the client at `client_ip` on `stream`, served by `server` (a
    core/smtp/server.py SmtpServer: settings, spool, committer, events, counters, clock)."""

    def __init__(self, server, stream, client_ip: str):
        self.server = server
        self.stream = stream
        self.client_ip = client_ip
        # the address the client connected to: its postmaster@[literal] is ours (RFC 5321
        # §4.5.1, core/smtp/transaction.py)
        self.server_ip = _local_address(stream)
        # The connect-time snapshot, for what stays fixed for the session (module rules);
        # the policy of each command reads `settings_now()`.
        self.settings = server.settings()
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
        self._ptr_asked = False
        self.rbl_answers = None        # core/smtp/rbl.py RblAnswers: the zones' answers at connect
        self.transaction = InboundTransaction(self)
        self.message: MessageReception | None = None    # in DATA: the message it brings
        self.deadline_total: float | None = None   # of the DATA phase
        self.session_deadline = trio.current_time() + SESSION_TOTAL_SECONDS
        self._last_written = b""       # the last bytes written: their last line is the last reply
        # Why the connection closed other than as SMTP means (module rules), with the event's
        # result; None: it ends with `disconnected`.
        self._closed_because: str | None = None
        self._closed_result: str | None = None
        # A message cut in DATA: whose it was, the end event's sender, recipients and subject
        self._lost_message: dict | None = None

    def record(self, action: Action, **fields) -> None:
        self.server.events.record(action, connection_id=self.connection_id,
                                  client_ip=self.client_ip, **fields)

    def protocol_violation(self, kind: ViolationKind, detail: str, reply: R.Reply | None,
                           **fields) -> None:
        """Count and record that the client broke the protocol (SPEC §4: counted and
        logged), answered `reply` (None: by nothing). The caller puts it in the
        conversation log."""
        self.server.counters.incr("protocol_violations")
        self.record(Action.PROTOCOL_VIOLATION, rule=str(kind), info=detail,
                    result=str(reply.code) if reply else None, **fields)

    def settings_now(self):
        """The settings in force now, for the policy of the command being answered (module
        rules)."""
        return self.server.settings()

    async def confirmed_ptr(self, settings) -> str | None:
        """The client's confirmed PTR name when `settings`' relay.allowed names hosts
        (asked once a session: at connect, or now when host names were added since; module
        rules), for the relay check and the RBL exemption alike."""
        if not self._ptr_asked and relay_needs_ptr(settings) \
                and self.server.resolver is not None:
            await self._look_up_ptr()
        return self.client_ptr

    async def refuses_new_mail(self, sender: str | None = None) -> bool:
        """delivery.reject_incoming, in force now (module rules): if so, answer the awaited
        MAIL FROM, RCPT TO or DATA with the connect's 421 4.3.2, which closes the session,
        record the rejection as the connect does, and return True. That is the message's
        one rejection: a recipient refusal still pending is settled as a refused recipient
        (core/smtp/transaction.py rules)."""
        refusal = check_reject_incoming(self.settings_now())
        if refusal is None:
            return False
        self.transaction.settle_refusals(rejected=True)
        self.log.error("local", f"{refusal.rule}: {refusal.reason}")
        self.server.counters.incr("rejected")
        self.record(Action.REJECTED, sender=sender, rule=refusal.rule, info=refusal.reason,
                    result=str(refusal.reply.code))
        await self.write(self.conn.send(refusal.reply))
        return True

    async def too_many_errors(self, what: str) -> None:
        """Answer the awaited MAIL FROM or RCPT TO, refused for `what` when the session has
        no errors left (core/smtp/protocol.py Rule 2a), with 421 4.7.0, which closes it."""
        conn = self.conn
        detail = (f"{what}: error {conn.errors + 1} since the last accepted message, over "
                  f"the limit of {conn.max_errors}")
        self.log.error("protocol", detail)
        self.protocol_violation(ViolationKind.TOO_MANY_ERRORS, detail, R.R421_TOO_MANY_ERRORS)
        await self.write(conn.send(R.R421_TOO_MANY_ERRORS))

    async def write(self, data: bytes) -> None:
        if data:
            self.log.server(data)
            self._last_written = data
            await self.stream.send_all(data)

    async def run(self, refusal: Refusal | None = None) -> None:
        """The session; with `refusal` (or delivery.reject_incoming) only its 421."""
        server = self.server
        server.counters.incr("connections")
        if refusal is None:
            refusal = check_reject_incoming(self.settings)
        # guide Table 7-6: the connection's result; one answered only 421 failed
        self.record(Action.CONNECTION_FROM,
                    result=CONNECTION_SUCCEEDED if refusal is None else CONNECTION_FAILED,
                    rule=refusal.rule if refusal is not None else None)
        try:
            if refusal is not None:
                await self.write(self.conn.send(refusal.reply))
                self.log.error("local", f"{refusal.rule}: {refusal.reason}")
                server.counters.incr("rejected")
                # the result is the reply code, as every refusal's (reports18 C2)
                self.record(Action.REJECTED, rule=refusal.rule, info=refusal.reason,
                            result=str(refusal.reply.code))
                return
            await self._look_up_client()
            await self.write(self.conn.send(R.R220_READY(self.hostname)))
            await self._loop()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError,
                ssl.SSLError) as exc:
            reason = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
            self.log.error("communication", f"connection lost: {reason}")
            if self.conn.last_command != "QUIT":    # gone before our 221: it said QUIT
                self._closed(f"the connection was lost: {reason}")
        except trio.Cancelled:
            if self.conn.state is not State.STARTTLS_HANDSHAKE:     # module rules
                await say_shutting_down(
                    lambda: self.write(self.conn.send(R.R421_SHUTTING_DOWN)))
            raise
        except trio.TooSlowError:
            if self.conn.state is State.STARTTLS_HANDSHAKE:
                # No plaintext into a TLS negotiation (module rules): just close.
                why = f"the TLS handshake did not finish within {TLS_HANDSHAKE_SECONDS} s"
                self.log.error("communication", why)
                self._closed(why)
                return
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
            self._closed(f"internal error: {type(exc).__name__}: {exc}", result="error")
            with trio.move_on_after(5):
                try:
                    await self.write(R.R451_LOCAL_ERROR.to_bytes())
                except Exception:
                    pass
        finally:
            if self.message is not None:
                with trio.CancelScope(shield=True):
                    await self.message.abort()
                self.message = None
            self.transaction.settle_refusals()
            self._record_end()
            with trio.CancelScope(shield=True):
                await self.log.close(self.server.diagnostics_dir, self.server.log_failures)

    def _closed(self, why: str, result: str | None = None) -> None:
        """The connection ends other than as SMTP means (module rules): say so at the end."""
        if self._closed_because is None:    # the first cause; what follows is its echo
            self._closed_because, self._closed_result = why, result
            if self.message is not None:    # whose message was lost (module rules)
                transaction = self.transaction
                self._lost_message = {
                    "sender": transaction.sender, "recipients": transaction.recipients,
                    "subject": self.message.subject_read()}

    def _record_end(self) -> None:
        """The session's one end event (module rules; guide Table 7-6)."""
        if self._closed_because is None:
            self.record(Action.DISCONNECTED)
            return
        lines = self._last_written.rstrip(b"\r\n").rsplit(b"\n", 1)
        last_reply = lines[-1].decode("utf-8", "replace")[:LAST_REPLY_CHARS] or None
        last_command = self.conn.last_command
        data = {"last_command": last_command, "last_reply": last_reply}
        if self._lost_message is not None:
            data["message_lost"] = True
        self.record(Action.CONNECTION_CLOSED, result=self._closed_result,
                    info=f"{self._closed_because}; last command: {last_command or 'none'}; "
                         f"last reply: {last_reply or 'none'}", data=data,
                    **(self._lost_message or {}))

    async def _look_up_client(self) -> None:
        """The client's confirmed PTR name (for host names in relay.allowed) and RBL answers,
        asked side by side: each is time-limited (the PTR name by two lookups' time, its
        forward lookups side by side: core/delivery/mx.py rule 7), so DNS delays the greeting
        by the longer of the two, not their sum (and a zone that keeps failing is skipped:
        core/smtp/rbl.py rule 5).
        What the answers mean is decided at each MAIL FROM (core/smtp/transaction.py)."""
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
        self._ptr_asked = True
        self.client_ptr = await self.server.resolver.confirmed_ptr(self.client_ip)

    async def _check_rbl(self) -> None:
        self.rbl_answers = await self.server.rbl.answers(self.client_ip, self.settings)

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
        if isinstance(event, DataChunk):
            await self.message.append(event.data)
        elif isinstance(event, Ehlo):
            self.helo, self.is_extended = event.name, event.is_extended
            await self._reset()
        elif isinstance(event, MailFrom):
            await self._reset()
            await self.transaction.mail_from(event)
        elif isinstance(event, RcptTo):
            await self.transaction.rcpt_to(event)
        elif isinstance(event, DataRequested):
            if await self.refuses_new_mail(self.transaction.sender):
                return
            self.transaction.end_recipients()
            self.message = MessageReception(self)
            self.deadline_total = trio.current_time() + DATA_TOTAL_SECONDS
            await self.write(self.conn.send(R.R354_START_DATA))
        elif isinstance(event, DataComplete):
            message, self.message = self.message, None
            await message.finish(event)
            self.transaction = InboundTransaction(self)     # it ended with that reply
        elif isinstance(event, Rset):
            await self._reset()
        elif isinstance(event, StartTlsRequested):
            await self._start_tls()
        elif isinstance(event, ProtocolViolation):
            self.log.error(_VIOLATION_LOG_CLASS.get(event.kind, "protocol"), event.detail)
            self.protocol_violation(event.kind, event.detail, event.reply)
        elif isinstance(event, UnsupportedCommand):
            self.log.error("unsupported", f"{event.verb}: command not implemented")
        elif isinstance(event, RecipientLimitReached):
            # flow control, not an error (protocol.py Rule 7): one note a transaction
            self.log.note(f"more than {event.limit} recipients: the rest are answered "
                          f"452 4.5.3, for the client to send in another transaction")
        elif isinstance(event, ConnectionClosed):
            # After QUIT the loop ends before this event: the client hung up without it
            why = "the client closed the connection " + (
                "in DATA: the message is lost" if self.message is not None else "without QUIT")
            self.log.error("communication", why)
            self._closed(why)

    async def _reset(self) -> None:
        """End the transaction (a hello, MAIL FROM, RSET): a new one begins."""
        self.transaction.settle_refusals()
        if self.message is not None:
            message, self.message = self.message, None
            await message.abort()
        self.transaction = InboundTransaction(self)

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
