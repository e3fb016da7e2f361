"""Sans-IO ESMTP client for delivery: commands in, bytes out; bytes in, replies out.

What this module owns
    `ClientConnection`: one outgoing SMTP session. Each command method
    returns the bytes to write; replies fed through receive_data() come back
    from next_event() as `ServerReply(command, argument, reply)`, matched to
    the oldest command still waiting (RFC 2920 §3.2: replies come in order).
    `Transaction` records per-recipient results for the current MAIL.

What it must never do
    Sockets, trio, clocks, DNS, logging; decide delivery policy (whether TLS
    is required, whether to fall back to HELO, what to do on 4xx) — the
    caller decides from the replies and `extensions`.

Typical drive (delivery)
    conn = ClientConnection("gw.example.org")
    read until ServerReply(GREETING, 220)   -> write(conn.ehlo())
    5xx to EHLO                             -> write(conn.helo())      (RFC 5321 §4.1.4)
    "STARTTLS" in conn.extensions           -> write(conn.starttls()); on 220 do the
                                               handshake, conn.start_tls_done(), EHLO again
    write(conn.mail(sender, size=n, needs_8bitmime=..., needs_smtputf8=...))
    for r in recipients: write(conn.rcpt(r))                 (all at once if pipelining)
    write(conn.data())  ... ServerReply(DATA, 354)
    write(conn.encode_data_chunk(part)) ... write(conn.end_data())
    ServerReply(DATA_END, 250) -> conn.transaction.outcomes()
    write(conn.rset()) to reuse the connection, or write(conn.quit())

Rules
    1. Without PIPELINING a command may only be sent once the previous one
       has its reply; with it, EHLO/HELO, DATA, NOOP, QUIT and STARTTLS still
       end a group (RFC 2920 §3.1, RFC 3207 §4.2). Breaking this raises
       LocalProtocolError, as does any command illegal in the current state.
    2. Nothing a server sends raises: garbage becomes a ProtocolViolation
       event and the connection is CLOSED; a 421 to anything closes it too
       (RFC 5321 §3.8), and is kept as `closing_reply`. So does a reply of a
       class its command cannot have (`_is_expected`: a 3xx to anything but DATA,
       a 2xx to DATA; RFC 5321 §4.2.1 "unexpected" codes, §4.3.2): a
       ProtocolViolation, never a ServerReply, so it decides for no recipient —
       a 354 after the final dot was once taken for delivery.
    3. Addresses with CR, LF or other controls are refused (LocalProtocolError):
       they would inject commands into the session.
    4. Message content is dot-stuffed (RFC 5321 §4.5.2) and every bare CR or
       bare LF becomes CRLF (§2.3.8), so nothing we relay can smuggle an
       end-of-data past the next hop.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field

from core.smtp.events import (NEED_DATA, ConnectionClosed, Event, LocalProtocolError,
                              ProtocolViolation, ServerReply, ViolationKind)
from core.smtp.readers import ReplyError, ReplyReader
from core.smtp.replies import Reply

__all__ = ["ClientConnection", "ClientState", "Command", "Outcome", "Transaction",
           "DataEncoder"]

# RFC 5321 §4.5.3.1.5 sets 512 octets per reply line; servers overshoot with
# long texts, so we accept more (RFC 5321 §4.5.3.1 asks receivers to be liberal).
MAX_REPLY_LINE_OCTETS = 4096
MAX_REPLY_LINES = 200
# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_OCTETS = 512


class Command(enum.StrEnum):
    GREETING = "GREETING"      # not a command: the server's opening reply
    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    DATA_END = "DATA_END"      # the final "." (RFC 5321 §4.1.1.4)
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    UNSOLICITED = "UNSOLICITED"  # a reply with no command waiting (e.g. 421)


# RFC 2920 §3.1 (+ STARTTLS, RFC 3207 §4.2): nothing may follow these unanswered.
_LAST_IN_GROUP = frozenset({Command.GREETING, Command.EHLO, Command.HELO, Command.DATA,
                            Command.NOOP, Command.QUIT, Command.STARTTLS})


class ClientState(enum.Enum):
    GREETING = "GREETING"          # waiting for the server's 220
    GREETED = "GREETED"            # send EHLO or HELO
    READY = "READY"                # hello done, no transaction
    MAIL = "MAIL"                  # MAIL sent: RCPT / DATA / RSET
    DATA_REQUESTED = "DATA_REQUESTED"  # DATA sent, waiting for 354
    DATA = "DATA"                  # 354 received: send content, then end_data()
    TLS_HANDSHAKE = "TLS_HANDSHAKE"    # 220 to STARTTLS: handshake, then start_tls_done()
    REFUSED = "REFUSED"            # greeting was not 220: only QUIT makes sense
    QUITTING = "QUITTING"          # QUIT sent
    CLOSED = "CLOSED"


# Which commands each state allows (Rule 1); the state after sending.
_ALLOWED: dict[ClientState, frozenset[Command]] = {
    ClientState.GREETED: frozenset({Command.EHLO, Command.HELO, Command.NOOP, Command.RSET,
                                    Command.QUIT}),
    ClientState.READY: frozenset({Command.EHLO, Command.HELO, Command.STARTTLS, Command.MAIL,
                                  Command.RSET, Command.NOOP, Command.QUIT}),
    ClientState.MAIL: frozenset({Command.RCPT, Command.DATA, Command.RSET, Command.NOOP,
                                 Command.QUIT}),
    ClientState.REFUSED: frozenset({Command.QUIT}),
}
_STATE_AFTER_SEND = {Command.MAIL: ClientState.MAIL, Command.DATA: ClientState.DATA_REQUESTED,
                     Command.RSET: None, Command.QUIT: ClientState.QUITTING}


class Outcome(enum.Enum):
    DELIVERED = "delivered"    # final 2xx after the data
    DEFERRED = "deferred"      # a 4xx at MAIL, RCPT, DATA or after the data
    FAILED = "failed"          # a 5xx at any of those
    PENDING = "pending"        # no deciding reply yet (treat as deferred if the link dies)


def _outcome(reply: Reply) -> Outcome:
    """What a deciding reply (rule 2: never a 3xx) means; a 5xx fails, anything else that
    is not a 2xx waits."""
    return {2: Outcome.DELIVERED, 5: Outcome.FAILED}.get(reply.code_class, Outcome.DEFERRED)


def _is_expected(command: Command, reply: Reply) -> bool:
    """Can `command` be answered with `reply`'s class (rule 2)? RFC 5321 §4.3.2: 354 is
    the one intermediate reply, to DATA, whose positive answer it is; every other
    command's is a 2xx (STARTTLS's 220 too). We send no AUTH (334)."""
    if command is Command.DATA:
        return reply.code == 354 or reply.code_class in (4, 5)
    return reply.code_class != 3


def _is_positive(command: Command, reply: Reply) -> bool:
    """Does the transaction go on after this reply to MAIL, RCPT or DATA?"""
    return reply.code == 354 if command is Command.DATA else reply.code_class == 2


@dataclass
class Transaction:
    """One MAIL transaction and the replies it got."""

    sender: str
    recipients: list[str] = field(default_factory=list)
    mail_reply: Reply | None = None
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    data_reply: Reply | None = None        # reply to DATA (354 or a refusal)
    final_reply: Reply | None = None       # reply after the final "."
    # end_data() gave the final ".": from then on the server may have the message, whatever
    # becomes of the connection (RFC 5321 §4.5.3.2.6, §6.1)
    is_data_sent: bool = False

    @property
    def accepted_recipients(self) -> list[str]:
        """Recipients whose RCPT got a 2xx (send content only if non-empty;
        if DATA got 354 with none accepted, just call end_data(), RFC 2920 §3.1)."""
        return [r for r in self.recipients
                if (reply := self.rcpt_replies.get(r)) is not None and reply.code_class == 2]

    def outcomes(self) -> dict[str, tuple[Outcome, Reply | None]]:
        """Per recipient: the outcome and the reply that decided it. A failed
        MAIL decides for every recipient; then each RCPT reply; then DATA;
        then the final reply."""
        result: dict[str, tuple[Outcome, Reply | None]] = {}
        for recipient in self.recipients:
            deciding: Reply | None = None
            for command, reply in ((Command.MAIL, self.mail_reply),
                                   (Command.RCPT, self.rcpt_replies.get(recipient)),
                                   (Command.DATA, self.data_reply)):
                if reply is None:
                    break
                if not _is_positive(command, reply):
                    deciding = reply
                    break
            else:
                deciding = self.final_reply
            if deciding is None:
                result[recipient] = (Outcome.PENDING, None)
            else:
                result[recipient] = (_outcome(deciding), deciding)
        return result


class DataEncoder:
    """Incremental dot-stuffing and CRLF normalisation of message content."""

    _LINE_END_RE = re.compile(rb"\r\n|\r|\n")

    def __init__(self) -> None:
        self._at_line_start = True
        self._held_cr = False   # a CR at the end of a chunk: LF may follow in the next

    def encode(self, data: bytes) -> bytes:
        return self._encode(data, plain=True)

    def _encode(self, data: bytes, plain: bool = False) -> bytes:
        """`plain`: skip the line-end rewrite when every line end is already CRLF (the
        spool holds what the listener normalised), which costs a regex substitution per
        line end otherwise."""
        if self._held_cr:
            data = b"\r" + data
            self._held_cr = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._held_cr = True
        if not data:
            return b""
        crlf = data.count(b"\r\n") if plain else -1
        if not (crlf == data.count(b"\n") == data.count(b"\r")):
            data = self._LINE_END_RE.sub(b"\r\n", data)
        data = data.replace(b"\r\n.", b"\r\n..")
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        self._at_line_start = data.endswith(b"\r\n")
        return data

    def end(self) -> bytes:
        tail = b"\r\n" if self._held_cr else b""
        self._held_cr = False
        if not tail and not self._at_line_start:
            tail = b"\r\n"   # content must end with CRLF before "." (RFC 5321 §4.1.1.4)
        return tail + b".\r\n"


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f<>]")


class ClientConnection:
    """One client-side SMTP session. See the module header for the rules."""

    def __init__(self, local_hostname: str, *, max_reply_line_octets: int = MAX_REPLY_LINE_OCTETS,
                 max_reply_lines: int = MAX_REPLY_LINES) -> None:
        if _CONTROL_RE.search(local_hostname) or " " in local_hostname or not local_hostname:
            raise LocalProtocolError("bad local host name")
        self.local_hostname = local_hostname
        self.state = ClientState.GREETING
        self.extensions: dict[str, str] = {}   # EHLO keyword (upper) -> parameters
        self.is_extended = False               # EHLO (not HELO) succeeded
        self.is_tls = False
        self.transaction: Transaction | None = None
        self._outstanding: deque[tuple[Command, str]] = deque([(Command.GREETING, "")])
        self._buffer = bytearray()
        self._reader = ReplyReader(max_reply_line_octets, max_reply_lines)
        self._encoder: DataEncoder | None = None
        self._peer_closed = False
        self._smtputf8 = False   # the current transaction declared SMTPUTF8
        # The 421 the server closed the connection with (rule 2), to a command or not: what
        # the commands it never answered are deferred with.
        self.closing_reply: Reply | None = None

    # --- facts -------------------------------------------------------------------------
    @property
    def supports_pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def max_message_octets(self) -> int | None:
        """The server's SIZE limit (RFC 1870 §4), None if absent or 0 (no limit)."""
        value = self.extensions.get("SIZE", "").strip()
        # isascii: str.isdigit() also takes "²", which int() refuses
        return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else None

    @property
    def outstanding(self) -> tuple[Command, ...]:
        """Commands sent whose replies have not arrived, oldest first."""
        return tuple(command for command, _ in self._outstanding)

    # --- bytes in ------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; b"" means it closed the connection."""
        if not data:
            self._peer_closed = True
        elif not self._peer_closed and self.state is not ClientState.CLOSED:
            self._buffer += data

    def next_event(self) -> Event | object:
        """ServerReply, ProtocolViolation, ConnectionClosed or NEED_DATA."""
        if self.state is ClientState.CLOSED:
            return ConnectionClosed()
        try:
            reply = self._reader.next_reply(self._buffer)
        except ReplyError as error:
            self._closed()
            return ProtocolViolation(ViolationKind(error.kind), None, error.detail)
        if reply is None:
            if self._peer_closed:
                self._closed()
                return ConnectionClosed()
            return NEED_DATA
        if not self._outstanding:
            if reply.code != 421:
                self._closed()
                return ProtocolViolation(ViolationKind.UNEXPECTED_REPLY, reply,
                                         f"reply {reply.code} with no command waiting")
            self._closed()
            self.closing_reply = reply
            return ServerReply(Command.UNSOLICITED, "", reply)
        command, argument = self._outstanding.popleft()
        if not _is_expected(command, reply):                                  # rule 2
            self._closed()
            enhanced = f" {reply.enhanced}" if reply.enhanced else ""
            what = "the end of data" if command is Command.DATA_END else str(command)
            return ProtocolViolation(
                ViolationKind.UNEXPECTED_REPLY, reply,
                f"unexpected reply to {what}: {reply.code}{enhanced} {' '.join(reply.lines)}")
        self._on_reply(command, argument, reply)
        return ServerReply(command, argument, reply)

    def _closed(self) -> None:
        self.state = ClientState.CLOSED
        self._outstanding.clear()
        self._buffer.clear()

    def _on_reply(self, command: Command, argument: str, reply: Reply) -> None:
        ok = reply.code_class == 2
        txn = self.transaction
        if reply.code == 421:
            self._record(command, argument, reply, txn)
            self._closed()
            self.closing_reply = reply
            return
        if command is Command.GREETING:
            self.state = ClientState.GREETED if reply.code == 220 else ClientState.REFUSED
        elif command in (Command.EHLO, Command.HELO) and ok:
            self.is_extended = command is Command.EHLO
            self.extensions = _parse_extensions(reply) if self.is_extended else {}
            self.state = ClientState.READY
        elif command is Command.STARTTLS:
            self.state = ClientState.TLS_HANDSHAKE if reply.code == 220 else ClientState.READY
        elif command is Command.MAIL and not ok and self.state is ClientState.MAIL:
            self.state = ClientState.READY
        elif command is Command.DATA:
            if reply.code == 354:
                self.state = ClientState.DATA
                self._encoder = DataEncoder()
            else:
                self.state = ClientState.READY
        elif command is Command.QUIT:
            self._closed()
        self._record(command, argument, reply, txn)

    @staticmethod
    def _record(command: Command, argument: str, reply: Reply, txn: Transaction | None) -> None:
        if txn is None:
            return
        if command is Command.MAIL:
            txn.mail_reply = reply
        elif command is Command.RCPT:
            txn.rcpt_replies[argument] = reply
        elif command is Command.DATA:
            txn.data_reply = reply
        elif command is Command.DATA_END:
            txn.final_reply = reply

    # --- commands out ---------------------------------------------------------------------
    def _send(self, command: Command, line: str, argument: str = "") -> bytes:
        allowed = _ALLOWED.get(self.state, frozenset())
        if command not in allowed:
            raise LocalProtocolError(f"{command} not allowed in state {self.state.value}")
        if self._outstanding:
            last = self._outstanding[-1][0]
            if not self.supports_pipelining or last in _LAST_IN_GROUP:
                raise LocalProtocolError(f"wait for the reply to {last} before {command}")
        data = (line + "\r\n").encode("utf-8")
        if len(data) > MAX_COMMAND_OCTETS:
            raise LocalProtocolError(f"{command} line over 512 octets (RFC 5321 §4.5.3.1.4)")
        self._outstanding.append((command, argument))
        if command in _STATE_AFTER_SEND:
            target = _STATE_AFTER_SEND[command]
            self.state = target if target is not None else (
                ClientState.READY if self.state is ClientState.MAIL else self.state)
        return data

    def ehlo(self) -> bytes:
        return self._send(Command.EHLO, f"EHLO {self.local_hostname}")

    def helo(self) -> bytes:
        return self._send(Command.HELO, f"HELO {self.local_hostname}")

    def starttls(self) -> bytes:
        """Raises LocalProtocolError if the server did not offer STARTTLS or TLS is on."""
        if self.is_tls or "STARTTLS" not in self.extensions:
            raise LocalProtocolError("STARTTLS not offered (or TLS already active)")
        return self._send(Command.STARTTLS, "STARTTLS")

    def start_tls_done(self) -> None:
        """After the handshake: forget the extensions and start over with EHLO
        (RFC 3207 §4.2). Bytes received before the handshake are discarded."""
        if self.state is not ClientState.TLS_HANDSHAKE:
            raise LocalProtocolError("start_tls_done() without a 220 to STARTTLS")
        self.is_tls = True
        self.extensions = {}
        self.is_extended = False
        self._buffer.clear()
        self.state = ClientState.GREETED

    def mail(self, sender: str, *, size: int | None = None, needs_8bitmime: bool = False,
             needs_smtputf8: bool = False) -> bytes:
        """MAIL FROM:<sender> ("" = null sender) and start a Transaction.

        Adds SIZE= when the server offers SIZE and `size` is given (RFC 1870),
        BODY=8BITMIME when needed (RFC 6152), SMTPUTF8 when needed (RFC 6531).
        Raises LocalProtocolError when the message needs 8BITMIME or SMTPUTF8
        and the server does not offer it (check `extensions` first and
        convert or bounce), or when an address is non-ASCII without
        needs_smtputf8, or contains controls."""
        _check_address(sender, needs_smtputf8)
        params = []
        if size is not None and "SIZE" in self.extensions:
            params.append(f"SIZE={int(size)}")
        if needs_8bitmime:
            self._require("8BITMIME")
            params.append("BODY=8BITMIME")
        if needs_smtputf8:
            self._require("SMTPUTF8")
            params.append("SMTPUTF8")
        line = " ".join([f"MAIL FROM:<{sender}>", *params])
        data = self._send(Command.MAIL, line, sender)
        self.transaction = Transaction(sender)
        self._smtputf8 = needs_smtputf8
        return data

    def rcpt(self, recipient: str) -> bytes:
        """RCPT TO:<recipient>; its reply lands in transaction.rcpt_replies."""
        _check_address(recipient, self._smtputf8)
        if not recipient:
            raise LocalProtocolError("empty recipient")
        data = self._send(Command.RCPT, f"RCPT TO:<{recipient}>", recipient)
        assert self.transaction is not None
        self.transaction.recipients.append(recipient)
        return data

    def data(self) -> bytes:
        return self._send(Command.DATA, "DATA")

    def encode_data_chunk(self, data: bytes) -> bytes:
        """Message content to send after 354: dot-stuffed, CRLF-normalised.
        Raises LocalProtocolError outside DATA."""
        if self.state is not ClientState.DATA or self._encoder is None:
            raise LocalProtocolError("encode_data_chunk() before a 354 reply to DATA")
        return self._encoder.encode(data)

    def end_data(self) -> bytes:
        """The end-of-data marker (with a CRLF first if content lacked one)."""
        if self.state is not ClientState.DATA or self._encoder is None:
            raise LocalProtocolError("end_data() before a 354 reply to DATA")
        data = self._encoder.end()
        self._encoder = None
        if self.transaction is not None:
            self.transaction.is_data_sent = True
        self._outstanding.append((Command.DATA_END, ""))
        self.state = ClientState.READY
        return data

    def rset(self) -> bytes:
        return self._send(Command.RSET, "RSET")

    def noop(self) -> bytes:
        return self._send(Command.NOOP, "NOOP")

    def quit(self) -> bytes:
        return self._send(Command.QUIT, "QUIT")

    def _require(self, keyword: str) -> None:
        if keyword not in self.extensions:
            raise LocalProtocolError(f"server does not offer {keyword}")


def _check_address(address: str, smtputf8: bool) -> None:
    if _CONTROL_RE.search(address):
        raise LocalProtocolError("address contains a control character or angle bracket")
    if not smtputf8 and not address.isascii():
        raise LocalProtocolError("non-ASCII address needs SMTPUTF8 (RFC 6531 §3.2)")


def _parse_extensions(reply: Reply) -> dict[str, str]:
    """EHLO reply lines after the first: "KEYWORD params" (RFC 5321 §4.1.1.1)."""
    extensions: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            extensions[keyword.upper()] = params.strip()
    return extensions
