"""The event catalogue (SPEC §6) and the one batching event writer of each process.

Rules:
- Every action is declared once here, in `Action`, with its category; no event name is written
  as a literal anywhere else. Events are append-only facts.
- So is every `result` word that code other than its writer tells apart (the reports'
  counts, the detail report's reading of old rows): RECIPIENT_REFUSED and the rest below.
- `Event` is the one record type; its columns are the detail report's (SPEC §2), anything
  action-specific goes into `data` (virus, file, score, user, reason, …).
- `EventWriter` is the only code that inserts events. `emit()` never blocks and never touches
  SQLite: it hands the event to a writer thread that inserts in short batched transactions,
  in emit order, and retries a batch while the database is busy (ARCHITECTURE invariant 4).
  The same object serves trio code (emit is non-blocking; `await writer.aflush()`) and plain
  threads (`flush()`).
- An event's `id` is its place in the write order, not in time. Each process writes its own
  batches (the core, every listener process, the console, the CLI), and some events are
  written after what they record, stamped with the time it happened (`record(at=)`: the
  first refused recipient of a transaction, whose `rejected` waits for the transaction's end
  to know whether it rejected a message, core/smtp/transaction.py). So a reader that shows,
  ranges or pages events orders them by `time` (shared/report.py pages on (time, id); the
  Status chart counts time ranges), never by id. The one reader by id, the core's alert
  engine (core/notify.py), uses the id only as a cursor of what it has read, which needs no
  time order: one writer at a time commits (SQLite), each new id above every id in the
  table, so a cursor skips no row, back-dated or not (the retention purge never deletes the
  newest row, so ids never start again below the cursor: shared/retention.py). A SIEM
  forwarder tailing by id would pass events on in write order, each with its time.
"""

from __future__ import annotations

import enum
import functools
import json
import sqlite3
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from shared.busy import BusyNotice, is_busy
from shared.clock import SYSTEM_CLOCK, WallClock
from shared.disk import OUT_OF_SPACE_RETRY_SECONDS, is_out_of_space

__all__ = ["Category", "Action", "Event", "EventWriter", "CATEGORY_OF", "SIEM_ACTIONS",
           "RECIPIENT_REFUSED", "COPY_NOT_KEPT", "WHITELISTED", "SUCCEEDED", "FAILED",
           "CONNECTION_SUCCEEDED", "CONNECTION_FAILED", "CONNECTION_ACTUAL", "CONNECTION_CACHED",
           "SUBJECT_CHARS", "event_subject"]


class Category(enum.StrEnum):
    SYSTEM = "system"
    SMTP = "smtp"
    PREMIUM = "premium"
    MESSAGE = "message"
    BLOCKING = "blocking"


class Action(enum.StrEnum):
    # system (guide Table 7-5 and SPEC §6)
    LOGON = "logon"
    LOGOFF = "logoff"
    LIVEUPDATE = "liveupdate"
    DEFINITIONS_UPDATED = "definitions_updated"
    OBJECT_MODIFIED = "object_modified"
    SERVICE_STARTED = "service_started"
    SERVICE_START_FAILED = "service_start_failed"
    SERVICE_STOPPED = "service_stopped"
    REORDERING_STARTED = "reordering_started"
    REORDERING_STOPPED = "reordering_stopped"
    UNAUTHORIZED_ACCESS = "unauthorized_access"
    LOW_DISK = "low_disk"
    LOW_MEMORY = "low_memory"
    HTTP_PROTOCOL_VIOLATION = "http_protocol_violation"
    OUTBREAK = "outbreak"
    ALERT_SENT = "alert_sent"
    SERVICE_START_IMPROPER = "service_start_improper"
    FAILED_LOGON = "failed_logon"
    EVENTS_PURGED = "events_purged"   # the daily retention purge (logging.retention_days)
    # smtp
    CONNECTION_FROM = "connection_from"
    CONNECTED_TO = "connected_to"
    DISCONNECTED = "disconnected"
    CONNECTION_CLOSED = "connection_closed"
    PROTOCOL_VIOLATION = "protocol_violation"
    REJECTED = "rejected"
    # premium
    SPAM = "spam"
    SUSPECTED_SPAM = "suspected_spam"
    REPUTATION_SPAM = "reputation_spam"
    SPAM_QUARANTINED = "spam_quarantined"
    # message
    ACCEPTED = "accepted"
    DROPPED = "dropped"
    FORWARDED = "forwarded"
    BOUNCED = "bounced"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    DELIVERY_SUPPRESSED = "delivery_suppressed"
    HELD = "held"
    QUARANTINED = "quarantined"
    DEFERRED = "deferred"
    # blocking
    MALFORMED = "malformed"
    VIRUS_LOGGED = "virus_logged"
    FILE_REPAIRED = "file_repaired"
    FILE_DELETED = "file_deleted"
    SUBJECT_BLOCKED = "subject_blocked"
    SCAN_ERROR = "scan_error"
    SENDER_BLOCKED = "sender_blocked"
    ATTACHMENT_DELETED = "attachment_deleted"
    SPAM_LIST_BLOCK = "spam_list_block"
    HEURISTIC_SPAM = "heuristic_spam"
    MASS_MAILER_CLEANUP = "mass_mailer_cleanup"
    CONTENT_RULE_VIOLATION = "content_rule_violation"
    SPAM_RULE_VIOLATION = "spam_rule_violation"
    ENCRYPTED_CONTAINER = "encrypted_container"
    CONTAINER_LIMIT = "container_limit"


_BY_CATEGORY = {
    Category.SYSTEM: "logon logoff liveupdate definitions_updated object_modified service_started "
                     "service_start_failed service_stopped reordering_started reordering_stopped "
                     "unauthorized_access low_disk low_memory http_protocol_violation outbreak "
                     "alert_sent service_start_improper failed_logon events_purged",
    Category.SMTP: "connection_from connected_to disconnected connection_closed "
                   "protocol_violation rejected",
    Category.PREMIUM: "spam suspected_spam reputation_spam spam_quarantined",
    Category.MESSAGE: "accepted dropped forwarded bounced delivery_failed delivered completed "
                      "delivery_suppressed held quarantined deferred",
    Category.BLOCKING: "malformed virus_logged file_repaired file_deleted subject_blocked "
                       "scan_error sender_blocked attachment_deleted spam_list_block "
                       "heuristic_spam mass_mailer_cleanup content_rule_violation "
                       "spam_rule_violation encrypted_container container_limit",
}
CATEGORY_OF: dict[Action, Category] = {
    Action(name): category for category, names in _BY_CATEGORY.items() for name in names.split()
}
assert set(CATEGORY_OF) == set(Action), "every action needs exactly one category"

# The subset forwarded to a SIEM (guide §3 "Configuring logging options").
SIEM_ACTIONS = frozenset({
    Action.LOGON, Action.LOGOFF, Action.DEFINITIONS_UPDATED, Action.OBJECT_MODIFIED,
    Action.PROTOCOL_VIOLATION, Action.REJECTED, Action.DROPPED, Action.BOUNCED,
    Action.DELIVERY_FAILED, Action.VIRUS_LOGGED, Action.FILE_REPAIRED, Action.FILE_DELETED,
    Action.SUBJECT_BLOCKED, Action.SCAN_ERROR,
})

# --- result words: an event's `result` that a reader tells apart (shared/report.py) -------
# The `result` of a `rejected` event that refused one recipient, not a message: the
# transaction went on with other recipients, or an earlier refusal of it already stands for
# the message (core/smtp/transaction.py `settle_refusals`). The detail report shows these;
# Messages Rejected, the charts' Rejected and the Status page's Rejected leave them out.
RECIPIENT_REFUSED = "recipient"
# The `result` of a `quarantined` event for a virus quarantine copy that was not kept (the
# spool's file system low, core/scan/service.py rule 4): no message was quarantined.
COPY_NOT_KEPT = "skipped_low_disk"
# The `result` of a sender_blocked, spam_list_block or heuristic_spam event whose check stood
# aside for a whitelisted sender (core/pipeline/checks/whitelist.py rule 1): it says what a
# whitelist entry let past, and is no block nor spam detected.
WHITELISTED = "whitelisted"
# The guide's one pair of result words, "(Succeeded/Failed)": logon, logoff, LiveUpdate and
# definitions updated (Table 7-5), connection from and connected to (Table 7-6). Events
# written before schema 4 said success/failure (and logoff/timeout); migrations/0004 rewrote
# them, so a report or a search for "failed" finds every kind.
SUCCEEDED = "succeeded"
FAILED = "failed"
# The `result` of a `connection_from` or `connected_to` event. An inbound connection fails
# when it is answered 421 at once (delivery.reject_incoming, the per-client session limit); an
# outbound one when it gives no session ready for MAIL (core/delivery/deliver.py rule 5).
CONNECTION_SUCCEEDED = SUCCEEDED
CONNECTION_FAILED = FAILED
# A `connected_to` event's data `connection` (guide Table 7-6: "connection information
# (Actual/Cached)"): opened for the delivery attempt, or taken from the pool of open ones
# (core/delivery/pool.py).
CONNECTION_ACTUAL = "actual"
CONNECTION_CACHED = "cached"


# What an event keeps of a Subject: RFC 5322's line limit.
SUBJECT_CHARS = 998


def event_subject(subject: str | None) -> str | None:
    """A decoded Subject as the events keep it (guide Table 7-6: the Subject column): one
    line, each run of white space one space, at most SUBJECT_CHARS; None for none."""
    return " ".join((subject or "").split())[:SUBJECT_CHARS] or None


@dataclass(frozen=True)
class Event:
    """One fact. `time` is UTC unix seconds, stamped from the process's wall clock."""

    action: Action
    time: float
    result: str | None = None
    queue_id: str | None = None
    connection_id: str | None = None
    client_ip: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    size: int | None = None
    rule: str | None = None
    info: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> Category:
        return CATEGORY_OF[self.action]

    def row(self, process: str) -> tuple:
        return (self.time, self.category.value, self.action.value, self.result, self.queue_id,
                self.connection_id, self.client_ip, self.sender,
                ";".join(self.recipients) if self.recipients else None, self.subject,
                self.size, self.rule, self.info,
                json.dumps(self.data, sort_keys=True, default=str) if self.data else None,
                process)


# The columns Event.row() fills, in its order.
_ROW_COLUMNS = ("time", "category", "action", "result", "queue_id", "connection_id",
                "client_ip", "sender", "recipients", "subject", "size", "rule", "info", "data",
                "process")
_COLUMNS = len(_ROW_COLUMNS)
_INSERT_HEAD = f"INSERT INTO events ({', '.join(_ROW_COLUMNS)}) VALUES "
_ROW_PLACEHOLDERS = "(" + ", ".join("?" * _COLUMNS) + ")"


@functools.lru_cache(maxsize=64)
def _insert_rows(count: int) -> str:
    return _INSERT_HEAD + ", ".join([_ROW_PLACEHOLDERS] * count)


_STOP = object()


class _Marker:
    """An item of the writer's queue that is not an event: `set()` once everything before
    it is committed (as threading.Event is for `flush`)."""

    def __init__(self, on_written: Callable[[], None]):
        self.set = on_written


class EventWriter:
    """Batches events into SQLite from one background thread, in the order they were emitted.

    `emit()` and `record()` are safe from any thread and from trio code; they never block.
    `keep(event)`, when given, decides whether an event is stored at all (`logging.local`
    off: see shared.retention.local_storage_filter); skipped events are counted in `skipped`.
    A full disk keeps the batch in memory and retries (shared.disk), up to QUEUE_LIMIT.

    A close does not wait for a full disk to free: what is pending is written as far as
    `room_at_close`, when its owner gives one, allows, and the rest is lost. Asked before
    each CLOSE_CHUNK of events once the disk was found full at close, oldest first, it may
    free space kept for this (the core: the data home's space reserve, shared.home
    `room_for_events_at_close`) and says whether one more chunk may be written. Without it
    nothing more is written. Every event lost, at close or past QUEUE_LIMIT before, is
    counted (`lost_full`, `overflowed`; `lost` is both), and `close()` says so in one line on
    the process's standard error (`lost_notice()`; the journal under systemd, as
    shared/busy.py's notices), before the owner's own last words (diskfull21 A1: a stop on
    a full disk threw them all away, its `service_stopped` too, and nothing said so). One
    line per writer, so per process: `said_as` names the process in it and in the busy
    notices when `process`, the events' column, does not tell it from another (a core's
    SMTP listener processes write as "core": review21a C1).
    """

    MAX_BATCH = 500
    QUEUE_LIMIT = 100_000  # bounded: past it events are counted as lost, never block mail
    RETRY_SECONDS = 0.05
    # After the first event of a batch the writer waits this long before taking the rest
    # (a flush cuts it short): events arrive in bursts (several per message), and every
    # time this thread wakes it takes the GIL from the busy event loop — at 20 ms the
    # core made 10 futex calls per message for it, at 100 ms 5, and half the WAL writes.
    LINGER_SECONDS = 0.1
    CLOSE_CHUNK = 50    # events per transaction while room_at_close is asked (see above)

    def __init__(self, db_path: str | Path, process: str, clock: WallClock = SYSTEM_CLOCK,
                 *, enabled: bool = True, keep: Callable[[Event], bool] | None = None,
                 room_at_close: Callable[[], bool] | None = None,
                 said_as: str | None = None):
        self.db_path = Path(db_path)
        self.process = process
        self.said_as = said_as or process
        self.clock = clock
        self.lost_full = 0      # pending at a close on a full disk, and not written
        self.overflowed = 0     # emitted while QUEUE_LIMIT events were waiting already
        self._room_at_close = room_at_close
        self._full_at_close = False     # the disk was full at close: room_at_close rules
        self._said_lost = False
        self.written = 0
        self.busy_retries = 0
        self.full_retries = 0
        self._closing = False
        self.skipped = 0
        self._keep = keep
        # A deque and a wake-up flag rather than queue.Queue: emit() runs several times per
        # message on the event loop, and Queue.put takes a lock and notifies a condition
        # each time; here the writer is woken once per batch.
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._wake_pending = False
        self._hurry = threading.Event()     # a flush or close waits: no lingering
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._enabled = enabled
        self._busy = BusyNotice("writing events", self.said_as)    # said from the writer thread

    # --- producing ---------------------------------------------------------------------
    def record(self, action: Action, *, at: float | None = None, **fields: Any) -> Event:
        """Build an event and emit it; returns the event. It is stamped now, or `at` (UTC
        unix seconds) for a fact whose event is written after it happened, such as a
        refused recipient, whose event waits for the end of its transaction."""
        if "recipients" in fields and fields["recipients"] is not None:
            fields["recipients"] = tuple(fields["recipients"])
        event = Event(action=Action(action),
                      time=self.clock.now() if at is None else at, **fields)
        self.emit(event)
        return event

    def emit(self, event: Event) -> None:
        if not self._enabled:
            return
        if self._keep is not None and not self._keep(event):
            self.skipped += 1
            return
        self._ensure_started()
        if len(self._queue) >= self.QUEUE_LIMIT:
            self.overflowed += 1
            return
        self._put(event)

    def _put(self, item) -> None:
        self._queue.append(item)
        if not self._wake_pending:      # the writer clears it before it drains (no lost wake)
            self._wake_pending = True
            self._wake.set()

    # --- flushing ------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> None:
        """Block until every event emitted so far is committed (or timeout)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._put(done)
        self._hurry.set()
        if not done.wait(timeout):
            raise TimeoutError("event writer did not flush in time")

    async def aflush(self) -> None:
        import trio
        await trio.to_thread.run_sync(self.flush)

    async def committed(self) -> None:
        """Wait until every event emitted so far is committed, without hurrying the writer
        (its batches stay whole): for a step that must not happen before its event is on
        disk, such as deleting a dropped message."""
        import trio
        if self._thread is None:
            return
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        self._put(_Marker(lambda: token.run_sync_soon(done.set)))
        await done.wait()

    def close(self) -> None:
        """Write everything pending (as far as a full disk lets it: the class's docstring)
        and stop the thread; say on standard error how many events were lost, if any."""
        self._closing = True
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._put(_STOP)
            self._hurry.set()
            thread.join()
        notice = self.lost_notice()
        if notice and not self._said_lost:
            self._said_lost = True
            try:
                print(f"mailmoat {self.said_as}: {notice}", file=sys.stderr, flush=True)
            except OSError:
                pass        # standard error on the full disk too: nothing left to say it with

    @property
    def lost(self) -> int:
        """Events lost, for either reason (the class's docstring)."""
        return self.lost_full + self.overflowed

    def lost_notice(self) -> str | None:
        """What its owner says on its standard error once closed, when events were lost:
        "N events could not be written: why; they are lost"; None when none was."""
        if not self.lost:
            return None
        why = []
        if self.lost_full:
            why.append("the data home's file system is full")
        if self.overflowed:
            why.append(f"{self.overflowed} came while {self.QUEUE_LIMIT} were waiting to be "
                       f"written already")
        noun = "event" if self.lost == 1 else "events"
        return f"{self.lost} {noun} could not be written: {'; '.join(why)}; they are lost"

    # --- the writer thread ---------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-writer",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        from shared.db import connect
        conn = connect(self.db_path)
        try:
            stopping = False
            while not stopping:
                batch, markers, stopping = self._next_batch()
                if batch:
                    self._insert(conn, batch)
                for marker in markers:
                    marker.set()
        finally:
            conn.close()

    def _next_batch(self) -> tuple[list[Event], list, bool]:
        batch: list[Event] = []
        markers: list = []
        while not self._queue:
            self._wake.wait()           # may be left set by an item already taken: look again
            self._wake_pending = False
            self._wake.clear()
        if isinstance(self._queue[0], Event):
            self._hurry.wait(self.LINGER_SECONDS)
        self._hurry.clear()
        self._wake_pending = False      # before draining: what comes after wakes us again
        self._wake.clear()
        item = self._queue.popleft()
        while True:
            if item is _STOP:
                return batch, markers, True
            if isinstance(item, Event):
                batch.append(item)
            else:                               # threading.Event (flush) or _Marker
                markers.append(item)
            if len(batch) >= self.MAX_BATCH:
                return batch, markers, False
            if not self._queue:
                return batch, markers, False
            item = self._queue.popleft()

    def _insert(self, conn: sqlite3.Connection, batch: Iterable[Event]) -> None:
        rows = [event.row(self.process) for event in batch]
        if self._full_at_close:
            self._insert_in_room(conn, rows)
            return
        while True:
            try:
                self._commit(conn, rows)
                self._busy.done()
                return
            except sqlite3.OperationalError as exc:
                if is_out_of_space(exc):
                    # The disk is full: keep the batch until delivery frees space; a stop
                    # does not wait for that (the class's docstring).
                    if self._closing:
                        self._full_at_close = True
                        self._insert_in_room(conn, rows)
                        return
                    self.full_retries += 1
                    time.sleep(OUT_OF_SPACE_RETRY_SECONDS)
                    continue
                if not is_busy(exc):
                    raise
                # The database stayed busy past the busy timeout: keep the batch (and what
                # comes after it, up to QUEUE_LIMIT), try again (shared/busy.py).
                self._busy.locked(exc)
                self.busy_retries += 1
                time.sleep(self.RETRY_SECONDS)

    def _insert_in_room(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """At a close on a full disk: `rows` in chunks, oldest first, while room_at_close
        allows; what is left is lost (the class's docstring)."""
        done = 0
        while done < len(rows) and self._room_at_close is not None and self._room_at_close():
            part = rows[done:done + self.CLOSE_CHUNK]
            try:
                self._commit(conn, part)
            except sqlite3.OperationalError as exc:
                if is_busy(exc):
                    self.busy_retries += 1
                    time.sleep(self.RETRY_SECONDS)
                    continue
                if not is_out_of_space(exc):
                    raise
                break
            done += len(part)
        self.lost_full += len(rows) - done

    def _commit(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """Insert `rows` in one transaction (rolled back when it raises)."""
        # One multi-row INSERT (one statement is one transaction): sqlite3 gives up the
        # GIL around each statement step, and executemany steps once per row — in a busy
        # process every one of those hand-overs stalls the event loop (futex calls per
        # message in the core fell from 17 to 2 without them).
        per_statement = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _COLUMNS)
        try:
            if len(rows) <= per_statement:
                conn.execute(_insert_rows(len(rows)), [v for row in rows for v in row])
            else:                           # an old SQLite with few variables: several
                conn.execute("BEGIN IMMEDIATE")
                for start in range(0, len(rows), per_statement):
                    part = rows[start:start + per_statement]
                    conn.execute(_insert_rows(len(part)), [v for row in part for v in row])
                conn.execute("COMMIT")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.written += len(rows)
