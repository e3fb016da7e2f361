"""One outgoing SMTP connection driven over trio: connect, greet, STARTTLS, transactions, QUIT.

What this module owns
    `open_session` (TCP connect -> 220 -> EHLO/HELO -> STARTTLS per mode -> EHLO again),
    `run_transaction` (MAIL, RCPT..., DATA, streamed content, final reply; pipelined when
    the server offers PIPELINING, RFC 2920), `reset_session` (RSET before reuse) and
    `close_session` (QUIT, close). `core/delivery/deliver.py` decides which host to call
    and what the results mean for the queue.

Rules
    1. Every wait has a deadline from `Timeouts` (RFC 5321 §4.5.3.2 defaults) on trio's clock.
    2. Any failure to talk (timeout, reset, closed, garbage, 421) raises `DeliveryError` and
       marks the session unusable; an SMTP answer is never an exception, it is a result.
    3. Message content goes through `ClientConnection.encode_data_chunk` (dot-stuffing,
       CRLF) in MESSAGE_CHUNK_OCTETS pieces read with trio's async file API.
    4. A message that needs SMTPUTF8 (RFC 6531 §3.4) to a host without it fails with
       5.6.7; one over the host's SIZE (RFC 1870) fails with 5.3.4. 8-bit content to a host
       without 8BITMIME is converted to 7-bit (RFC 6152 §3; Postfix does the same unless
       disable_mime_output_conversion is set): core/delivery/downgrade.py re-encodes each
       8-bit body, and the copy is sent without BODY= (held in memory up to
       MESSAGE_CHUNK_OCTETS, else a temporary file beside the spooled message, removed
       after the transaction) and its size is what SIZE is checked against. Raw 8-bit
       header fields stay as they are, and a message it cannot convert (8-bit octets in a
       preamble, or in a message/* type other than rfc822 and the internationalised ones,
       downgrade.py rule 3) is sent as received, as Postfix does: delivered to a
       next hop that may well take it rather than bounced for its form. Whether content is
       8-bit is read from the bytes, not from the client's BODY= (clients lie), and only for
       a host without 8BITMIME; an all-ASCII message is sent untouched.
       "Needs SMTPUTF8" means UTF-8 in an envelope address or in the header section (RFC
       6531 §3.2); the client's SMTPUTF8 parameter alone is no need. A message without
       that need goes to a host without SMTPUTF8 without the parameter; a host that offers
       it gets the parameter as the client gave it. The header section is read only when
       that decides (the parameter given, the host without SMTPUTF8), and no further.
    5. A `DeliveryError` names a host (the DSN's Remote-MTA and "(from host)", the events'
       remote_mta) only when that host said something: a connection refused, timed out or
       closed before the greeting has none (RFC 3464 §2.3.5: the MTA that reported the
       status; Postfix leaves it out too). The text still names where it tried.
    6. Its status says where it happened (RFC 3463 §3.5): before the session is open
       (connect refused, unreachable or timed out, the connection closed or silent before
       the greeting, a greeting other than 220, a 4xx to EHLO or HELO) NO_ANSWER_STATUS,
       X.4.1 "No answer from host", a next hop busy or "otherwise unable to take a call",
       whatever the host's reply said (it stays in the text); TLS required but impossible
       4.7.0; a connection lost once the session is open BAD_CONNECTION_STATUS, X.4.2. The
       SMTP Connection Failure alert is raised on X.4.1 (core/notify.py alert_key).
       A 5xx to HELO (sent after a 5xx to EHLO) is no busy host but its refusal of us,
       for good (RFC 5321 §4.2.1: the client "SHOULD NOT repeat the exact request"): the
       error `is_permanent`, with the reply's status, and core/delivery/deliver.py fails
       the recipients when no other host takes the session (rule 1 there), as Postfix's
       smtp_site_fail bounces on a hard error. This rule once deferred it as X.4.1 like a
       busy host, and the sender waited delivery.retry_days for the bounce of mail the
       host would never take. A 5xx greeting stays X.4.1: the next host is tried, and a
       host that only greets 554 ("no SMTP service here", RFC 5321 §3.1) is deferred, as
       Postfix's smtp_skip_5xx_greeting default has it.
    7. `Session.log` is the conversation log of the delivery attempt using the connection
       now (core/delivery/deliver.py sets it; None between attempts and when logging is
       off): what is sent and received goes there, and each error with its class — a
       connection that fails or times out "communication", a reply that is not SMTP
       "protocol", a refusal ("local"): a 4xx/5xx reply of the next hop, or ours not to
       send (a message over its SIZE, needing SMTPUTF8 it lacks, TLS required).
    8. A RCPT refused only because the transaction already has as many recipients as the
       host takes — `452 4.5.3` (RFC 5321 §4.5.3.1.10), or RFC 821's `552` that the same
       section asks clients to treat as temporary, known by 5.5.3 or the text "too many
       recipients" — is no failure of that recipient: run_transaction reports it as
       RECIPIENT_LIMIT with status 4.5.3, and core/delivery/deliver.py sends it in a
       further transaction.
    9. A transaction the server opened (MAIL accepted) and that ended without the reply to
       the data — every RCPT refused, or DATA refused — is still open at the server: only
       that reply or RSET ends it (RFC 5321 §3.3, §4.1.1.5). `_exchange` sends RSET then,
       pipelined or not, so the next transaction on the connection (deliver.py sends more
       than 100 recipients in several) starts clean. Without it the next MAIL got "503
       5.5.1 nested MAIL command" from Postfix, and every later recipient, deliverable ones
       too, was failed and bounced (outbound19 finding A1). An RSET that finds the
       connection gone (closed, a 421) or is refused leaves the session unusable, and
       deliver.py sends the next transaction on a fresh connection (its rule 7).
   10. A 503 to MAIL ("bad sequence of commands") is about our session, never about the
       recipients: they are deferred (status 4.x.x, the reply as their text) and the
       connection is dropped, so the server discards whatever it holds (RFC 5321
       §4.1.1.4); deliver.py sends a later transaction's recipients again on a fresh
       connection (its `_closed_before_taking`).
   11. A timeout's text says what was awaited and how long: "timeout waiting for
       host[address]:25: no greeting in 300 s" (or "no reply to MAIL in 300 s", "no reply
       to the end of the data in 600 s"), "timeout sending to …: not taken in 180 s". It
       said only "timeout waiting for host", which did not tell the admin that the remote
       end never greeted (outbound19 C3).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from core.delivery.downgrade import Unconvertible, downgrade
from core.delivery.mx import Candidate
from core.smtp.client import ClientConnection, ClientState, Command, Outcome
from core.smtp.conversation import ConversationLog, tls_summary
from core.smtp.events import NEED_DATA, ConnectionClosed, LocalProtocolError, ServerReply
from core.smtp.replies import Reply
from core.smtp.streams import connect_tcp
from shared.spool import Envelope

__all__ = ["Timeouts", "Session", "DeliveryError", "open_session", "run_transaction",
           "reset_session", "close_session", "reply_text", "MESSAGE_CHUNK_OCTETS",
           "NO_ANSWER_STATUS", "BAD_CONNECTION_STATUS", "RECIPIENT_LIMIT",
           "RECIPIENT_LIMIT_STATUS", "LOOP_STATUS"]

MESSAGE_CHUNK_OCTETS = 256 * 1024  # most messages: one read and one write
RECEIVE_OCTETS = 64 * 1024
HEADER_CHUNK_OCTETS = 16 * 1024    # reading up to the end of the header section (rule 4)
NO_ANSWER_STATUS = "4.4.1"         # rule 6: the session could not be opened
BAD_CONNECTION_STATUS = "4.4.2"    # rule 6: lost once it was open
RECIPIENT_LIMIT = "recipient_limit"  # rule 8: an outcome of run_transaction, not final
RECIPIENT_LIMIT_STATUS = "4.5.3"   # RFC 3463 "too many recipients", temporary (rule 8)
LOOP_STATUS = "5.4.6"              # RFC 3463 "routing loop detected" (deliver.py rule 8)
_TOO_MANY_RECIPIENTS = re.compile(r"too many recipients", re.IGNORECASE)


@dataclass(frozen=True)
class Timeouts:
    """Seconds on trio's clock. Defaults: RFC 5321 §4.5.3.2 where it names one."""
    connect: float = 30.0                 # not in the RFC; Postfix smtp_connect_timeout
    greeting: float = 300.0               # §4.5.3.2.1 initial 220 message: 5 minutes
    helo: float = 300.0                   # Postfix smtp_helo_timeout
    tls_handshake: float = 60.0           # ours: a handshake is a few round trips
    mail: float = 300.0                   # §4.5.3.2.2 MAIL command: 5 minutes
    rcpt: float = 300.0                   # §4.5.3.2.3 RCPT command: 5 minutes
    data_initiation: float = 120.0        # §4.5.3.2.4 DATA initiation: 2 minutes
    data_block: float = 180.0             # §4.5.3.2.5 data block: 3 minutes
    data_termination: float = 600.0       # §4.5.3.2.6 DATA termination: 10 minutes
    rset: float = 30.0                    # ours: a reused connection must answer quickly
    quit: float = 5.0                     # ours: QUIT is a courtesy


class DeliveryError(Exception):
    """The connection failed (rule 2): the recipients still undecided are deferred, or
    failed when it `is_permanent` (rule 6)."""

    def __init__(self, text: str, *, status: str = NO_ANSWER_STATUS, host: str | None = None,
                 tls_failed: bool = False, kind: str = "communication",
                 is_permanent: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.host = host
        self.tls_failed = tls_failed
        self.is_permanent = is_permanent    # refused for good (rule 6): fail
        self.kind = kind          # conversation log error class: communication | protocol | local


@dataclass
class Session:
    stream: trio.abc.Stream
    conn: ClientConnection
    host: str
    address: str
    port: int
    log: ConversationLog | None         # rule 7
    connection_id: str = ""             # in its logs and its connected_to event
    opened_in: str = ""                 # the log that shows its set-up (greeting, EHLO, TLS)
    tls: str = ""                       # TLS version and cipher, once established
    is_tls: bool = False
    is_broken: bool = False
    is_open: bool = False               # open_session finished: ready for MAIL (rule 6)
    completed_at: float | None = None   # trio time the last transaction ended with the reply
                                        # to the data or an RSET (rule 9) (None: not ended
                                        # that way)
    timer: trio.CancelScope | None = None   # set by _timed: the deadline of the current step
    step: str = ""                          # what that step does, for the timeout's text
    step_seconds: float = 0.0               # that step's time limit (rule 11)

    @property
    def peer(self) -> str:
        return f"{self.host}[{self.address}]:{self.port}"

    @property
    def is_usable(self) -> bool:
        return not self.is_broken and self.conn.state is ClientState.READY


def reply_text(reply: Reply) -> str:
    """"550 5.1.1 text" on one line (multi-line replies joined with spaces)."""
    enhanced = f" {reply.enhanced}" if reply.enhanced else ""
    return f"{reply.code}{enhanced} {' '.join(reply.lines)}".strip()


def _reason(exc: BaseException) -> str:
    """An exception as the end of an error text, never empty: its own text, else its
    cause's (trio's BrokenResourceError carries none and wraps the ssl.SSLError that says
    what went wrong), else its type's name."""
    return str(exc) or str(exc.__cause__ or "") or type(exc).__name__


def _is_recipient_limit(reply: Reply) -> bool:
    """Does this reply to RCPT say the transaction has all the recipients the host takes
    (rule 8)?"""
    if reply.code not in (452, 552):
        return False
    if reply.enhanced is not None and reply.enhanced[1:] == ".5.3":
        return True
    return any(_TOO_MANY_RECIPIENTS.search(line) for line in reply.lines)


def _is_bad_sequence(reply: Reply | None) -> bool:
    """Is this reply to MAIL a 503, "bad sequence of commands" (rule 10)?"""
    return reply is not None and reply.code == 503


def _status(reply: Reply) -> str:
    if reply.enhanced:
        return reply.enhanced
    return {2: "2.0.0", 4: "4.0.0"}.get(reply.code_class, "5.0.0")


# --- bytes and replies ---------------------------------------------------------------------

async def _send(session: Session, data: bytes, timeout: float, end_data: bytes = b"") -> None:
    """`end_data`: the end-of-data marker sent with the last message content in one write."""
    if session.log is not None:
        session.log.client(data + end_data if end_data else data)
    session.step = "sending to"
    session.step_seconds = timeout
    session.timer.deadline = trio.current_time() + timeout
    try:
        await session.stream.send_all(data + end_data if end_data else data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as exc:
        raise _broken(session, f"connection to {session.peer} lost: {exc}") from None


async def _reply(session: Session, timeout: float) -> Reply:
    """The next reply; DeliveryError on timeout, close, garbage or a 421 (rule 2)."""
    conn = session.conn
    session.step = "waiting for"
    session.step_seconds = timeout
    session.timer.deadline = trio.current_time() + timeout
    try:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = await session.stream.receive_some(RECEIVE_OCTETS)
                if session.log is not None and data:
                    session.log.server(data)
                conn.receive_data(data)
                continue
            if isinstance(event, ServerReply):
                if event.command is Command.UNSOLICITED:
                    raise _broken(session, f"{session.peer} closed: {reply_text(event.reply)}")
                if event.reply.code >= 400 and session.log is not None:      # rule 7
                    what = "greeting" if event.command is Command.GREETING else \
                        f"reply to {event.command} {event.argument}".rstrip()
                    if event.command is Command.RCPT and _is_recipient_limit(event.reply):
                        # flow control (rule 8), not an error: "on error" keeps no log of
                        # a delivery that went in several transactions
                        session.log.note(f"{session.host} takes no more recipients in this "
                                         f"transaction: {reply_text(event.reply)}")
                    else:
                        session.log.error("local", f"{session.host} refused: {what}: "
                                                   f"{reply_text(event.reply)}")
                return event.reply
            if isinstance(event, ConnectionClosed):
                raise _broken(session, f"{session.peer} closed the connection")
            raise _broken(session, f"protocol error from {session.peer}: "
                                   f"{getattr(event, 'detail', event)}", kind="protocol")
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as exc:
        raise _broken(session, f"connection to {session.peer} lost: {exc}") from None


@contextmanager
def _timed(session: Session):
    """One cancel scope for a run of sends and replies (rule 1): each step moves its
    deadline. A scope per step cost three times as much, several times per message. A
    passed deadline ends the run with DeliveryError naming the step."""
    with trio.CancelScope() as scope:
        session.timer = scope
        try:
            yield
        finally:
            session.timer = None
    if scope.cancelled_caught:
        raise _broken(session, f"timeout {session.step} {session.peer}: {_missed(session)}")


def _missed(session: Session) -> str:
    """What the step that timed out waited for, and how long (rule 11)."""
    seconds = f"{session.step_seconds:g} s"
    if session.step != "waiting for":
        return f"not taken in {seconds}"
    outstanding = session.conn.outstanding
    command = outstanding[0] if outstanding else None
    what = ("greeting" if command is Command.GREETING
            else "reply to the end of the data" if command is Command.DATA_END
            else f"reply to {command}" if command is not None else "reply")
    return f"no {what} in {seconds}"


def _refusal(session: Session, text: str, **kwargs) -> DeliveryError:
    """Ours not to go on (rule 7: "local"), said in the log."""
    if session.log is not None:
        session.log.error("local", text)
    return DeliveryError(text, kind="local", **kwargs)


def _broken(session: Session, text: str, kind: str = "communication") -> DeliveryError:
    session.is_broken = True
    if session.log is not None:
        session.log.error(kind, text)
    answered = session.conn.state is not ClientState.GREETING      # rule 5
    status = BAD_CONNECTION_STATUS if session.is_open else NO_ANSWER_STATUS   # rule 6
    return DeliveryError(text, status=status, host=session.host if answered else None,
                         kind=kind)


# --- opening -------------------------------------------------------------------------------

async def open_session(candidate: Candidate, address: str, *, hostname: str, mode: str,
                       use_tls: bool, tls_context: ssl.SSLContext, timeouts: Timeouts,
                       log: ConversationLog | None, connection_id: str,
                       server_hostname: str | None) -> Session:
    """A session ready for MAIL, or DeliveryError (with `tls_failed` after a bad handshake,
    or a session that broke over TLS before it was ready).
    `log`: the conversation log of the attempt that opens it (rule 7)."""
    peer = f"{candidate.host}[{address}]:{candidate.port}"
    if log is not None:
        log.note(f"connection {connection_id}: connecting to {peer}"
                 + (" (plain text: the last try with TLS failed)"
                    if mode == "opportunistic" and not use_tls else ""))
    try:
        try:
            with trio.fail_after(timeouts.connect):
                stream = await connect_tcp(address, candidate.port)
        except trio.TooSlowError:
            raise DeliveryError(f"connect to {peer}: timeout") from None
        except OSError as exc:
            # the system's words for errno, not trio's strerror ("Error connecting to
            # ('::1', 25): Connection refused"), which senders read in their bounces
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DeliveryError(f"connect to {peer}: {reason}") from None
    except DeliveryError as error:
        if log is not None:
            log.error("communication", error.text)
        raise
    session = Session(stream, ClientConnection(hostname), candidate.host, address,
                      candidate.port, log, connection_id=connection_id,
                      opened_in=log.name if log is not None else "")
    try:
        with _timed(session):
            greeting = await _reply(session, timeouts.greeting)
            if greeting.code != 220:                 # rule 6: X.4.1 whatever it said
                raise DeliveryError(f"{peer} greeted with {reply_text(greeting)}",
                                    host=candidate.host)
            await _hello(session, timeouts)
            if mode != "off" and use_tls:
                await _start_tls(session, tls_context, timeouts, server_hostname, mode)
            elif mode == "required":
                raise _refusal(session, f"TLS required, but not possible with {peer}",
                               status="4.7.0", host=candidate.host)
        session.is_open = True
        return session
    except BaseException:
        session.is_broken = True
        with trio.CancelScope(shield=True):
            await close_session(session, timeouts)
        raise


async def _hello(session: Session, timeouts: Timeouts) -> None:
    await _send(session, session.conn.ehlo(), timeouts.helo)
    reply = await _reply(session, timeouts.helo)
    if reply.code_class == 5:                    # RFC 5321 §4.1.4: fall back to HELO
        await _send(session, session.conn.helo(), timeouts.helo)
        reply = await _reply(session, timeouts.helo)
    if reply.code_class != 2:
        permanent = reply.code_class == 5                                    # rule 6
        raise DeliveryError(f"{session.peer} refused EHLO/HELO: {reply_text(reply)}",
                            status=_status(reply) if permanent else NO_ANSWER_STATUS,
                            host=session.host, is_permanent=permanent)


async def _start_tls(session: Session, context: ssl.SSLContext, timeouts: Timeouts,
                     server_hostname: str | None, mode: str) -> None:
    conn = session.conn
    if "STARTTLS" not in conn.extensions:
        if mode == "required":
            raise _refusal(session, f"TLS required, but {session.peer} does not offer "
                                    f"STARTTLS", status="4.7.0", host=session.host)
        return
    await _send(session, conn.starttls(), timeouts.helo)
    reply = await _reply(session, timeouts.helo)
    if reply.code != 220:
        if mode == "required":
            raise DeliveryError(f"TLS required, but {session.peer} refused STARTTLS: "
                                f"{reply_text(reply)}", status="4.7.0", host=session.host)
        return                                   # the session goes on in plain text
    tls = trio.SSLStream(session.stream, context, server_hostname=server_hostname)
    try:
        with trio.fail_after(timeouts.tls_handshake):
            await tls.do_handshake()
    except (trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
        session.is_broken = True
        what = "TLS required, but the" if mode == "required" else "the"
        text = f"{what} TLS handshake with {session.peer} failed: {_reason(exc)}"
        if session.log is not None:
            session.log.error("communication", text)
        raise DeliveryError(text, status="4.7.0", host=session.host, tls_failed=True) from None
    session.tls = tls_summary(tls)
    if session.log is not None:
        session.log.tls(tls)
    session.stream = tls
    session.is_tls = True
    conn.start_tls_done()
    try:
        await _hello(session, timeouts)
    except DeliveryError as error:
        # The session broke before TLS was of any use (closed, silent or refused at the
        # EHLO over TLS): as for a failed handshake, "opportunistic" tries again in plain
        # text (core/delivery/deliver.py rule 2).
        error.tls_failed = True
        raise


# --- transactions --------------------------------------------------------------------------

async def run_transaction(session: Session, envelope: Envelope, recipients: Sequence[str],
                          message_path: Path, timeouts: Timeouts
                          ) -> dict[str, tuple[str, str, str, bool]]:
    """address -> (outcome, text, status, is_remote_reply) for every recipient; outcome
    "delivered", "deferred", "failed", or RECIPIENT_LIMIT (rule 8).

    Raises DeliveryError only before MAIL was answered; later failures defer the
    recipients still undecided (their text says why)."""
    conn = session.conn
    needs_utf8 = not envelope.sender.isascii() or not all(r.isascii() for r in recipients)
    if envelope.smtputf8 and not needs_utf8:      # rule 4: the parameter alone is no need
        needs_utf8 = "SMTPUTF8" in conn.extensions or not _header_is_ascii(message_path)
    if needs_utf8 and "SMTPUTF8" not in conn.extensions:
        text = f"{session.peer} does not support SMTPUTF8, which this message needs"
        if session.log is not None:
            session.log.error("local", text)
        return {r: ("failed", text, "5.6.7", False) for r in recipients}
    content: bytes | Path = message_path
    size = envelope.size
    if "8BITMIME" not in conn.extensions:                                    # rule 4
        content = await _seven_bit(message_path)
        if content is not message_path:
            size = len(content) if isinstance(content, bytes) else content.stat().st_size
    try:
        return await _transaction(session, envelope, recipients, content, size, timeouts,
                                  needs_utf8)
    finally:
        if content is not message_path and isinstance(content, Path):
            content.unlink(missing_ok=True)


async def _transaction(session: Session, envelope: Envelope, recipients: Sequence[str],
                       content: bytes | Path, size: int, timeouts: Timeouts,
                       needs_utf8: bool) -> dict[str, tuple[str, str, str, bool]]:
    conn = session.conn
    limit = conn.max_message_octets
    if limit is not None and size > limit:
        text = f"message of {size} octets is over the SIZE limit {limit} of {session.peer}"
        if session.log is not None:
            session.log.error("local", text)
        return {r: ("failed", text, "5.3.4", False) for r in recipients}
    needs_8bit = envelope.body == "8BITMIME" and "8BITMIME" in conn.extensions
    try:
        with _timed(session):
            await _exchange(session, envelope, recipients, content, size, timeouts,
                            needs_8bit, needs_utf8)
        error = None
    except DeliveryError as exc:
        error = exc
    except LocalProtocolError as exc:          # a bug: say so, defer, drop the connection
        session.is_broken = True
        error = _refusal(session, f"internal error talking to {session.peer}: {exc}",
                         status="4.3.0", host=session.host)
    transaction = conn.transaction
    if transaction is not None and _is_bad_sequence(transaction.mail_reply):     # rule 10
        session.is_broken = True
        if session.log is not None:
            session.log.note(f"{session.peer} has a transaction open that is not ours: the "
                             f"connection is dropped and the recipients wait")
    outcomes = transaction.outcomes() if transaction is not None else {}
    results: dict[str, tuple[str, str, str, bool]] = {}
    for address in recipients:
        outcome, reply = outcomes.get(address) or _never_sent(transaction)
        if (outcome is Outcome.PENDING or reply is None) and conn.closing_reply is not None:
            # the 421 the host closed with (RFC 5321 §3.8) says why it was not answered
            results[address] = ("deferred", reply_text(conn.closing_reply),
                                _status(conn.closing_reply), True)
        elif outcome is Outcome.PENDING or reply is None:
            text = error.text if error else f"no answer from {session.peer}"
            results[address] = ("deferred", text,
                                 error.status if error else BAD_CONNECTION_STATUS, False)
        elif reply is transaction.rcpt_replies.get(address) and _is_recipient_limit(reply):
            results[address] = (RECIPIENT_LIMIT, reply_text(reply), RECIPIENT_LIMIT_STATUS,
                                True)
        elif reply is transaction.mail_reply and _is_bad_sequence(reply):         # rule 10
            results[address] = ("deferred", reply_text(reply),
                                "4." + _status(reply).partition(".")[2], True)
        else:
            results[address] = (outcome.value, reply_text(reply), _status(reply), True)
    return results


def _never_sent(transaction) -> tuple[Outcome, Reply | None]:
    """The outcome of a recipient whose RCPT was never sent. Without PIPELINING none follows
    a refused MAIL, whose reply then decides for every recipient, as Transaction.outcomes
    has it decide for those sent: their text is the next hop's answer (a 421 as it closes,
    a 550 that fails them), not "no answer"."""
    reply = transaction.mail_reply if transaction is not None else None
    if reply is None or reply.is_positive:
        return Outcome.PENDING, None
    return (Outcome.DEFERRED if reply.code_class == 4 else Outcome.FAILED), reply


async def _exchange(session: Session, envelope: Envelope, recipients: Sequence[str],
                    content: bytes | Path, size: int, timeouts: Timeouts, needs_8bit: bool,
                    needs_utf8: bool) -> None:
    """`content`: the message file, or the message itself (a small 7-bit copy)."""
    conn = session.conn
    # Set again by the reply to the data, or by the RSET that ends a transaction the
    # server still has open (rule 9): until then reset_session must send RSET however soon
    # the connection is reused.
    session.completed_at = None
    mail = conn.mail(envelope.sender, size=size or None, needs_8bitmime=needs_8bit,
                     needs_smtputf8=needs_utf8)
    if conn.supports_pipelining:                 # RFC 2920: MAIL, RCPT..., DATA in one go
        batch = mail + b"".join(conn.rcpt(r) for r in recipients) + conn.data()
        await _send(session, batch, timeouts.mail)
        await _reply(session, timeouts.mail)
        for _ in recipients:
            await _reply(session, timeouts.rcpt)
        data_reply = await _reply(session, timeouts.data_initiation)
    else:
        await _send(session, mail, timeouts.mail)
        if (await _reply(session, timeouts.mail)).code_class != 2:
            return
        for recipient in recipients:
            await _send(session, conn.rcpt(recipient), timeouts.rcpt)
            await _reply(session, timeouts.rcpt)
            if conn.state is ClientState.CLOSED:     # a 421: nothing more on this connection
                return
        if not conn.transaction.accepted_recipients:
            await _end_open_transaction(session, timeouts)                    # rule 9
            return
        await _send(session, conn.data(), timeouts.data_initiation)
        data_reply = await _reply(session, timeouts.data_initiation)
    if data_reply.code != 354:
        await _end_open_transaction(session, timeouts)                        # rule 9
        return
    if not conn.transaction.mail_reply.is_positive:
        # DATA taken after MAIL was refused: the server has a transaction open that is not
        # ours (a stale one, with another sender); ending it would send this message in it.
        # Dropping the connection makes the server discard it (RFC 5321 §4.1.1.4).
        session.is_broken = True
        if session.log is not None:
            session.log.error("protocol", f"{session.peer} took DATA after refusing MAIL: "
                                          f"connection dropped, nothing sent")
        return
    small = None
    if conn.transaction.accepted_recipients:
        small = content if isinstance(content, bytes) else _read_small(content)
    if small is not None:       # the message and its end in one write
        await _send(session, conn.encode_data_chunk(small), timeouts.data_block,
                    end_data=conn.end_data())
    else:
        if conn.transaction.accepted_recipients:
            async for chunk in _message_chunks(content):
                await _send(session, conn.encode_data_chunk(chunk), timeouts.data_block)
        await _send(session, conn.end_data(), timeouts.data_block)
    await _reply(session, timeouts.data_termination)
    session.completed_at = trio.current_time()


async def _end_open_transaction(session: Session, timeouts: Timeouts) -> None:
    """RSET after a transaction whose MAIL was accepted and that ended without the reply to
    the data (rule 9), while the connection is still of use; the session is clean and
    fresh then. An RSET refused leaves it unusable: what the server holds is unknown."""
    transaction = session.conn.transaction
    if session.is_broken or session.conn.state not in (ClientState.READY, ClientState.MAIL) \
            or transaction is None or transaction.mail_reply is None \
            or not transaction.mail_reply.is_positive:
        return                  # closed, or the server opened no transaction
    await _send(session, session.conn.rset(), timeouts.rset)
    if (await _reply(session, timeouts.rset)).code_class == 2:
        session.completed_at = trio.current_time()
    else:
        session.is_broken = True


_HEADER_END = re.compile(rb"\n\r?\n")   # the empty line after the header section


def _header_is_ascii(path: Path) -> bool:
    """True when the header section of the message at *path* is all ASCII (rule 4). Reads
    HEADER_CHUNK_OCTETS at a time up to the empty line that ends it, no further; read inline
    like _read_small, and only for a message whose client gave SMTPUTF8."""
    carry = b"\n"                  # a message that starts with an empty line has no header
    with open(path, "rb") as handle:
        while chunk := handle.read(HEADER_CHUNK_OCTETS):
            data = carry + chunk
            end = _HEADER_END.search(data)
            if not (data if end is None else data[:end.start()]).isascii():
                return False
            if end is not None:
                return True
            carry = data[-2:]      # an end split across two reads is still found
    return True


async def _seven_bit(path: Path) -> bytes | Path:
    """What to send a host without 8BITMIME (rule 4): `path` itself when the message is
    7-bit or cannot be converted; else its 7-bit copy, the bytes when they fit in
    MESSAGE_CHUNK_OCTETS, else a temporary file beside `path` that the caller removes. The
    file is read once: inline when small, as _read_small reads; in a thread when larger."""
    if os.stat(path).st_size <= MESSAGE_CHUNK_OCTETS:
        return _seven_bit_now(path)
    return await trio.to_thread.run_sync(_seven_bit_now, path)


def _seven_bit_now(path: Path) -> bytes | Path:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw.isascii():
        return path
    try:
        converted = downgrade(raw)
    except Unconvertible:
        return path                         # as received (rule 4)
    if len(converted) <= MESSAGE_CHUNK_OCTETS:
        return converted
    # in the message's own directory: removed with the message if a crash leaves it,
    # and a unique name, since the message may go to several hops at once
    fd, name = tempfile.mkstemp(prefix=f"{path.name}.7bit-", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as handle:
            handle.write(converted)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _read_small(path: Path) -> bytes | None:
    """The whole message when it is small, else None. Read inline, not in a thread: the
    message was spooled moments ago and comes from the page cache, and a thread hop per
    delivered message cost more than the read (see QueueManager._delete)."""
    with open(path, "rb") as handle:
        data = handle.read(MESSAGE_CHUNK_OCTETS + 1)
    return data if len(data) <= MESSAGE_CHUNK_OCTETS else None


async def _message_chunks(path: Path):
    async with await trio.open_file(path, "rb") as message:
        while chunk := await message.read(MESSAGE_CHUNK_OCTETS):
            yield chunk


FRESH_SECONDS = 2.0  # a connection that just finished a transaction is reused without RSET


async def reset_session(session: Session, timeouts: Timeouts) -> bool:
    """Make an idle connection ready for the next transaction; False when it is no longer
    usable. After a transaction that ended with the reply to the data (RFC 5321 §4.1.1.4:
    that reply clears the transaction) or with an RSET (rule 9) a connection used moments
    ago needs no RSET; an
    older one is checked with RSET, since the server may have dropped it meanwhile."""
    if not session.is_usable:
        return False
    if session.completed_at is not None \
            and trio.current_time() - session.completed_at < FRESH_SECONDS:
        return True
    try:
        with _timed(session):
            await _send(session, session.conn.rset(), timeouts.rset)
            return (await _reply(session, timeouts.rset)).code_class == 2
    except (DeliveryError, LocalProtocolError):
        session.is_broken = True
        return False


async def close_session(session: Session, timeouts: Timeouts) -> None:
    """QUIT when the session allows it, close the stream. Never raises (except Cancelled
    from outside a shield)."""
    with trio.move_on_after(timeouts.quit):
        if not session.is_broken and session.conn.state in (ClientState.READY,
                                                            ClientState.GREETED,
                                                            ClientState.REFUSED):
            try:
                with _timed(session):
                    await _send(session, session.conn.quit(), timeouts.quit)
                    await _reply(session, timeouts.quit)
            except (DeliveryError, LocalProtocolError):
                pass
        try:
            await session.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError):
            pass
    session.is_broken = True
    if session.log is not None:
        session.log.note(f"connection {session.connection_id} to {session.peer} closed")
