"""The server's state machine as two tables: state × command and state × app reply.

Everything that moves `ServerConnection.state` is in this module, so the
tables below are the whole truth; `render_table()` prints them for the docs.

Rule 1 - commands (COMMAND_TABLE). In a command state (GREETED, READY, MAIL,
    RCPT) each command line maps to one Move:
      APP       surface the event and wait for the app's reply via send();
                REPLY_TABLE then picks the next state.
      SELF      the protocol queues the reply itself and moves to `next`.
      BAD_SEQ   503 5.5.1 (RFC 5321 §4.1.4 order), state unchanged.
    Guards applied by the connection on top of the table (they only ever
    turn an APP move into a protocol-answered refusal):
      STARTTLS  502 when TLS is not available, 503 once TLS is active
                (RFC 3207 §4.2: no second STARTTLS).
      DATA      554 "no valid recipients" instead of 503 when RCPTs were
                tried but all refused (RFC 5321 §3.3, RFC 2920 §3.1), which
                is no violation (protocol.py Rule 8); nor is the 503 to RCPT
                or DATA behind a refused MAIL.
      RCPT      452 4.5.3 past max_recipients (SPEC §4), which is no
                violation (RFC 5321 §4.5.3.1.10; protocol.py Rule 7).
Rule 2 - app replies (REPLY_TABLE). For the event awaiting a reply, the reply
    code decides the next state; a code not listed is a LocalProtocolError and
    the state does not change. A 421 is legal in every state but CLOSED and
    always moves to CLOSED (RFC 5321 §3.8: a server may close with 421 at any
    time), so a timeout or shutdown can be sent whatever is awaited.
Rule 3 - DATA, STARTTLS_HANDSHAKE and CONNECTED read no commands: DATA reads
    content until CRLF.CRLF, STARTTLS_HANDSHAKE waits for start_tls_done(),
    CONNECTED waits for the app to send the greeting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.smtp import replies as R
from core.smtp.events import (DataComplete, DataRequested, Ehlo, MailFrom, Quit, RcptTo, Rset,
                              StartTlsRequested)
from core.smtp.replies import Reply

__all__ = ["State", "Move", "COMMAND_TABLE", "REPLY_TABLE", "GREETING", "render_table"]


class State(enum.Enum):
    CONNECTED = "CONNECTED"                      # greeting not sent yet
    GREETED = "GREETED"                          # 220 sent, no EHLO/HELO yet
    READY = "READY"                              # EHLO/HELO done, no transaction
    MAIL = "MAIL"                                # MAIL accepted, no RCPT accepted yet
    RCPT = "RCPT"                                # at least one RCPT accepted
    DATA = "DATA"                                # 354 sent, reading content
    STARTTLS_HANDSHAKE = "STARTTLS_HANDSHAKE"    # 220 to STARTTLS sent, TLS not done
    CLOSED = "CLOSED"                            # QUIT, 421 or peer gone


COMMAND_STATES = (State.GREETED, State.READY, State.MAIL, State.RCPT)


@dataclass(frozen=True)
class Move:
    """One cell of COMMAND_TABLE."""

    kind: str                        # "APP", "SELF" or "BAD_SEQ"
    event: type | None = None        # event surfaced to the app (None: not surfaced)
    reply: Reply | None = None       # SELF: the reply the protocol queues
    next: State | None = None        # SELF: next state (None: unchanged)

    def label(self) -> str:
        if self.kind == "APP":
            return f"app:{self.event.__name__}"
        if self.kind == "BAD_SEQ":
            return "503"
        target = f"->{self.next.value}" if self.next else ""
        code = self.reply.code if self.reply else "250"  # EHLO/HELO reply built per session
        return f"{code}{target}"


def _app(event: type) -> Move:
    return Move("APP", event=event)


def _self(reply: Reply | None, next_state: State | None = None, event: type | None = None) -> Move:
    return Move("SELF", event=event, reply=reply, next=next_state)


BAD_SEQ = Move("BAD_SEQ")
# The EHLO reply is built per connection (host name, extensions), so `reply`
# is None here and the connection supplies it.
_HELLO = _self(None, State.READY, Ehlo)
_UNKNOWN = _self(R.R500_UNKNOWN_COMMAND)  # counted; too many → 421 and CLOSED
_NOT_IMPLEMENTED = _self(R.R502_NOT_IMPLEMENTED)

# state × command → Move.     GREETED              READY                  MAIL                   RCPT
_ROWS: dict[str, tuple[Move, Move, Move, Move]] = {
    "EHLO":     (_HELLO,                _HELLO,                _HELLO,                _HELLO),
    "HELO":     (_HELLO,                _HELLO,                _HELLO,                _HELLO),
    "MAIL":     (BAD_SEQ,               _app(MailFrom),        BAD_SEQ,               BAD_SEQ),
    "RCPT":     (BAD_SEQ,               BAD_SEQ,               _app(RcptTo),          _app(RcptTo)),
    "DATA":     (BAD_SEQ,               BAD_SEQ,               BAD_SEQ,               _app(DataRequested)),
    "RSET":     (_self(R.R250_OK, None, Rset),
                 _self(R.R250_OK, State.READY, Rset),
                 _self(R.R250_OK, State.READY, Rset),
                 _self(R.R250_OK, State.READY, Rset)),
    "NOOP":     (_self(R.R250_OK),      _self(R.R250_OK),      _self(R.R250_OK),      _self(R.R250_OK)),
    "QUIT":     (_self(R.R221_BYE, State.CLOSED, Quit),) * 4,
    "VRFY":     (_self(R.R252_VRFY),) * 4,
    "EXPN":     (_NOT_IMPLEMENTED,) * 4,
    "HELP":     (_self(R.R214_HELP),) * 4,
    "STARTTLS": (BAD_SEQ,               _app(StartTlsRequested), BAD_SEQ,             BAD_SEQ),
    "(unsupported)": (_NOT_IMPLEMENTED,) * 4,   # AUTH BDAT ETRN TURN ... (RFC 5321 §4.2.4)
    "(unknown)": (_UNKNOWN,) * 4,
}

COMMAND_TABLE: dict[tuple[State, str], Move] = {
    (state, verb): row[column]
    for verb, row in _ROWS.items()
    for column, state in enumerate(COMMAND_STATES)
}

# Marker for "the greeting is awaited" (not a peer event).
GREETING = "Greeting"

# (state, awaited event) → {reply code class or exact code: next state}.
# Keys: an int 200-599 is an exact code, 2/3/4/5 a whole class.
REPLY_TABLE: dict[tuple[State, object], dict[int, State]] = {
    (State.CONNECTED, GREETING): {220: State.GREETED},
    (State.READY, MailFrom): {2: State.MAIL, 4: State.READY, 5: State.READY},
    (State.MAIL, RcptTo): {2: State.RCPT, 4: State.MAIL, 5: State.MAIL},
    (State.RCPT, RcptTo): {2: State.RCPT, 4: State.RCPT, 5: State.RCPT},
    (State.RCPT, DataRequested): {354: State.DATA, 4: State.RCPT, 5: State.RCPT},
    # RFC 5321 §4.1.1.4: after the reply to end-of-data the transaction is over,
    # whatever the reply said.
    (State.DATA, DataComplete): {2: State.READY, 4: State.READY, 5: State.READY},
    (State.READY, StartTlsRequested): {220: State.STARTTLS_HANDSHAKE, 4: State.READY,
                                       5: State.READY},
}


def next_state_for_reply(state: State, awaited: object, reply: Reply) -> State | None:
    """The state after sending `reply` for `awaited` in `state`, or None if
    that reply is illegal there. 421 always closes (Rule 2)."""
    if reply.code == 421 and state is not State.CLOSED:
        return State.CLOSED
    moves = REPLY_TABLE.get((state, awaited))
    if moves is None:
        return None
    if reply.code in moves:
        return moves[reply.code]
    return moves.get(reply.code_class)


def _name(awaited: object) -> str:
    return awaited if isinstance(awaited, str) else awaited.__name__


def render_table() -> str:
    """Both tables as plain text (for docs/architecture.md and reviews)."""
    width = 24
    lines = ["state x command -> move", "command".ljust(15)
             + "".join(state.value.ljust(width) for state in COMMAND_STATES)]
    for verb in _ROWS:
        cells = [COMMAND_TABLE[(state, verb)].label().ljust(width) for state in COMMAND_STATES]
        lines.append(verb.ljust(15) + "".join(cells))
    lines += ["", "state x awaited event x reply -> next state  (421 from any state -> CLOSED)"]
    for (state, awaited), moves in REPLY_TABLE.items():
        outcomes = ", ".join(
            f"{code if code > 9 else f'{code}xx'}->{target.value}" for code, target in moves.items()
        )
        lines.append(f"{state.value.ljust(12)} {_name(awaited).ljust(18)} {outcomes}")
    return "\n".join(lines) + "\n"
