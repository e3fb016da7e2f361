"""Sans-IO SMTP: the server and client state machines, their events and replies.

Import the state machines from here, not from their submodules (STYLE §2); they do no
I/O. The listener's modules beside them (server.py, session.py, transaction.py,
reception.py, listen_sockets.py, group_commit.py; trio) and core/delivery move the bytes.
"""

from core.smtp.client import ClientConnection, ClientState, Command, DataEncoder, Outcome, Transaction
from core.smtp.events import (
    NEED_DATA,
    ConnectionClosed,
    DataChunk,
    DataComplete,
    DataRequested,
    Ehlo,
    Event,
    LocalProtocolError,
    MailFrom,
    ProtocolViolation,
    Quit,
    RcptTo,
    Rset,
    ServerReply,
    StartTlsRequested,
    ViolationKind,
)
from core.smtp.protocol import ServerConnection
from core.smtp.replies import *  # noqa: F401,F403 - the reply table is public
from core.smtp.replies import __all__ as _replies_all
from core.smtp.state import State, render_table

__all__ = [
    "ServerConnection",
    "State",
    "render_table",
    "ClientConnection",
    "ClientState",
    "Command",
    "DataEncoder",
    "Outcome",
    "Transaction",
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
    "ProtocolViolation",
    "ServerReply",
    *_replies_all,
]
