"""The event vocabulary shared by the sans-IO server and client.

Events are small frozen dataclasses named for what the peer did. "Need more
bytes" is the `NEED_DATA` sentinel, never `None`. Two kinds of error, as in
h11: the peer breaking the protocol is an event (`ProtocolViolation`, carrying
the reply already queued for it) and never raises; our own code asking for
something illegal raises `LocalProtocolError` — that is a bug.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from core.smtp.replies import Reply

__all__ = [
    "NEED_DATA",
    "LocalProtocolError",
    "ViolationKind",
    "Event",
    "Ehlo",
    "MailFrom",
    "RcptTo",
    "DataRequested",
    "DataChunk",
    "DataComplete",
    "Rset",
    "StartTlsRequested",
    "Quit",
    "ConnectionClosed",
    "UnsupportedCommand",
    "RecipientLimitReached",
    "ProtocolViolation",
    "ServerReply",
]


class _NeedData:
    """Type of the NEED_DATA sentinel: feed more bytes, then ask again."""

    _instance: _NeedData | None = None

    def __new__(cls) -> _NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __bool__(self) -> bool:  # so `if event:` cannot be mistaken for "got one"
        return False


NEED_DATA = _NeedData()


class LocalProtocolError(Exception):
    """Our own code made an illegal call (a bug): e.g. send() with no event
    awaiting a reply, a reply code the awaited event cannot take, next_event()
    while a reply is owed. The connection's state is left unchanged."""


class ViolationKind(enum.StrEnum):
    """Why a `ProtocolViolation` was emitted, or (TEXT_LINE_TOO_LONG) why a
    `DataComplete` says `line_too_long`; the value is the rule of the app's
    protocol_violation event."""

    COMMAND_LINE_TOO_LONG = "command_line_too_long"      # 500 5.5.2
    TEXT_LINE_TOO_LONG = "text_line_too_long"            # 554 5.6.0 after the end of data
    UNKNOWN_COMMAND = "unknown_command"                  # 500 5.5.1
    TOO_MANY_UNKNOWN_COMMANDS = "too_many_unknown_commands"  # 421, session closed
    TOO_MANY_ERRORS = "too_many_errors"                  # 421, session closed (protocol.py 2a)
    SYNTAX = "syntax"                                    # 501 5.5.4
    BAD_SEQUENCE = "bad_sequence"                        # 503 5.5.1 / 554 5.5.1
    UNKNOWN_PARAMETER = "unknown_parameter"              # 555 5.5.4
    PARAMETER_NOT_IMPLEMENTED = "parameter_not_implemented"  # 504 5.5.4
    NON_ASCII_ADDRESS = "non_ascii_address"              # 553 5.6.7
    UNRELAYABLE_ADDRESS = "unrelayable_address"          # 553 5.1.3 (commands.unrelayable)
    STARTTLS_PLAINTEXT_INJECTION = "starttls_plaintext_injection"  # no reply
    REPLY_SYNTAX = "reply_syntax"                        # client side: garbage from a server
    REPLY_TOO_LONG = "reply_too_long"                    # client side
    UNEXPECTED_REPLY = "unexpected_reply"                # client side


class Event:
    """Base class of every event (for isinstance checks and type hints)."""

    __slots__ = ()


# --- server side: what the SMTP client did -------------------------------------

@dataclass(frozen=True)
class Ehlo(Event):
    """EHLO (is_extended=True) or HELO. The protocol already queued the reply
    and discarded any transaction (RFC 5321 §4.1.4)."""

    name: str
    is_extended: bool


@dataclass(frozen=True)
class MailFrom(Event):
    """MAIL FROM. `address` is "" for the null sender, source route stripped.
    `params` holds parsed parameters: "SIZE" (int), "BODY" ("7BIT" or
    "8BITMIME"), "SMTPUTF8" (True). App replies via send()."""

    address: str
    params: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class RcptTo(Event):
    """RCPT TO (source route stripped; "Postmaster" allowed bare, RFC 5321
    §4.1.1.3). No parameters are supported, so `params` is always empty.
    App replies via send()."""

    address: str
    params: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class DataRequested(Event):
    """DATA after at least one accepted RCPT. App replies R354_START_DATA (the
    protocol then reads message content) or a 4xx/5xx rejection."""


@dataclass(frozen=True)
class DataChunk(Event):
    """Dot-unstuffed message content (RFC 5321 §4.5.2), whole lines only, every
    line ending in CRLF (bare LF normalised). Emitted incrementally."""

    data: bytes


@dataclass(frozen=True)
class DataComplete(Event):
    """End of data (`CRLF.CRLF`) seen. `size` counts every content octet
    received, including any past a limit. When `line_too_long` the app must
    reply R554_LINE_TOO_LONG_IN_DATA, and the peer broke the protocol
    (ViolationKind.TEXT_LINE_TOO_LONG, reported here rather than as a
    ProtocolViolation because its reply waits for the end of data); when
    `size_exceeded`, R552_SIZE_EXCEEDED
    (no DataChunk is emitted after either limit is hit). `bare_line_endings`
    says a bare LF was seen (a smuggling attempt or a broken client)."""

    size: int
    line_too_long: bool = False
    size_exceeded: bool = False
    bare_line_endings: bool = False


@dataclass(frozen=True)
class Rset(Event):
    """RSET: discard the transaction. The protocol already queued 250."""


@dataclass(frozen=True)
class StartTlsRequested(Event):
    """STARTTLS (RFC 3207). App replies R220_READY_TO_START_TLS, performs the
    handshake and calls start_tls_done(); or replies R454_TLS_NOT_AVAILABLE."""


@dataclass(frozen=True)
class Quit(Event):
    """QUIT. The protocol queued 221 and is CLOSED: flush and hang up."""


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """The peer closed the connection (or the session is already closed)."""


@dataclass(frozen=True)
class UnsupportedCommand(Event):
    """A command we recognise but do not implement (TURN, ETRN, AUTH, EXPN, …; STARTTLS
    when no TLS is offered): the protocol queued 502 (RFC 5321 §4.2.4). Not a violation:
    the app only notes it (the guide's "unsupported operation"). `verb` only — an AUTH
    argument is a secret."""

    verb: str


@dataclass(frozen=True)
class RecipientLimitReached(Event):
    """An RCPT past the transaction's `limit` of recipients: the protocol queued 452 4.5.3.
    Not a violation: RFC 5321 §4.5.3.1.10 has a client send more RCPTs than a server may
    take, and the refused ones in a later transaction (Postfix and Exim do). Emitted for
    the first such RCPT of a transaction only; the later ones get their 452 silently."""

    limit: int


@dataclass(frozen=True)
class ProtocolViolation(Event):
    """The peer broke the protocol. `reply` (if any) is already queued in
    data_to_send(); the app writes a protocol_violation event."""

    kind: ViolationKind
    reply: Reply | None
    detail: str


# --- client side: what the SMTP server did ---------------------------------------

@dataclass(frozen=True)
class ServerReply(Event):
    """A complete reply from the server, matched to the command it answers.
    `command` is a `core.smtp.client.Command`; `argument` is the address for
    MAIL/RCPT, else ""."""

    command: str
    argument: str
    reply: Reply
