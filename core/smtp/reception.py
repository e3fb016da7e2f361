"""DATA reception: one message of an inbound SMTP session, from the 354 to its reply.

What this module owns
    `MessageReception`: the message's bytes kept in memory (up to BUFFER_OCTETS) or
    streamed into its incoming/ file, its Received field, the checks made once it has
    ended (the spool's free space, the hop count), its envelope and the reply: 250 once it
    is queued, or a refusal with nothing of it kept.

Rules:
- 250 after DATA only when `GroupCommitter.commit` returned: message and envelope fsync'd,
  renamed into fast/, directory fsync'd (ARCHITECTURE invariant 1).
- A client that vanishes mid-DATA leaves nothing queued: the incoming entry is aborted
  (`abort`, which the session calls when it ends).
- A limit hit or a failed write inside DATA is answered after the end of data (the
  protocol reads to it, core/smtp/protocol.py rule 4), never by ending the stream.
- A refused message's `rejected` event says why (guide Table 7-6: "the reason for the
  rejection") and carries its Subject as far as the message was read (`subject_read`; so
  does the `connection_closed` of a session cut in DATA, core/smtp/session.py). A
  line over 1000 octets is also the client's protocol violation (SPEC §4: counted and
  logged), written before the rejection it causes.
"""

from __future__ import annotations

import re

import trio

from core.pipeline.decompose.mime import head_facts
from core.smtp import replies as R
from core.smtp.events import DataComplete, ViolationKind
from core.smtp.group_commit import PendingMessage
from core.smtp.policy import check_spool_space
from shared.clock import mail_date
from shared.disk import is_out_of_space
from shared.events import Action, event_subject
from shared.spool import SUBJECT_META, Envelope, new_queue_id

__all__ = ["MessageReception", "BUFFER_OCTETS", "HEAD_OCTETS", "MAX_HOPS",
           "QUEUED_REPLY_SECONDS"]

BUFFER_OCTETS = 256 * 1024      # messages up to this size stay in memory until the group commit
HEAD_OCTETS = 64 * 1024         # where the Subject and the hops are counted (head_facts)
MAX_HOPS = 100                  # more Received fields than this: a loop (RFC 5321 §6.3)
QUEUED_REPLY_SECONDS = 5.0      # how long a shutdown waits for a queued message's 250
# What the Received field shows of a client's HELO argument and PTR name: the characters of a
# domain or an address literal, the rest as "?" (as Postfix writes them), at most a domain's
# length. The client chooses both: verbatim it could write a fake "([10.9.9.9]) by host"
# hop, break the field's grammar with "(" or ";", or put raw 8-bit text into a message
# relayed without SMTPUTF8 (smtp-security finding 4). The envelope keeps the argument as sent.
_NOT_IN_RECEIVED_NAME = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
RECEIVED_NAME_CHARS = 255


def _received_name(name: str) -> str:
    """`name` as the Received field shows it (see _NOT_IN_RECEIVED_NAME)."""
    return _NOT_IN_RECEIVED_NAME.sub("?", name[:RECEIVED_NAME_CHARS])


class MessageReception:
    """The message of one DATA phase of `session` (a core/smtp/session.py Session), for its
    current transaction, whose recipients are final. Made when the session answers 354;
    `append` each DataChunk, then `finish` at DataComplete, or `abort` when the session
    ends first."""

    def __init__(self, session) -> None:
        self.session = session
        self.queue_id = new_queue_id()
        header = self._received_header()
        self.buffered: list[bytes] | None = [header]
        self.buffered_octets = len(header)
        self.incoming = None           # the incoming/ file, once the message outgrows memory
        self.head = b""                # the message's first HEAD_OCTETS, for its Subject
        self.write_failed: OSError | None = None   # streaming into incoming/ failed

    async def append(self, data: bytes) -> None:
        if len(self.head) < HEAD_OCTETS:
            self.head += data[:HEAD_OCTETS - len(self.head)]
        if self.write_failed is not None:
            return                  # read to its end and dropped: answered in finish
        try:
            if self.incoming is not None:
                self.incoming.write(data)
                return
            self.buffered.append(data)
            self.buffered_octets += len(data)
            if self.buffered_octets > BUFFER_OCTETS:
                # Too big to keep in memory: stream the rest into incoming/ (page cache
                # writes; the fsyncs happen in the committer's thread).
                self.incoming = await trio.to_thread.run_sync(
                    self.session.server.spool.open_incoming, self.queue_id)
                for chunk in self.buffered:
                    self.incoming.write(chunk)
                self.buffered, self.buffered_octets = None, 0
        except OSError as exc:      # a full disk: the client hears 452 at the end of data
            self.write_failed = exc
            self.buffered, self.buffered_octets = None, 0

    async def abort(self) -> None:
        """Drop what was received: nothing of the message stays in the spool."""
        self.buffered, self.buffered_octets = None, 0
        if self.incoming is not None:
            incoming, self.incoming = self.incoming, None
            await trio.to_thread.run_sync(incoming.abort)

    def _received_header(self) -> bytes:
        session = self.session
        recipients = session.transaction.recipients
        # RFC 3848 / RFC 5321 §4.4: SMTP after HELO, ESMTP after EHLO; STARTTLS is an ESMTP
        # extension, so a session under TLS is ESMTPS whatever its last hello. RFC 6531
        # §3.7.3: a transaction that used SMTPUTF8 is UTF8SMTP, or UTF8SMTPS under TLS.
        if session.transaction.mail_params.get("SMTPUTF8"):
            with_ = "UTF8SMTPS" if session.conn.is_tls else "UTF8SMTP"
        else:
            with_ = ("ESMTPS" if session.conn.is_tls
                     else "ESMTP" if session.is_extended else "SMTP")
        ptr = f"{_received_name(session.client_ptr)} " if session.client_ptr else ""
        helo = _received_name(session.helo) if session.helo else "unknown"
        rcpt = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
        # TCP-info is an address literal (RFC 5321 §4.4, §4.1.3): [IPv6:2001:db8::1]
        client_ip = session.client_ip
        literal = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
        text = (f"Received: from {helo} ({ptr}[{literal}])\r\n"
                f"\tby {session.hostname} (Mailmoat) with {with_} id {self.queue_id}{rcpt};\r\n"
                f"\t{mail_date(session.server.clock.now())}\r\n")
        return text.encode("utf-8", "replace")

    async def _refuse_for_spool(self, incoming, exc: OSError, size: int) -> None:
        """The spool could not take the message: 452 4.3.1 for a full disk (or quota),
        else 451; either way the client tries again later and nothing of it is kept."""
        reply = R.R452_INSUFFICIENT_STORAGE if is_out_of_space(exc) else R.R451_LOCAL_ERROR
        await self._refuse_message(incoming, reply, "spool",
                                   f"spool write failed: {exc.strerror or exc}", size=size)

    def subject_read(self) -> str | None:
        """The Subject of the message as far as it was read: a refusal at a limit stops
        the reading in the header at times (a line over 1000 octets, HEAD_OCTETS). The
        head holds whole lines, so a Subject field read is whole, but for a folded line
        after it that never came; there is none when the limit came before it."""
        return event_subject(head_facts(self.head).subject)

    async def _refuse_message(self, incoming, reply: R.Reply, rule: str, info: str, *,
                              log_as: str = "local", **fields) -> None:
        """Refuse the message just received with `reply` for the reason `info` (nothing of
        it is kept); the conversation log counts it under `log_as`
        (diagnostics.conversation.errors)."""
        session, transaction = self.session, self.session.transaction
        if incoming is not None:
            await trio.to_thread.run_sync(incoming.abort)
        session.server.counters.incr("rejected")
        if reply == R.R452_INSUFFICIENT_STORAGE:
            session.server.refused_for_space()
        session.record(Action.REJECTED, sender=transaction.sender,
                       recipients=transaction.recipients, subject=self.subject_read(),
                       rule=rule, info=info, result=str(reply.code), **fields)
        session.log.error(log_as, f"{rule}: {info}")
        await session.write(session.conn.send(reply))

    async def finish(self, event: DataComplete) -> None:
        """Answer the message, which has ended: 250 once the committer has it queued,
        else the refusal (module rules). The transaction ends with this reply."""
        session, transaction = self.session, self.session.transaction
        incoming, self.incoming = self.incoming, None
        buffered, self.buffered, self.buffered_octets = self.buffered, None, 0
        server = session.server
        if self.write_failed is not None:
            await self._refuse_for_spool(incoming, self.write_failed, event.size)
            return
        if event.line_too_long:
            reply = R.R554_LINE_TOO_LONG_IN_DATA
            detail = (f"a text line over {session.conn.max_text_line_octets} octets in DATA "
                      f"(RFC 5321 §4.5.3.1.6)")
            session.protocol_violation(
                ViolationKind.TEXT_LINE_TOO_LONG, detail, reply, sender=transaction.sender,
                recipients=transaction.recipients, subject=self.subject_read(),
                size=event.size)
            await self._refuse_message(incoming, reply, "smtp.max_text_line", detail,
                                       log_as="protocol", size=event.size)
            return
        if event.size_exceeded:
            await self._refuse_message(
                incoming, R.R552_SIZE_EXCEEDED, "size.max_mb",
                f"{event.size} octets over the limit of "
                f"{session.conn.max_message_octets} octets", size=event.size)
            return
        # A message streamed into incoming/ is on the disk already; a buffered one is not.
        writing = event.size if incoming is None else 0
        refusal = check_spool_space(server.spool.disk_space().free_fraction(writing),
                                    at="DATA")
        if refusal:
            await self._refuse_message(incoming, refusal.reply, refusal.rule, refusal.reason,
                                       size=event.size)
            return
        facts = head_facts(self.head)
        hops = facts.received + 1                       # and ours
        if hops > MAX_HOPS:
            # A route pointing back at us (or two gateways at each other) would take the
            # message round for ever, a Received field longer each time.
            await self._refuse_message(
                incoming, R.R554_TOO_MANY_HOPS, "mail_loop",
                f"{hops} Received fields, more than {MAX_HOPS}: a mail loop", size=event.size)
            return
        envelope = Envelope.new(
            self.queue_id, transaction.sender or "", transaction.recipients,
            clock=server.clock.now, client_ip=session.client_ip, client_helo=session.helo,
            connection_id=session.connection_id,
            body="8BITMIME" if transaction.mail_params.get("BODY") == "8BITMIME" else "7BIT",
            smtputf8=bool(transaction.mail_params.get("SMTPUTF8")))
        if transaction.rbl_listing is not None:   # non-reject rbl.action applies after DATA
            envelope.meta["rbl"] = transaction.rbl_listing.to_meta()
        subject = event_subject(facts.subject)
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
        session.record(Action.ACCEPTED, queue_id=self.queue_id, sender=envelope.sender,
                       recipients=transaction.recipients, size=envelope.size,
                       subject=envelope.subject())
        # Handed over before the reply: a client that vanishes now (or a passed deadline)
        # must not leave the message in fast/ unannounced until the core's next rescan.
        # A failed hand-over only delays it until then: it never costs the client its 250.
        try:
            server.on_accepted(self.queue_id, envelope, pending.envelope_json)  # ours no more
        except Exception as exc:
            session.log.error("local", f"hand-over failed: {type(exc).__name__}")
        # The message is queued: the client must hear so even when a shutdown cancels the
        # session now, or it sends the message again and it is delivered twice (SPEC §4
        # allows duplicates after a crash only). Bounded: a client that does not read must
        # not hold the shutdown.
        with trio.CancelScope(shield=True) as reply:
            reply.deadline = trio.current_time() + QUEUED_REPLY_SECONDS
            await session.write(session.conn.send(R.R250_QUEUED(self.queue_id)))
