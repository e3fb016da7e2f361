"""Sans-IO ESMTP server: bytes in, events out; replies in, bytes out.

What this module owns
    `ServerConnection`, one SMTP session as a state machine (RFC 5321, with
    PIPELINING RFC 2920, SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531,
    ENHANCEDSTATUSCODES RFC 2034, STARTTLS RFC 3207). The transitions are the
    tables in `core.smtp.state`; framing is `core.smtp.readers`; command
    syntax is `core.smtp.commands`; reply texts are `core.smtp.replies`.

What it must never do
    Touch a socket, trio, a clock, DNS or a logger; decide policy; raise on
    anything the peer sends.

How the app drives it (core/smtp/session.py)
    conn = ServerConnection("mx.example.org", max_message_octets=..., tls_available=True)
    write(conn.send(R220_READY("mx.example.org")))     # or R421_SERVICE_NOT_AVAILABLE
    while conn.state is not State.CLOSED:
        event = conn.next_event()
        write(conn.data_to_send())                   # replies the protocol made itself
        if event is NEED_DATA: conn.receive_data(await read()) ; continue
        if conn.awaiting_reply: write(conn.send(decide(event)))
    Timeouts are the app's: write(conn.send(R421_TIMEOUT)) is legal any time.

Rules
    1. Replies go out in command order, even when the client pipelines
       (RFC 2920 §3.2). The protocol does not parse the next command while an
       app-decided event (MailFrom, RcptTo, DataRequested, DataComplete,
       StartTlsRequested) awaits its reply; next_event() then raises
       LocalProtocolError. send() returns the protocol's own queued replies
       first, then the app's, so writing what send() and data_to_send()
       return, in call order, is always correct.
    2. Peer mistakes never raise: they yield a ProtocolViolation event whose
       reply is already queued, and the session goes on where RFC 5321 allows.
       After `max_unknown_commands` unknown commands the next one gets
       421 4.7.0 and the session is CLOSED.
    2a. A hard limit on errors of every kind, as Postfix's smtpd_hard_error_limit: after
       `max_errors` errors since the session's last accepted message, the command that
       would be the next error gets 421 4.7.0 "Too many errors" instead of its reply and
       the session is CLOSED (the same reply and count as the unknown-command budget, which
       it includes). An error is a ProtocolViolation with a reply (syntax, bad sequence,
       unknown command or parameter, overlong line, ...) and the app's 4xx/5xx to MAIL
       FROM or RCPT TO (relay denied, address characters, an RBL, ...): `send()` counts
       those, and the app asks `errors_left` before refusing, to send
       R421_TOO_MANY_ERRORS when it is 0. Not errors: the replies of Rules 7 and 8 (flow
       control and the consequences of a refusal already counted), 502 to a command we do
       not implement, and the replies after DATA (each a whole message, answered by
       the policy). An accepted message starts the count again ("without delivering
       mail", Postfix's words): a relay client sending mail for an hour is not cut for a
       bad recipient now and then. Without this limit one connection could send
       thousands of bad commands a second, each written as an event (smtp18 B1).
    3. Our mistakes raise LocalProtocolError and change nothing.
    4. Limits never desynchronise the stream: an overlong command line is
       skipped to its LF and answered 500 5.5.2; an overlong text line or an
       oversized message inside DATA is read to CRLF.CRLF and reported in
       DataComplete (the app replies 554 5.6.0 / 552 5.3.4).
    5. After STARTTLS, bytes that arrived before the handshake are plaintext
       injected ahead of TLS and are discarded (CVE-2011-0411); the session is
       reset to GREETED (RFC 3207 §4.2: forget EHLO and the transaction).
    6. A command recognised but not implemented gets 502 and an UnsupportedCommand
       event. The lines after an AUTH, up to the next command, are a client going on
       with its AUTH exchange: a ProtocolViolation for one never shows it.
    7. An RCPT past `max_recipients` (a valid one: syntax is checked first) gets
       452 4.5.3 and is no violation: RFC 5321 §4.5.3.1.10 expects a client to send
       the refused recipients in another transaction. The first of a transaction
       yields RecipientLimitReached, the rest only their 452, so a client naming
       thousands costs one event, not one each.
    8. A command that follows a refusal is no violation, only answered. RCPT and DATA
       after a refused MAIL get 503; DATA after RCPTs that were all refused gets
       554 5.5.1 "No valid recipients", the reply RFC 5321 §3.3 names for it. RFC 2920
       §3.1 has a pipelining client send them before it sees the refusal (Postfix, Exim
       and swaks --pipeline do), and one that does not pipeline is told by them, which is
       all §3.3 asks of the server: either way the client broke no rule. A DATA with no
       MAIL, or with no RCPT tried, is still a bad_sequence violation.
"""

from __future__ import annotations

from collections import deque

from core.smtp import commands as C
from core.smtp import replies as R
from core.smtp.commands import PeerError
from core.smtp.events import (NEED_DATA, ConnectionClosed, DataChunk, DataComplete,
                              DataRequested, Ehlo, Event, LocalProtocolError, MailFrom,
                              ProtocolViolation, RcptTo, RecipientLimitReached,
                              StartTlsRequested, UnsupportedCommand, ViolationKind)
from core.smtp.readers import LINE_TOO_LONG, CommandReader, DataReader
from core.smtp.replies import Reply
from core.smtp.state import COMMAND_TABLE, GREETING, State, next_state_for_reply

__all__ = ["ServerConnection"]

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_OCTETS = 512
# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
MAX_TEXT_LINE_OCTETS = 1000
# SPEC §4: at most 1000 recipients per message (RFC 5321 §4.5.3.1.8 asks >= 100).
MAX_RECIPIENTS = 1000
# Budget of unrecognised commands before hanging up (aiosmtpd's idea; SPEC §4).
MAX_UNKNOWN_COMMANDS = 20
# Errors of any kind since the last accepted message before hanging up (Rule 2a):
# Postfix's smtpd_hard_error_limit, whose default this is.
MAX_ERRORS = 20


class ServerConnection:
    """One server-side SMTP session. See the module header for the rules.

    Limits default to their sources (RFC 5321 §4.5.3.1, SPEC §4);
    `max_message_octets=None` means no size limit. It bounds what DATA reads
    (Rule 4); a SIZE= over it at MAIL is the app's to refuse, as its size policy
    (core/smtp/policy.py check_declared_size). `size_advertised=None`
    advertises a bare "SIZE" (RFC 1870 §4). Raises ValueError if `hostname`
    cannot appear in a reply (a configuration bug)."""

    def __init__(
        self,
        hostname: str,
        *,
        max_command_octets: int = MAX_COMMAND_OCTETS,
        max_text_line_octets: int = MAX_TEXT_LINE_OCTETS,
        max_recipients: int = MAX_RECIPIENTS,
        max_unknown_commands: int = MAX_UNKNOWN_COMMANDS,
        max_errors: int = MAX_ERRORS,
        max_message_octets: int | None = None,
        tls_available: bool = False,
        size_advertised: int | None = None,
    ) -> None:
        self.hostname = hostname
        self.max_recipients = max_recipients
        self.max_unknown_commands = max_unknown_commands
        self.max_errors = max_errors
        self.max_text_line_octets = max_text_line_octets
        self.max_message_octets = max_message_octets
        self.tls_available = tls_available
        self.size_advertised = size_advertised
        self._state = State.CONNECTED
        self._awaiting: object | None = GREETING   # event type whose reply the app owes
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._events: deque[Event] = deque()
        self._commands = CommandReader(max_command_octets)
        self._data: DataReader | None = None
        self._peer_closed = False
        self._is_tls = False
        self._unknown_commands = 0
        self._errors = 0           # since the last accepted message (Rule 2a)
        self._is_extended = False  # the last hello was EHLO: MAIL may carry parameters
        self._after_auth = False   # the last command was AUTH: the lines after it are secrets
        self._last_command: str | None = None    # see last_command
        # Transaction facts (RFC 5321 §4.1.4 "buffers"), cleared by RSET/EHLO/end.
        self._recipients = 0
        self._rcpt_attempts = 0
        self._recipient_limit_told = False   # RecipientLimitReached went out (Rule 7)
        self._smtputf8 = False
        # the last MAIL was refused: a pipelining client's RCPT and DATA behind it get 503
        # as RFC 2920 §3.1 expects, and are not its violations (Rule 8)
        self._mail_refused = False
        self._pending: Event | None = None   # MailFrom/RcptTo awaiting its reply
        # A host name that cannot go into a reply is a configuration bug: fail now.
        R.R220_READY(hostname), R.R250_EHLO(hostname, self.extensions())

    # --- facts -----------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def awaiting_reply(self) -> object | None:
        """The event type (or "Greeting") whose reply the app owes, else None."""
        return self._awaiting

    @property
    def last_command(self) -> str | None:
        """The verb of the last command line read ("MAIL", "DATA", …; "(unknown command)",
        "(overlong line)"), None before the first: what a connection_closed event names
        (guide Table 7-6). The verb alone, never its argument (an AUTH secret)."""
        return self._last_command

    @property
    def is_tls(self) -> bool:
        return self._is_tls

    @property
    def errors(self) -> int:
        """Errors since the session's last accepted message (Rule 2a)."""
        return self._errors

    @property
    def errors_left(self) -> int:
        """How many more errors the session may make (Rule 2a): at 0, the app answers a
        MAIL FROM or RCPT TO it refuses with R421_TOO_MANY_ERRORS instead."""
        return max(0, self.max_errors - self._errors)

    @property
    def recipient_count(self) -> int:
        """Recipients accepted in the current transaction."""
        return self._recipients

    def extensions(self) -> tuple[str, ...]:
        """The EHLO keywords offered now (STARTTLS only before TLS)."""
        size = "SIZE" if self.size_advertised is None else f"SIZE {self.size_advertised}"
        offered = ["PIPELINING", size, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"]
        if self.tls_available and not self._is_tls:
            offered.append("STARTTLS")
        offered.append("HELP")
        return tuple(offered)

    # --- bytes in ----------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; b"" means the peer closed its side.
        Raises LocalProtocolError for data after b"" (the app read past EOF)."""
        if self._peer_closed:
            if data:
                raise LocalProtocolError("receive_data() after the peer closed")
            return
        if not data:
            self._peer_closed = True
        elif self._state is not State.CLOSED:
            self._buffer += data

    # --- events out --------------------------------------------------------------
    def next_event(self) -> Event | object:
        """Return the next event, or NEED_DATA when more bytes are needed.

        Raises LocalProtocolError while a reply is owed (send() it first) or
        during the STARTTLS handshake (call start_tls_done() first). Never
        raises because of what the peer sent. In CLOSED it returns
        ConnectionClosed."""
        if self._events:
            event = self._events.popleft()
            if isinstance(event, DataComplete):
                self._awaiting = DataComplete
            return event
        if self._state is State.CLOSED:
            return ConnectionClosed()
        if self._awaiting is not None:
            raise LocalProtocolError(f"reply to {self._awaiting_name()} first (send())")
        if self._state is State.STARTTLS_HANDSHAKE:
            raise LocalProtocolError("finish the TLS handshake and call start_tls_done() first")
        if self._state is State.DATA:
            return self._next_data_event()
        while self._state in (State.GREETED, State.READY, State.MAIL, State.RCPT):
            line = self._commands.next_line(self._buffer)
            if line is None:
                break
            event = self._handle_line(line)
            if event is not None:
                return event
        if self._peer_closed:
            return self._close()
        return NEED_DATA

    def _next_data_event(self) -> Event | object:
        assert self._data is not None
        result = self._data.read(self._buffer)
        if result.is_complete:
            data = self._data
            self._data = None
            complete = DataComplete(size=data.size, line_too_long=data.line_too_long,
                                    size_exceeded=data.size_exceeded,
                                    bare_line_endings=data.bare_line_endings)
            if result.chunk:
                self._events.append(complete)  # awaited once next_event() returns it
                return DataChunk(result.chunk)
            self._awaiting = DataComplete
            return complete
        if result.chunk:
            return DataChunk(result.chunk)
        if self._peer_closed:
            return self._close()
        return NEED_DATA

    def _close(self) -> ConnectionClosed:
        self._state = State.CLOSED
        self._awaiting = None
        self._data = None
        self._buffer.clear()
        return ConnectionClosed()

    # --- replies out --------------------------------------------------------------
    def send(self, reply: Reply) -> bytes:
        """Send the app's reply to the awaited event (or a 421 at any time).

        Returns every byte owed to the peer, in order: replies the protocol
        queued itself, then `reply`. Raises LocalProtocolError if nothing
        awaits a reply, or the code does not fit the awaited event (see
        state.REPLY_TABLE); the state is then unchanged."""
        if self._state is State.CLOSED:
            raise LocalProtocolError("send() on a closed session")
        awaited = self._awaiting
        if awaited is None and reply.code != 421:
            raise LocalProtocolError(f"no event awaits a reply (state {self._state.value})")
        target = next_state_for_reply(self._state, awaited, reply)
        if target is None:
            raise LocalProtocolError(
                f"reply {reply.code} does not answer {self._awaiting_name()} in {self._state.value}"
            )
        self._apply_reply(awaited, reply, target)
        self._outgoing += reply.to_bytes()
        return self.data_to_send()

    def _apply_reply(self, awaited: object, reply: Reply, target: State) -> None:
        accepted = reply.code_class == 2 or reply.code == 354
        if awaited in (MailFrom, RcptTo) and not accepted and reply.code != 421 \
                and reply != R.R452_TOO_MANY_RECIPIENTS:   # flow control (Rule 7)
            self._errors += 1               # the app's refusal (Rule 2a)
        elif awaited is DataComplete and accepted:
            self._errors = 0                # a message accepted (Rule 2a)
        if awaited is MailFrom and accepted and isinstance(self._pending, MailFrom):
            self._smtputf8 = bool(self._pending.params.get("SMTPUTF8"))
        elif awaited is RcptTo and accepted:
            self._recipients += 1
        elif awaited is DataRequested and reply.code == 354:
            self._data = DataReader(self.max_text_line_octets, self.max_message_octets)
        if target is State.READY and awaited in (DataComplete, MailFrom):
            self._reset_transaction()
        if awaited is MailFrom:
            self._mail_refused = not accepted
        self._pending = None
        self._awaiting = None
        if target is State.CLOSED:
            self._data = None
            self._buffer.clear()
        self._state = target

    def data_to_send(self) -> bytes:
        """Replies the protocol produced itself since the last call (may be b"")."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def start_tls_done(self) -> None:
        """Call after the TLS handshake that followed R220_READY_TO_START_TLS.
        Resets the session to GREETED (RFC 3207 §4.2) and discards bytes that
        arrived in plaintext after STARTTLS (Rule 5). Raises
        LocalProtocolError outside STARTTLS_HANDSHAKE."""
        if self._state is not State.STARTTLS_HANDSHAKE:
            raise LocalProtocolError("start_tls_done() without an accepted STARTTLS")
        if self._buffer:
            self._events.append(ProtocolViolation(
                ViolationKind.STARTTLS_PLAINTEXT_INJECTION, None,
                f"{len(self._buffer)} octets sent after STARTTLS before the handshake, discarded"))
            self._buffer.clear()
        self._is_tls = True
        self._is_extended = False
        self._reset_transaction()
        self._state = State.GREETED

    # --- commands ------------------------------------------------------------------
    def _handle_line(self, line: bytes | object) -> Event | None:
        if line is LINE_TOO_LONG:
            self._last_command = "(overlong line)"
            return self._violation(ViolationKind.COMMAND_LINE_TOO_LONG, R.R500_LINE_TOO_LONG,
                                   "command line over the limit (RFC 5321 §4.5.3.1.4)")
        command = C.split_command(line)  # type: ignore[arg-type]
        verb = command.verb
        if verb in C.KNOWN_VERBS:
            key = verb
        elif verb in C.UNSUPPORTED_VERBS:
            key = "(unsupported)"
        else:
            self._last_command = "(unknown command)"
            return self._unknown_command(line)  # type: ignore[arg-type]
        self._last_command = verb
        self._after_auth = verb == "AUTH"
        move = COMMAND_TABLE[(self._state, key)]
        try:
            if b"\x00" in command.argument:
                raise PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, f"NUL byte in {verb} line")
            if move.kind == "BAD_SEQ":
                return self._bad_sequence(verb)
            if move.kind == "APP":
                return self._app_command(verb, command.argument)
            return self._self_command(verb, command.argument, move)
        except PeerError as error:
            if verb == "MAIL":
                self._mail_refused = True
            return self._violation(error.kind, error.reply, error.detail)

    def _unknown_command(self, line: bytes) -> Event:
        self._unknown_commands += 1
        shown = repr(line[:40].decode("ascii", errors="replace"))
        if self._after_auth:
            # a client that goes on with its AUTH exchange after our 502 sends its
            # credentials (AUTH LOGIN: user name, then password), which no event may show
            shown = "(a line after AUTH, not shown)"
        if self._unknown_commands > self.max_unknown_commands:
            self._errors += 1
            self._state = State.CLOSED
            return self._violation(ViolationKind.TOO_MANY_UNKNOWN_COMMANDS,
                                   R.R421_TOO_MANY_ERRORS, f"unknown command {shown}")
        return self._violation(ViolationKind.UNKNOWN_COMMAND, R.R500_UNKNOWN_COMMAND,
                               f"unknown command {shown}")

    def _bad_sequence(self, verb: str) -> Event | None:
        """A command out of order: 503 and a violation, except behind a refusal (Rule 8)."""
        reply = R.R503_BAD_SEQUENCE
        if verb in ("RCPT", "DATA") and self._mail_refused and self._state is State.READY:
            self._outgoing += reply.to_bytes()
            return None
        if verb == "DATA" and self._state is State.MAIL and self._rcpt_attempts:
            self._outgoing += R.R554_NO_VALID_RECIPIENTS.to_bytes()
            return None
        return self._violation(ViolationKind.BAD_SEQUENCE, reply,
                               f"{verb} not allowed in state {self._state.value}")

    def _self_command(self, verb: str, argument: bytes, move) -> Event | None:
        if verb in ("EHLO", "HELO"):
            name = C.parse_hello(argument)
            if verb == "EHLO":
                reply = R.R250_EHLO(self.hostname, self.extensions())
            else:
                reply = R.R250_HELO(self.hostname)
            self._reset_transaction()
            self._outgoing += reply.to_bytes()
            self._state = State.READY
            self._is_extended = verb == "EHLO"
            return Ehlo(name, is_extended=verb == "EHLO")
        if verb in ("RSET", "QUIT") and argument:
            raise PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, f"{verb} takes no argument")
        if verb == "VRFY" and not argument:
            raise PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, "VRFY needs an argument")
        self._outgoing += move.reply.to_bytes()
        if move.reply.code == 502:
            return UnsupportedCommand(verb)
        if verb == "RSET":
            self._reset_transaction()
        if move.next is not None:
            self._state = move.next
        return move.event() if move.event is not None else None

    def _app_command(self, verb: str, argument: bytes) -> Event | None:
        if verb == "MAIL":
            event: Event = self._parse_mail(argument)
        elif verb == "RCPT":
            self._rcpt_attempts += 1
            event = self._parse_rcpt(argument)
            if self._recipients >= self.max_recipients:
                return self._recipient_limit_reached()
        elif verb == "DATA":
            if argument:
                raise PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, "DATA takes no argument")
            event = DataRequested()
        else:  # STARTTLS
            if argument:
                raise PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, "STARTTLS takes no argument")
            if self._is_tls:
                raise PeerError(ViolationKind.BAD_SEQUENCE, R.R503_BAD_SEQUENCE,
                                "STARTTLS after TLS is active (RFC 3207 §4.2)")
            if not self.tls_available:
                self._outgoing += R.R502_NOT_IMPLEMENTED.to_bytes()
                return UnsupportedCommand(verb)
            event = StartTlsRequested()
        self._awaiting = type(event)
        self._pending = event
        return event

    def _parse_mail(self, argument: bytes) -> MailFrom:
        address, raw = C.parse_path_argument(argument, "FROM", is_mail=True)
        if raw and not self._is_extended:
            # RFC 5321 §4.1.1.11, RFC 1869 §4.5: parameters belong to the service extensions
            # EHLO lists; after HELO none was offered (smtp18 C4: SMTPUTF8 after HELO made
            # a Received "with UTF8SMTP" for a session that never said EHLO).
            raise PeerError(ViolationKind.UNKNOWN_PARAMETER, R.R555_UNKNOWN_PARAMETER,
                            f"MAIL parameter {raw[0][0]} after HELO, which offers no "
                            f"extension (RFC 5321 §4.1.1.11)")
        params = C.parse_mail_params(raw)
        if C.has_non_ascii(address) and not params.get("SMTPUTF8"):
            raise PeerError(ViolationKind.NON_ASCII_ADDRESS, R.R553_NON_ASCII_ADDRESS,
                            "non-ASCII sender without SMTPUTF8 (RFC 6531 §3.5)")
        if C.unrelayable(address):
            raise PeerError(ViolationKind.UNRELAYABLE_ADDRESS, R.R553_BAD_ADDRESS_CHARS,
                            "sender with an angle bracket, which delivery never sends")
        return MailFrom(address, params)

    def _parse_rcpt(self, argument: bytes) -> RcptTo:
        address, raw = C.parse_path_argument(argument, "TO", is_mail=False)
        C.check_no_rcpt_params(raw)
        if C.has_non_ascii(address) and not self._smtputf8:
            raise PeerError(ViolationKind.NON_ASCII_ADDRESS, R.R553_NON_ASCII_ADDRESS,
                            "non-ASCII recipient without SMTPUTF8 (RFC 6531 §3.5)")
        if C.unrelayable(address):
            raise PeerError(ViolationKind.UNRELAYABLE_ADDRESS, R.R553_BAD_ADDRESS_CHARS,
                            "recipient with an angle bracket, which delivery never sends")
        return RcptTo(address, {})

    def _recipient_limit_reached(self) -> Event | None:
        """An RCPT past max_recipients: 452 4.5.3 (Rule 7); an event for the first one of
        the transaction only."""
        self._outgoing += R.R452_TOO_MANY_RECIPIENTS.to_bytes()
        if self._recipient_limit_told:
            return None
        self._recipient_limit_told = True
        return RecipientLimitReached(self.max_recipients)

    # --- helpers -----------------------------------------------------------------------
    def _violation(self, kind: ViolationKind, reply: Reply, detail: str) -> ProtocolViolation:
        if reply.code != 421:
            # an error (Rule 2a); past the budget, the one answered 421 and closed
            if self._errors >= self.max_errors:
                self._errors += 1
                self._state = State.CLOSED
                kind, reply = ViolationKind.TOO_MANY_ERRORS, R.R421_TOO_MANY_ERRORS
                detail = (f"{detail}: error {self._errors} since the last accepted message, "
                          f"over the limit of {self.max_errors}")
            else:
                self._errors += 1
        self._outgoing += reply.to_bytes()
        return ProtocolViolation(kind, reply, detail)

    def _reset_transaction(self) -> None:
        self._recipients = 0
        self._rcpt_attempts = 0
        self._recipient_limit_told = False
        self._smtputf8 = False
        self._mail_refused = False

    def _awaiting_name(self) -> str:
        awaited = self._awaiting
        return awaited if isinstance(awaited, str) else getattr(awaited, "__name__", "nothing")
