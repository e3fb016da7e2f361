"""Synchronous spool helpers the queue manager runs through `trio.to_thread` (they fsync).

What this module owns
    Small compositions of `shared.spool` calls that must run together off the event loop:
    writing a generated message through the durable accept path, reading the header section
    of a message for a DSN, making a forwarded copy with a new Subject, listing the
    queues at startup and looking at their slow and hold entries afterwards
    (`recover_waiting`). Byte layout stays in `shared/spool.py` (STYLE §1 "spool").

Never: run on the trio thread (every function here blocks), or modify a message in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.pipeline.rewrite import HeaderEditor
from shared.spool import COPY_CHUNK_OCTETS, Envelope, Spool, new_queue_id

__all__ = ["write_generated", "read_headers", "copy_with_subject", "list_queues",
           "recover_waiting", "MAX_HEADER_SECTION_OCTETS"]

MAX_HEADER_SECTION_OCTETS = 1 << 20   # a header section longer than this is cut for copies


def write_generated(spool: Spool, envelope_fields: dict, sender: str, recipients: list[str],
                    message: bytes, clock_now: float) -> str:
    """Accept *message* into fast/ exactly as the SMTP listener would (prepare + commit);
    returns its new queue id."""
    while True:
        queue_id = new_queue_id()
        try:
            incoming = spool.open_incoming(queue_id)
        except FileExistsError:
            continue
        break
    try:
        incoming.write(message)
        envelope = Envelope.new(queue_id, sender, recipients, clock=lambda: clock_now,
                                **envelope_fields)
        spool.commit([incoming.prepare(envelope)], "fast")
    except BaseException:
        incoming.abort()
        raise
    return queue_id


def read_headers(spool: Spool, queue: str, queue_id: str, limit: int) -> bytes:
    """Up to *limit* octets from the start of the message: its header section (and maybe
    some body, which the DSN composer cuts off)."""
    with spool.open_message(queue, queue_id) as handle:
        return handle.read(limit)


def copy_with_subject(spool: Spool, src_queue: str, queue_id: str, envelope: Envelope,
                      subject: str | None) -> str:
    """Copy a message into fast/ under a new id with *envelope* (its queue_id is replaced),
    replacing the Subject header when *subject* is given and not blank (a blank one keeps
    the message's own, from the console's form and the CLI alike). Returns the new id."""
    if subject is None or not subject.strip():
        new_id = new_queue_id()
        spool.copy_to(queue_id, src_queue, "fast", new_id, envelope)
        return new_id
    while True:
        new_id = new_queue_id()
        try:
            incoming = spool.open_incoming(new_id)
        except FileExistsError:
            continue
        break
    try:
        with spool.open_message(src_queue, queue_id) as source:
            head = _read_header_section(source)
            incoming.write(_replace_subject(head, subject))
            while chunk := source.read(COPY_CHUNK_OCTETS):
                incoming.write(chunk)
        new_envelope = envelope.copy()
        new_envelope.queue_id = new_id
        spool.commit([incoming.prepare(new_envelope)], "fast")
    except BaseException:
        incoming.abort()
        raise
    return new_id


def _read_header_section(source) -> bytes:
    """Lines up to and including the empty line that ends the header section."""
    lines: list[bytes] = []
    size = 0
    while size < MAX_HEADER_SECTION_OCTETS:
        line = source.readline(MAX_HEADER_SECTION_OCTETS)
        if not line:
            break
        lines.append(line)
        size += len(line)
        if line in (b"\r\n", b"\n"):
            break
    return b"".join(lines)


def _replace_subject(head: bytes, subject: str) -> bytes:
    """The header section *head* with *subject* as its Subject, written as a policy forward
    writes it (HeaderEditor.replace_subject): raw 8-bit text would go to next hops without
    SMTPUTF8 or 8BITMIME (i18n finding 8)."""
    nl = b"\r\n" if b"\r\n" in head else b"\n"
    editor = HeaderEditor(head, nl)
    editor.replace_subject(subject)
    out = editor.bytes()
    # the editor ends the section with its blank line; a message without one (all header)
    # must not get one, nor a body where there was none
    return out if head.endswith((b"\n\n", b"\n\r\n")) or head in (b"\n", b"\r\n") \
        else out[:-len(nl)]


def list_queues(spool: Spool) -> tuple[list[str], list[str], list[str]]:
    """(fast ids, slow ids, hold ids) from the disk: listings only, no entry read."""
    return list(spool.list("fast")), list(spool.list("slow")), list(spool.list("hold"))


def recover_waiting(spool: Spool, queue: str, ids: list[str], *,
                    set_aside: Callable[[str, str], None],
                    check_stop: Callable[[], None]) -> list[Envelope]:
    """Look at the entries *ids* of *queue* (slow or hold, listed at start) one by one, as
    recover() does for the queues it checks (`Spool.recover_entry`), and return the whole
    envelopes. `check_stop()` comes before each entry (it raises to end the look there: the
    rest waits on disk for the next start, each entry being looked at whole), and
    `set_aside(id, why)` after each entry moved to corrupt/, before the next is looked at
    (its event is written as it happens, not when the look ends). One that cannot be set
    aside stays and is left out (the next start, or for a held one the hold action that
    takes it up, tries again); one gone meanwhile is left out."""
    envelopes: list[Envelope] = []
    for queue_id in ids:
        check_stop()
        try:
            envelope, reason = spool.recover_entry(queue, queue_id)
        except OSError:
            continue
        if reason is not None:
            set_aside(queue_id, reason)
        elif envelope is not None:
            envelopes.append(envelope)
    return envelopes


def list_ids(spool: Spool, queue: str, ids: Iterable[str] | None) -> list[str]:
    """The ids of *queue*, or those of *ids* that are in it."""
    present = list(spool.list(queue))
    if ids is None:
        return present
    wanted = set(ids)
    return [queue_id for queue_id in present if queue_id in wanted]


def due_now(spool: Spool, queue_ids: list[str], now: float) -> tuple[list[str], str | None]:
    """Write `now` as the next attempt of the slow entries *queue_ids* whose envelope has a
    later one (`mailmoat queue retry --slow`, core/spool/schedule.py rule 5): a restart
    before their attempt keeps it. Returns the ids gone from slow/ meanwhile, and the first
    error of those that could not be written (they are due in memory all the same)."""
    gone, error = [], None
    for queue_id in queue_ids:
        try:
            envelope = spool.read_envelope("slow", queue_id)
            if envelope.next_attempt_at is not None and envelope.next_attempt_at <= now:
                continue
            envelope.next_attempt_at = now
            spool.write_envelope("slow", envelope)
        except FileNotFoundError:
            gone.append(queue_id)
        except (OSError, ValueError) as exc:
            error = error or f"{queue_id}: {exc}"
    return gone, error
