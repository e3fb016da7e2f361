"""Delivering one message to one next hop: the trio driver of the sans-IO SMTP client.

What this module owns
    `Deliverer.deliver(hop, envelope, recipients, message_path)` -> one `RecipientResult`
    per recipient. It resolves the hop (core/delivery/mx.py), borrows a connection from the
    pool (core/delivery/pool.py: `smtp.max_outgoing`, reuse per next hop with RSET between
    messages, each for at most its REUSE_TIME_LIMIT_SECONDS; which ones go back: rule 1),
    speaks SMTP through `core.smtp.client.ClientConnection` and streams the message file.
    It only moves bytes and time; what the replies mean is the client's.

Rules
    1. Candidates (MX hosts by preference, each address in order) are tried in turn while
       *connecting* fails: refused/unreachable/timeout, a greeting other than 220, a failed
       EHLO/HELO, or TLS required but impossible. A host that refused HELO with a 5xx
       (core/delivery/session.py rule 6) refused us for good: its other addresses are
       skipped, and when no host after it takes the session, its refusal fails the
       recipients at once instead of deferring them. A greeting other than 220 is no such
       refusal, a 5xx one too (a node in maintenance greeting 554): it fails temporarily
       (session.py rule 6), as Postfix's smtp_skip_5xx_greeting (default yes) has it:
       the next address is tried, and a recipient that an earlier address deferred keeps
       that 4xx; a 5xx to EHLO and then HELO is the refusal. A host that took the session
       answers each recipient (Transaction.outcomes): its 2xx delivers and its 5xx fails,
       for good.
       What it defers without taking the message (`_not_taken`: a 4xx to MAIL — a 421 as
       it closes, a 451 —, to the recipient's RCPT, to DATA or to the final "."; a
       connection closed or lost before the "." was sent), and what a connection it closed
       left untried, go to the next candidate address in the same attempt, once this one
       has had every recipient: the same host's other addresses first, then the less
       preferred hosts', and so on down the list (`_servers`). Postfix's smtp(8) treats
       every address as a server of its own and "will try to deliver the mail to an
       alternate host"; its smtp_trouble.c keeps a recipient with a soft error at a
       non-final server for the next one; RFC 5321 §5.1: "try ... each of the relevant
       addresses ... until a delivery attempt succeeds". The nodes behind one name need
       not share greylisting or queue state. A greylisting primary thus leaves one
       recipient to the backup and delivers the others itself. Deferred by every address,
       a recipient keeps the answer of the last host that took the session (Postfix
       reports the last server's reply): a later address that cannot be reached leaves the
       earlier host's 4xx, the reply a sender can act on, where "connect to ..." would say
       less. A 5xx from a host less preferred than one that deferred the recipient, left
       it untried, or failed temporarily before it took the session (unreachable, any
       greeting but 220, a 4xx to EHLO/HELO: it has had no recipient yet) — to HELO, or
       at its RCPT, "550 relay access denied" — does not fail it either
       (`_after_backup_refusal`): it keeps the earlier host's 4xx, else its connect
       failure, the 5xx kept beside it for the admin (RecipientResult.note, never in
       its text: shown after it in the events and a DSN's human-readable part, never in
       its Diagnostic-Code, core/delivery/bounce.py rule 3). A misconfigured backup says
       nothing about the recipient, and the primary takes it at the retry (Postfix
       bounces it there; a gateway must not lose mail to a broken backup, least of all
       while the primary is down or busy). A 5xx from a host as preferred as every one
       that failed temporarily stands, as does that of the only host. Not passed on: a
       recipient a host refused for its limit of recipients (rule 7) while the
       connection stays open (the next transaction has it; left untried when the host
       then closes the connection, it goes on as any untried one: the host took nothing
       for it), and one whose "." was sent and never answered (the connection lost or
       silent): the host may have taken the message (RFC 5321 §4.5.3.2.6, §6.1), so it
       is deferred and waits for the retry, never a second copy at once. Nor to our own
       listener (rule 8): the list ends before it.
       Pooling follows the same order. Only a connection to a host of the best preference
       among the next hop's candidates (`_is_best`; hosts of equal preference all are) is
       given back to the pool, also the one whose deferrals went on, as soon as they do;
       any other is closed when the attempt is done with it. Postfix caches sessions only
       to best-preference MX hosts (SMTP_FEATURE_BEST_MX): a connection to a backup,
       opened while the primary was unreachable for a moment or after a 4xx, would
       otherwise take the next hop's next messages to the backup while the primary takes
       mail again. A pooled connection, to one best host of several or to one address of
       a best host, hands what it defers on to all the other addresses in order, the
       preferred ones too: none of them has been tried in this attempt. Each connection is
       used for at most core/delivery/pool.py REUSE_TIME_LIMIT_SECONDS (Postfix's
       smtp_connection_reuse_time_limit). This rule once let every answer after an
       accepted MAIL stand, and a recipient a backup MX would have taken waited for the
       retry; then it handed on only to less preferred hosts — never to a host's other
       address, nor from a pooled backup connection to the primary — and pooled every
       connection but the one handed on to, closing the primary's.
    2. `smtp.tls.outbound`: "off" never sends STARTTLS. "opportunistic" uses STARTTLS when
       offered, without certificate verification (RFC 7435: self-signed certificates are the
       norm between MTAs, and an unverified TLS session still beats plain text); a failed
       handshake leaves the connection unusable (RFC 3207 §4.1), so we reconnect to the same
       address without TLS, once; so do we when the session breaks after the handshake,
       before it was of use (closed, silent, or EHLO/HELO refused over TLS: hosts whose
       TLS is broken past the handshake), as Postfix's "may" level does on a TLS session
       failure; plain text's answer decides then. "required" never falls back: it
       delivers only over TLS (also unverified — encryption,
       not authentication: we have no MTA-STS/DANE policy to verify against) and otherwise
       defers with "TLS required" in the error.
    3. Every read and write has a deadline from trio's clock — RFC 5321 §4.5.3.2 values,
       named below. A deadline hit is a connection failure, never a hang.
    4. Exceptions are caught at one boundary, per delivery attempt: the recipients still
       undecided are deferred with the error text; the message is never lost (the queue
       manager keeps it). A bug (LocalProtocolError) is deferred too, and logged in the text.
    5. Events: one CONNECTED_TO for every connection an attempt uses (guide Table 7-6):
       each one it tries to open — result CONNECTION_SUCCEEDED, or CONNECTION_FAILED with
       the error when it gives no session ready for MAIL (refused, silent, a bad greeting,
       TLS required but impossible; a failed opportunistic handshake too, before its plain
       retry, which has its own; CUT_BY_STOP when the stop ends the attempt while it waits,
       so the admin sees which host it waited on) — with data `connection`
       CONNECTION_ACTUAL, and a pooled one it reuses, CONNECTION_CACHED. A pooled
       connection's event waits for its first transaction of the attempt (or its RSET),
       since only that shows whether the next hop
       still had it open: CONNECTION_FAILED with the reason when it was dead (closed while
       idle, a 421 at MAIL or at RSET) and a fresh connection, with its own event, follows;
       the report never calls a connection succeeded that the attempt had to replace. A
       refusal of ours (a message over the host's SIZE, needing SMTPUTF8 it lacks:
       core/delivery/session.py rule 4) replaces nothing: the connection is still open,
       and a fresh one to the same host would get the same refusal. Each
       names its connection id, the peer and whether it is under TLS (and which) in `info`,
       and carries `tls` in its data.
       Per-recipient events (DELIVERED, DEFERRED, DELIVERY_FAILED) and counters are the
       queue manager's, which knows the message.
    6. Outbound conversation logs (`diagnostics.conversation.outbound`): one
       `ConversationLog` per call of `deliver` — a delivery attempt of a message to a next
       hop (the guide: "one log is generated for each message delivery attempt") — named
       by its queue id and attempt number, written when the attempt ends, whatever becomes
       of the connection. An attempt that cannot connect has one too. A connection's
       set-up (greeting, EHLO, STARTTLS) is in the log of the attempt that opened it; an
       attempt that reuses it says "reusing connection <id>", and a connection waiting
       in the pool belongs to no log (its QUIT at the idle close is not logged), from the
       moment it goes back: one whose deferrals went on (rule 1) leaves the log then.
    7. Recipients go MAX_RECIPIENTS_PER_TRANSACTION to a transaction, each on a clean
       session: one that ended with every recipient or the DATA refused was closed with
       RSET (core/delivery/session.py rule 9), and a 503 to a later MAIL sends that batch
       again on a fresh connection (session.py rule 10, `_closed_before_taking`). A
       connection gone after a transaction that had all its answers — the host hung up
       after refusing the data, answered that RSET with a 421 or nothing, or refused it
       (what it holds is then unknown, and we drop it) — is replaced by one fresh
       connection, to the same server first, for the next batch (`_ended_before_closing`);
       when a later server takes it (so for a stale connection's replacement), that
       server is handed on to as rule 1 says: the first's 4xx deferrals go with the
       batch, the limit per transaction its own.
       That batch was once left untried, deferred for the retry with a delay notice
       (review19 r2 R1). Recipients a connection that ended
       otherwise leaves untried (a 503 to its first MAIL, a 421 or a loss inside a
       transaction) are handed on as rule 1 says; the last server's read "connection
       ended before these recipients were tried: <why>" (`_untried`). Those a
       host refuses only for its limit of recipients per transaction (session.py rule 8:
       452 4.5.3, or 552 "too many recipients") are sent at once in further transactions
       of the attempt, each of at most as many recipients as the host answered before its
       limit in the one that hit it, until every recipient has had its answer: flow control, not a
       failure (RFC 5321 §4.5.3.1.10), so the message does not wait in the slow queue
       with a delay notice for it (interop finding 2; Exim does the same). They follow on
       the same connection, or on a new one when the host closed it after the transaction
       it took (found when the next MAIL gets no answer, or a 421 and the close, as a
       stale pooled connection is: `_closed_before_taking`).
       Only a transaction whose host took none of them defers them (4.5.3): that limit is
       no longer flow control.
    8. Mail that would come back to this gateway fails at once with LOOP_STATUS 5.4.6,
       "mail for <next hop> loops back to myself" (Postfix's words), where it went round
       until the hop limit refused it (core/smtp/reception.py MAX_HOPS: a hundred passes,
       each accepted and delivered). Before connecting, a candidate address that is our
       own SMTP listener (`_is_own_listener`: smtp.port, and an address in smtp.listen,
       or any address of this machine where smtp.listen has its family's wildcard) is us:
       that host and every less preferred one are dropped (RFC 5321 §5.1: a host in its
       own MX list discards itself and the hosts after it), and when no host is left the
       recipients fail. A next hop on this machine that is another gateway or MTA is none
       of these: another port, or an address we do not listen on. The next hop's name is
       not compared with ours (Postfix's "greeted me with my own hostname"): ours is the
       machine's name unless smtp.hostname is set, often a generic one ("mail",
       "localhost"), and a backup MX behind NAT would fail mail its primary only deferred;
       a loop hidden behind NAT still ends at the hop limit.
    9. A recipient's result that can no longer change (delivered, failed) goes to the
       caller's `on_result` as soon as it is known, before `deliver` returns: an attempt
       cancelled at a stop returns nothing, and the queue manager must still record what
       the next hop took (core/spool/manager.py rule 7), else the restart sends it again.
       Handing on makes an attempt run long after its first host took some recipients.

Never: keep a message in memory (it is streamed in MESSAGE_CHUNK_OCTETS pieces), read the
wall clock for a timeout, or let a connection outlive its pool token.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from core.delivery.bounce import with_note
from core.delivery.mx import Candidate, LookupFailed, Resolver
from core.delivery.pool import (IDLE_CONNECTION_SECONDS, REAP_INTERVAL_SECONDS, ConnectionPool,
                                Slot)
from core.delivery.routing import NextHop
from core.delivery.session import (BAD_CONNECTION_STATUS, LOOP_STATUS, RECIPIENT_LIMIT,
                                   DeliveryError, Session, Timeouts, close_session,
                                   open_session, reply_text, reset_session, run_transaction)
from core.smtp.conversation import ConversationLog, WriteFailures
from shared.clock import SYSTEM_CLOCK, WallClock
from shared.events import (CONNECTION_ACTUAL, CONNECTION_CACHED, CONNECTION_FAILED,
                           CONNECTION_SUCCEEDED, Action)
from shared.spool import Envelope

__all__ = ["Deliverer", "RecipientResult", "Timeouts", "DeliveryError", "unverified_tls_context",
           "MAX_RECIPIENTS_PER_TRANSACTION"]

# RFC 5321 §4.5.3.1.8: a server must take at least 100 recipients per transaction.
MAX_RECIPIENTS_PER_TRANSACTION = 100
# Why a pooled connection's CONNECTED_TO failed (rule 5), where no reply of the next hop
# says it: reset_session tells only that RSET did not get a 2xx.
RSET_FAILED = "RSET before reuse failed (closed by the next hop, or refused)"
LOST_BEFORE_TAKING = "lost before the next hop took the message"
UNTRIED = "connection ended before these recipients were tried"
CUT_BY_STOP = "cut by the stop before the session was ready"


@dataclass(frozen=True)
class RecipientResult:
    """The outcome for one recipient at one next hop."""
    address: str
    outcome: str                    # "delivered" | "deferred" | "failed"
    text: str                       # the deciding reply ("550 5.1.1 no such user") or our error
    status: str                     # RFC 3463 status for DSNs ("2.0.0", "4.4.1", "5.1.1")
    remote_mta: str | None = None
    is_remote_reply: bool = False   # text is an SMTP reply of the remote host
    # what delivery adds for the admin, never part of `text` (a backup's refusal: rule 1)
    note: str | None = None

    @property
    def full_text(self) -> str:
        """`text` with the note after it, as the events show it (`with_note`)."""
        return with_note(self.text, self.note)


def _gateway_name(settings: Mapping) -> str:
    from shared.home import gateway_name
    return gateway_name(settings)


class Deliverer:
    """Delivers messages over SMTP. Start `run` in a nursery for idle-connection upkeep."""

    def __init__(self, *, settings: Callable[[], Mapping], events, clock: WallClock = SYSTEM_CLOCK,
                 resolver: Resolver | None = None, hostname: Callable[[], str] | None = None,
                 diagnostics_dir: Path | None = None, tls_context: ssl.SSLContext | None = None,
                 timeouts: Timeouts | None = None,
                 idle_seconds: float = IDLE_CONNECTION_SECONDS) -> None:
        self.settings = settings
        self.events = events
        self.clock = clock
        self.resolver = resolver or Resolver(settings)
        self.hostname = hostname or (lambda: _gateway_name(settings()))
        self.diagnostics_dir = Path(diagnostics_dir) if diagnostics_dir else None
        self.tls_context = tls_context or unverified_tls_context()
        self.timeouts = timeouts or Timeouts()
        self.idle_seconds = idle_seconds
        self.pool = ConnectionPool(int(settings()["smtp.max_outgoing"]), self._close)
        self.log_failures = WriteFailures(events, "diagnostics.conversation.outbound")

    # --- lifecycle -----------------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Close idle connections after `idle_seconds`; close them all when cancelled."""
        task_status.started()
        try:
            while True:
                await trio.sleep(REAP_INTERVAL_SECONDS)
                self.pool.set_limit(int(self.settings()["smtp.max_outgoing"]))
                await self.pool.shed()
                await self.pool.reap(self.idle_seconds)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.pool.close_all()

    # --- delivering --------------------------------------------------------------------------
    async def deliver(self, hop: NextHop, envelope: Envelope, recipients: Sequence[str],
                      message_path: Path, settings: Mapping | None = None, *,
                      on_result: Callable[[RecipientResult], None] | None = None
                      ) -> list[RecipientResult]:
        """Deliver *message_path* to *recipients* (all routed to *hop*); never raises
        except trio.Cancelled. Returns one result per recipient, in order; `on_result`
        hears each delivered or failed one as soon as it is decided (rule 9)."""
        settings = settings if settings is not None else self.settings()
        self.pool.set_limit(int(settings["smtp.max_outgoing"]))
        try:
            found = await self.resolver.candidates(hop, settings)
        except LookupFailed as failure:
            outcome = "failed" if failure.is_permanent else "deferred"
            return [RecipientResult(r, outcome, failure.text, failure.status) for r in recipients]
        found, ours = _before_self(found, settings)                               # rule 8
        if not found:
            text = _loops(hop, f"{ours} is this gateway's own SMTP listener")
            return [RecipientResult(r, "failed", text, LOOP_STATUS) for r in recipients]
        mode = settings["smtp.tls.outbound"]
        servers = _servers(found)
        results: dict[str, RecipientResult] = {}
        earlier: dict[str, RecipientResult] = {}   # deferred there, tried at a later server
        handed: dict[str, int] = {}     # handed on: the best preference that deferred it
        unreached: dict[str, RecipientResult] = {}  # that preference's connect failure

        def soft_failure(candidate: Candidate, error: DeliveryError) -> None:
            # A host we could get no session from has not had the recipients: like one
            # that left them untried, it hands them on at its preference (rule 1). Those
            # already delivered or failed (rule 9: published) stay as they are.
            for address in recipients:
                decided = address in results and results[address].outcome != "deferred"
                if not decided and candidate.preference < handed.get(address, float("inf")):
                    handed[address] = candidate.preference
                    unreached[address] = RecipientResult(address, "deferred", error.text,
                                                         error.status, error.host)

        def hand_on(addresses: Sequence[str], server: Session) -> None:
            # `server` has had its say on `addresses`: the next server has them, handed on
            # at its preference (rule 1)
            preference = _preference(found, server.host)
            for address in addresses:
                handed[address] = min(handed.get(address, preference), preference)
                if address in results:
                    earlier[address] = results.pop(address)

        log = self._attempt_log(settings, hop, envelope, len(recipients))
        slot: Slot | None = await self.pool.checkout((hop.key, mode))
        cached: Session | None = None     # a pooled connection not yet reported (rule 5)
        untried = UNTRIED                 # the text of recipients no connection was left for
        try:
            if slot.session is not None:
                session = slot.session
                session.log = log
                if log is not None:
                    tls = f"TLS {session.tls}" if session.tls else "no TLS"
                    set_up = (f"its set-up is in the log of attempt {session.opened_in}, if "
                              f"kept" if session.opened_in else "its set-up was not logged "
                              "(outbound logging was off when it opened)")
                    log.note(f"reusing connection {session.connection_id} to {session.peer} "
                             f"({tls}; {set_up})")
                if await reset_session(session, self.timeouts):
                    cached = session        # its CONNECTED_TO waits for a transaction (rule 5)
                else:
                    self._connected(envelope, hop, session, CONNECTION_CACHED,
                                    failure=RSET_FAILED)
                    await self._close(session)
                    slot.session = None
            reused = slot.session is not None
            choices = servers               # those the session was opened from
            if reused:                      # with a best host: the others may come first
                rest = [s for s in servers if not _is_at(s, slot.session)]
            else:
                slot.session = await self._connect(servers, hop, settings, mode, envelope,
                                                   log, soft_failure)
                rest = _after(servers, slot.session)
            todo = list(recipients)
            passed: list[str] = []          # this server's to pass on to the next (rule 1)
            per_transaction = MAX_RECIPIENTS_PER_TRANSACTION
            while todo:
                chunk, todo = todo[:per_transaction], todo[per_transaction:]
                outcomes = await run_transaction(slot.session, envelope, chunk, message_path,
                                                 self.timeouts)
                stale = reused and _closed_before_taking(slot.session, outcomes)
                if cached is not None:
                    self._connected(envelope, hop, cached, CONNECTION_CACHED,
                                    failure=_stale_reason(cached, outcomes) if stale else None)
                    cached = None
                if stale:
                    # The connection (from the pool, or after a transaction the host took:
                    # some close then, silently or with a 421 that answers our next MAIL)
                    # went stale before the server could take the message: one fresh
                    # connection before anything is deferred.
                    gone = slot.session
                    await self._close(slot.session)
                    slot.session = None
                    slot.session = await self._connect(choices, hop, settings, mode, envelope,
                                                       log, soft_failure)
                    if not _same_server(slot.session, gone):    # a later server took it
                        if log is not None and passed:
                            log.note(f"{len(passed)} recipient(s) {gone.peer} deferred go "
                                     f"to {slot.session.peer} too")
                        hand_on(passed, gone)
                        todo, passed = passed + chunk + todo, []
                        choices = _from(choices, slot.session)
                        per_transaction = MAX_RECIPIENTS_PER_TRANSACTION
                        chunk, todo = todo[:per_transaction], todo[per_transaction:]
                    rest = _after(choices, slot.session)
                    outcomes = await run_transaction(slot.session, envelope, chunk,
                                                     message_path, self.timeouts)
                answered_by = slot.session          # whose answers `outcomes` are
                over = [a for a, (outcome, *_) in outcomes.items()
                        if outcome == RECIPIENT_LIMIT]
                answered = len(chunk) - len(over)
                if over and answered:                                       # rule 7
                    per_transaction = min(per_transaction, answered)
                    todo = over + todo
                    if log is not None:
                        log.note(f"{answered_by.host} answered {answered} of {len(chunk)} "
                                 f"recipients before its limit: the other {len(over)} "
                                 f"follow, at most {per_transaction} a transaction")
                for address, (outcome, text, status, remote) in outcomes.items():
                    if outcome == RECIPIENT_LIMIT:
                        if answered:
                            continue
                        outcome = "deferred"
                    elif outcome == "deferred" and _not_taken(answered_by, address):
                        passed.append(address)
                    result = _after_backup_refusal(
                        RecipientResult(address, outcome, text, status, answered_by.host,
                                        remote), found, handed, earlier, unreached)
                    results[address] = result
                    if result.outcome != "deferred" and on_result is not None:
                        on_result(result)                                   # rule 9
                reused = True
                if todo and slot.session.is_usable:
                    continue
                if todo and _ended_before_closing(slot.session, chunk):         # rule 7
                    # The transaction had all its answers, and the connection went after
                    # it (at its RSET, or closed): the next transaction has had none, and
                    # one fresh connection takes it, as a stale one is replaced.
                    if log is not None:
                        log.note(f"{answered_by.peer} can take no further transaction "
                                 f"on this connection: {len(todo)} recipient(s) follow "
                                 f"on a new one")
                    choices = _from(choices, slot.session)   # the same server first
                    await self._close(slot.session)
                    slot.session = None
                    slot.session = await self._connect(choices, hop, settings, mode, envelope,
                                                       log, soft_failure)
                    if not _same_server(slot.session, answered_by):
                        # That server took no new connection, a later one did: it has the
                        # ones the first deferred unsent too, as at a hand-on (review19
                        # r5 R3: they waited for the retry, or skipped this server). So
                        # for a stale connection's replacement above.
                        if log is not None and passed:
                            log.note(f"{len(passed)} recipient(s) {answered_by.peer} "
                                     f"deferred go to {slot.session.peer} too")
                        hand_on(passed, answered_by)
                        todo, passed = passed + todo, []
                        choices = _from(choices, slot.session)
                        per_transaction = MAX_RECIPIENTS_PER_TRANSACTION
                    rest = _after(choices, slot.session)
                    reused = False
                    continue
                # This server has had its say: what it deferred without taking the
                # message, and what its closed connection left untried, goes to the next.
                if todo:
                    untried = _untried(answered_by, outcomes)
                deferred = sum(results[a].is_remote_reply for a in passed)  # by a 4xx
                passed += todo
                if not passed or not rest:
                    break                   # the last server's deferrals stand (rule 1)
                if log is not None:
                    unanswered = len(passed) - deferred     # the limit's, or unheard
                    said = [f"deferred {deferred} recipient(s) without taking the message"
                            ] if deferred else []
                    said += [f"left {unanswered} untried (the connection closed)"
                             ] if unanswered else []
                    log.note(f"{answered_by.peer} {' and '.join(said)}: the next address is "
                             f"tried")
                hand_on(passed, answered_by)
                await self._give_back(slot, found)      # the next messages may use it
                slot = None
                slot = await self.pool.checkout((hop.key, mode), reuse=False)
                try:
                    slot.session = await self._connect(rest, hop, settings, mode, envelope,
                                                       log)
                except DeliveryError as error:
                    if error.is_permanent:
                        raise
                    break                   # no later server answered: the 4xx stand
                choices, rest = rest, _after(rest, slot.session)
                todo, passed = passed, []
                per_transaction = MAX_RECIPIENTS_PER_TRANSACTION    # the new server's own
                reused = False
            _keep(results, earlier)
        except DeliveryError as error:
            if not error.is_permanent:      # a host refusing us for good fails them (rule 1)
                _keep(results, earlier)
            self._fill(results, recipients, error.text, error.status, error.host,
                       "failed" if error.is_permanent else "deferred")
            for address in handed:          # unless a more preferred host deferred them
                results[address] = _after_backup_refusal(results[address], found, handed,
                                                         earlier, unreached)
        except Exception as error:   # boundary (rule 4): defer, never lose the message
            text = f"internal error: {type(error).__name__}: {error}"
            if log is not None:
                log.error("local", text)
            _keep(results, earlier)
            self._fill(results, recipients, text, "4.3.0", None)
        finally:
            if cached is not None:          # the attempt ended before its transaction did
                self._connected(envelope, hop, cached, CONNECTION_CACHED,
                                failure=None if cached.is_usable else LOST_BEFORE_TAKING)
            if slot is not None:
                await self._give_back(slot, found)  # a QUIT it sends is still this attempt's
            if log is not None and self.diagnostics_dir is not None:
                with trio.CancelScope(shield=True):
                    await log.close(self.diagnostics_dir, self.log_failures)
        self._fill(results, recipients, untried, BAD_CONNECTION_STATUS, None)
        return [results[r] for r in recipients]

    @staticmethod
    def _fill(results: dict, recipients: Sequence[str], text: str, status: str,
              host: str | None, outcome: str = "deferred") -> None:
        for address in recipients:
            if address not in results:
                results[address] = RecipientResult(address, outcome, text, status, host)

    def _attempt_log(self, settings: Mapping, hop: NextHop, envelope: Envelope,
                     recipients: int) -> ConversationLog | None:
        """The conversation log of this delivery attempt (rule 6), or None."""
        if self.diagnostics_dir is None \
                or settings.get("diagnostics.conversation.outbound", "off") == "off":
            return None
        attempt = envelope.attempts + 1     # the queue manager counts it once it has ended
        return ConversationLog(
            settings, "outbound", f"{envelope.queue_id}-{attempt}",
            f"outbound delivery attempt {attempt} of {envelope.queue_id} to next hop "
            f"{hop.key}, {recipients} recipient(s)", now=self.clock.now)

    async def _give_back(self, slot: Slot, found: Sequence[Candidate]) -> None:
        """End the attempt's use of `slot`: back to the pool when its session is open, with
        a best-preference host of `found` and within the pool's reuse time limit (rule 1),
        else closed (its QUIT in the attempt's log) and the slot released."""
        session: Session | None = slot.session
        if session is not None and session.is_usable and _is_best(found, session) \
                and self.pool.is_reusable(slot):
            session.log = None      # a pooled connection belongs to no attempt (rule 6)
            self.pool.checkin(slot)
            return
        try:
            if session is not None:
                await self._close(session)
        finally:
            self.pool.release(slot)

    async def _close(self, session: Session) -> None:
        with trio.CancelScope(shield=True):
            await close_session(session, self.timeouts)

    async def _connect(self, found: list[Candidate], hop: NextHop, settings: Mapping, mode: str,
                       envelope: Envelope, log: ConversationLog | None,
                       soft_failure: Callable[[Candidate, DeliveryError], None] | None = None
                       ) -> Session:
        """The first candidate address that gives a ready session (rule 1); `log`: the
        attempt's (rule 6); `soft_failure` hears each address that failed temporarily.
        Raises the first permanent refusal when none does, else the last error."""
        hostname = await trio.to_thread.run_sync(self.hostname)
        last: DeliveryError | None = None
        refused: DeliveryError | None = None
        refused_hosts: set[str] = set()     # `found` may list a host's addresses one by one
        for candidate in found:
            if candidate.host in refused_hosts:
                continue
            for address in candidate.addresses:
                use_tls = mode != "off"
                while True:
                    connection_id = secrets.token_hex(6)
                    try:
                        session = await open_session(
                            candidate, address, hostname=hostname, mode=mode, use_tls=use_tls,
                            tls_context=self.tls_context, timeouts=self.timeouts,
                            log=log, connection_id=connection_id,
                            server_hostname=_sni_name(candidate.host))
                    except trio.Cancelled:
                        # the stop cut the attempt (core/spool/manager.py rule 7) while it
                        # waited for this host: the events say which one (rule 5)
                        self._record_connected(
                            envelope, hop, connection_id,
                            (candidate.host, address, candidate.port),
                            result=CONNECTION_FAILED, connection=CONNECTION_ACTUAL,
                            info=f"{candidate.host}[{address}]:{candidate.port}: "
                                 f"{CUT_BY_STOP}", tls=False)
                        raise
                    except DeliveryError as error:
                        last = error
                        self._record_connected(
                            envelope, hop, connection_id,
                            (candidate.host, address, candidate.port),
                            result=CONNECTION_FAILED, connection=CONNECTION_ACTUAL,
                            info=error.text, tls=False)
                        if error.tls_failed and mode == "opportunistic" and use_tls:
                            use_tls = False        # rule 2: reconnect without TLS
                            continue
                        if not error.is_permanent and soft_failure is not None:
                            soft_failure(candidate, error)
                        break
                    self._connected(envelope, hop, session, CONNECTION_ACTUAL)
                    return session
                if last.is_permanent:   # the host refused us, at any address: the next host
                    refused = refused or last
                    refused_hosts.add(candidate.host)
                    break
        assert last is not None   # candidates() never returns an empty list
        raise refused or last

    def _connected(self, envelope: Envelope, hop: NextHop, session: Session,
                   connection: str, *, failure: str | None = None) -> None:
        """The CONNECTED_TO of a session ready for MAIL, new or reused, or of a reused one
        found dead (`failure`: why) (rule 5)."""
        tls = f"TLS {session.tls}" if session.is_tls else "no TLS"
        info = f"{connection} connection to {session.peer}, {tls}"
        self._record_connected(envelope, hop, session.connection_id,
                               (session.host, session.address, session.port),
                               result=CONNECTION_FAILED if failure else CONNECTION_SUCCEEDED,
                               connection=connection,
                               info=f"{info}: {failure}" if failure else info,
                               tls=session.is_tls)

    def _record_connected(self, envelope: Envelope, hop: NextHop, connection_id: str,
                          peer: tuple[str, str, int], *, result: str, connection: str,
                          info: str, tls: bool) -> None:
        """The one writer of CONNECTED_TO (rule 5); `peer` is (host, address, port)."""
        host, address, port = peer
        self.events.record(
            Action.CONNECTED_TO, queue_id=envelope.queue_id, connection_id=connection_id,
            result=result, info=info,
            data={"host": host, "address": address, "port": port, "tls": tls,
                  "connection": connection, "next_hop": hop.key})


def unverified_tls_context() -> ssl.SSLContext:
    """Client context for STARTTLS: encrypt, do not verify (rule 2)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _sni_name(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None                    # SNI carries names only (RFC 6066 §3)
    except ValueError:
        return host


def _stale_reason(session, outcomes: Mapping) -> str:
    """Why a pooled connection counts as dead (rule 5) after the first transaction it was
    given, which found it stale: the next hop's answer to MAIL (a 421 it sent on closing),
    else the error its recipients were deferred with."""
    transaction = session.conn.transaction
    mail_reply = transaction.mail_reply if transaction is not None else None
    if mail_reply is not None and not mail_reply.is_positive:
        return reply_text(mail_reply)
    return next((text for outcome, text, *_ in outcomes.values() if outcome == "deferred"),
                LOST_BEFORE_TAKING)


def _loops(hop: NextHop, why: str) -> str:
    """The text of a loop back to this gateway (rule 8): Postfix's, and why we know."""
    return f"mail for {hop.name} loops back to myself: {why}"


def _before_self(found: list[Candidate], settings: Mapping
                 ) -> tuple[list[Candidate], str | None]:
    """The candidates before the first that is this gateway, and that one's
    "host[address]:port" (None when none is) (rule 8)."""
    for index, candidate in enumerate(found):
        for address in candidate.addresses:
            if _is_own_listener(address, candidate.port, settings):
                return found[:index], f"{candidate.host}[{address}]:{candidate.port}"
    return found, None


def _is_own_listener(address: str, port: int, settings: Mapping) -> bool:
    """Does our SMTP listener take connections to `address`:`port` (rule 8)?"""
    if port != int(settings["smtp.port"]):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    listen = {ipaddress.ip_address(entry) for entry in settings["smtp.listen"]}
    if ip in listen:
        return True
    wildcard = ipaddress.ip_address("0.0.0.0" if ip.version == 4 else "::")
    return wildcard in listen and _is_this_machine(ip)


def _is_this_machine(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Is `ip` an address of this machine? The route to one of our own addresses has that
    address as its source, so a UDP socket "connected" to it (no packet is sent) names it
    as its own; loopback addresses all are. Binding a socket to it would not tell: with
    net.ipv4.ip_nonlocal_bind (keepalived, HAProxy hosts) any address binds."""
    if ip.is_loopback:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(ip), 9))
            source = ipaddress.ip_address(probe.getsockname()[0].partition("%")[0])
        except (OSError, ValueError):      # no route to it: not ours
            return False
    return source == ip


def _not_taken(session, address: str) -> bool:
    """Can the host not have the message for `address`, which it deferred? Then the next
    host may have it with no risk of a second copy (rule 1): the host refused the
    recipient (a 4xx to MAIL or to its RCPT) or the message (a 4xx to DATA or to the final
    "."), or the final "." was never sent (the connection closed or was lost before). A
    "." sent and never answered may have been taken (RFC 5321 §4.5.3.2.6, §6.1)."""
    transaction = session.conn.transaction
    if transaction is None:
        return True
    reply = transaction.rcpt_replies.get(address)
    if reply is not None and not reply.is_positive:
        return True
    return not transaction.is_data_sent or transaction.final_reply is not None


def _preference(found: Sequence[Candidate], host: str | None) -> float:
    """`host`'s best MX preference among the candidates (none: after them all)."""
    return min((c.preference for c in found if c.host == host), default=float("inf"))


def _after_backup_refusal(result: RecipientResult, found: Sequence[Candidate],
                          handed: Mapping[str, int], earlier: Mapping[str, RecipientResult],
                          unreached: Mapping[str, RecipientResult]) -> RecipientResult:
    """`result`, unless it fails a recipient that a more preferred host deferred, left
    untried or gave no session (`handed`) at a less preferred one: then the earlier
    deferral (that host's 4xx, else its connect failure), with the 5xx as its note, its
    text untouched (rule 1)."""
    address = result.address
    if result.outcome != "failed" or address not in handed \
            or _preference(found, result.remote_mta) <= handed[address]:
        return result
    kept = earlier.get(address) or unreached.get(address) \
        or RecipientResult(address, "deferred", UNTRIED, BAD_CONNECTION_STATUS)
    backup = f"{result.remote_mta} answered {result.text}" if result.is_remote_reply \
        else result.text
    return replace(kept, note=f"{kept.note}, then {backup}" if kept.note else backup)


def _keep(results: dict, earlier: Mapping) -> None:
    """Recipients an earlier host deferred keep its answer where no later host took the
    session to give one (rule 1)."""
    for address, result in earlier.items():
        results.setdefault(address, result)


def _servers(found: Sequence[Candidate]) -> list[Candidate]:
    """Each address of the candidates as a candidate of its own, in order: the servers a
    deferral is handed on along (rule 1), as Postfix's smtp(8) tries every address as a
    server of its own."""
    return [replace(candidate, addresses=(address,))
            for candidate in found for address in candidate.addresses]


def _is_at(server: Candidate, session: Session) -> bool:
    return (server.host, server.addresses[0]) == (session.host, session.address)


def _same_server(session: Session, other: Session) -> bool:
    return (session.host, session.address) == (other.host, other.address)


def _from(servers: Sequence[Candidate], session: Session) -> list[Candidate]:
    """`session`'s server and those after it, in order (all when it is none of them): where
    its replacement is looked for (rule 7)."""
    for index, server in enumerate(servers):
        if _is_at(server, session):
            return list(servers[index:])
    return list(servers)


def _after(servers: Sequence[Candidate], session: Session) -> list[Candidate]:
    """The servers after `session`'s, in order (rule 1)."""
    for index, server in enumerate(servers):
        if _is_at(server, session):
            return list(servers[index + 1:])
    return []


def _is_best(found: Sequence[Candidate], session: Session) -> bool:
    """Is `session` with a host of the best preference among the next hop's candidates
    (equal ones all count)? Only such a connection is pooled (rule 1)."""
    return any(candidate.host == session.host and candidate.preference == found[0].preference
               for candidate in found)


def _ended_before_closing(session, recipients: Sequence[str]) -> bool:
    """Did the transaction of `recipients` get every answer it waited for (MAIL taken, each
    recipient's, the data's, the end of the data's once sent), none the 421 of a host
    closing, before `session` became unusable? Then the connection went after it: at the
    RSET that ended it (closed, a 421, or refused: core/delivery/session.py rule 9), or
    closed just after, and no recipient of the next transaction has been tried on it
    (rule 7). A 503 to MAIL (session.py rule 10), a host that closed in the transaction
    and a "." never answered are no such end."""
    transaction = session.conn.transaction
    if session.is_usable or transaction is None or transaction.mail_reply is None \
            or not transaction.mail_reply.is_positive:
        return False
    outcomes = transaction.outcomes()
    return all(address in outcomes and outcomes[address][1] is not None
               and outcomes[address][1].code != 421 for address in recipients)


def _untried(session, outcomes: Mapping) -> str:
    """The text of the recipients that `session`'s connection left untried (rule 7), with
    why it ended: dropped after a 503 to MAIL (core/delivery/session.py rule 10), the
    421 the host closed with, else the error of its last transaction."""
    conn = session.conn
    mail_reply = conn.transaction.mail_reply if conn.transaction is not None else None
    if mail_reply is not None and mail_reply.code == 503:
        return f"{UNTRIED}: dropped after MAIL got {reply_text(mail_reply)}"
    if conn.closing_reply is not None:
        return f"{UNTRIED}: {session.host} closed it with {reply_text(conn.closing_reply)}"
    why = next((text for outcome, text, _status, remote in outcomes.values()
                if outcome == "deferred" and not remote), None)
    return f"{UNTRIED}: {why}" if why else UNTRIED


def _closed_before_taking(session, outcomes: Mapping) -> bool:
    """The host closed the connection (with a 421, or without a word) in a transaction
    where it refused no recipient for good and was never sent the end of the data: all
    of them wait, and it cannot have the message, so the transaction is worth one more
    try on a new connection; a 5xx it gave stands. Once the final "." was sent, a close
    or a silence may come after the host took the message (RFC 5321 §4.5.3.2.6, §6.1):
    the recipients wait for the retry, with its backoff, rather than a second copy at
    once; a 421 to the "." is the host's answer and stands too."""
    transaction = session.conn.transaction
    return not session.is_usable and not (transaction and transaction.is_data_sent) and all(
        outcome == "deferred" for outcome, *_ in outcomes.values())
