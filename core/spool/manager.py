"""The queue manager: what happens to a message after the 250 (SPEC §4, ARCHITECTURE).

What it owns
    Scheduling of fast/, slow/ and hold/: run the pipeline once per message, deliver each
    recipient to its next hop, retry with backoff, bounce, expire, hold suspects, and the
    hold-queue actions. It decides *when*; `shared/spool.py` says *how* (every spool call
    runs through `trio.to_thread`, since they fsync), `core/delivery` does the talking.

Rules
    1. The spool is the truth. Memory holds ids and schedules only, rebuilt by `run()` from
       the spool alone; a full channel never loses a message (an overflow triggers a rescan
       of fast/). At most FAST_CHANNEL_SIZE ids wait in memory per lane (rule 13;
       Postfix's active queue).
       A message committed by a listener process is announced after its commit, so one
       can be in fast/ unannounced (the process died first): `rescan()` (a listener
       process ended) takes up at once every fast/ id not being handled, and every
       RESCAN_SECONDS the manager lists fast/ and takes up the ids that were already
       there, not handled, at the previous listing — a newer one may still be on its way.
       `_busy` makes sure no id is handled twice at once; an id announced after it was
       handled and gone finds no file (`_handle_fast`). The fast count (queue_sizes) is
       the last listing's, plus what came since.
    2. Fast queue: pipeline (at most PROCESS_TIMEOUT_SECONDS in a worker, which the pipeline
       enforces — waiting for a free worker does not count; an exception or a timeout is a
       crash: `crash_count` + 1 persisted, the third moves it to hold/ with a HELD event of
       rule "suspect_message"); then delivery per recipient, grouped by next hop.
    3. After an attempt: every recipient delivered -> delete + COMPLETED. 5xx recipients are
       bounced at once (RFC 3464, one DSN per attempt). 4xx recipients -> slow/ with
       `next_attempt_at` persisted, and the sender gets ONE delay notice per message.
       Past `delivery.retry_days` since `received_at` the rest is bounced, and the message
       ends as a delivered one does: delete + COMPLETED (`complete`, the one place that
       ends a message that was delivered, failed or expired).
    4. Order of durable steps: DSN committed, then the envelope rewritten, then the message
       moved or deleted. A crash in between repeats a step (duplicates are allowed), never
       loses one. A message dropped by policy is deleted only once its DROPPED event is
       committed (`delete_when_recorded`); a delivered one at once (waiting for its events
       would make a crash redeliver every message of the last moment).
    5. `delivery.paused`: processing goes on, delivery waits; the pause is polled every
       PAUSE_POLL_SECONDS, so resuming takes well under a second.
    6. Bounces never bounce (`bounce.should_notify`); generated mail (`submit_generated`)
       takes the same durable path, is never counted as accepted and is counted as delivered.
    7. A clean stop lets delivery attempts in progress finish and record their results, for
       up to STOP_GRACE_SECONDS (`_attempt_task`): cut in the middle, an attempt whose
       message the next hop had already taken is made again after the restart — a
       duplicate, which SPEC §4 allows after a crash only. No attempt starts once the stop
       has begun. An attempt that ends records its results shielded from the stop, until
       RECORD_CUT_SECONDS after the grace (`_shielded`: no deadline before a stop, where a
       slow disk is no reason to leave the queue file unwritten); one cut all the same
       records so the recipients already delivered or failed (the deliverer gives each as
       soon as it is decided: core/delivery/deliver.py rule 9) as a finished attempt would
       (their events, bounces, the envelope written) and leaves the others as they were:
       an attempt handing recipients on from a greylisting primary to a silent backup can
       outlast any grace, and the primary's recipients must not get a second copy after
       the restart. A record the deadline cuts writes a SCAN_ERROR of rule "queue.error"
       saying so: what its queue file does not show is done again after the start.
    8. A delivery attempt runs in a task of its own, not in the worker that took the message
       up, and a next hop has at most `hop_attempts` attempts in progress (core/spool/
       hops.py): HOP_ATTEMPTS, and never every one of `smtp.max_outgoing`'s connections,
       one of which each attempt holds (tester28c B2: with 3 a silent next hop took all 3
       for its 300 s greeting timeout); a message for a full next hop waits, in memory and
       still in its queue on disk, for one of them to end. So a slow or silent next hop
       holds no worker and no other next hop's mail; two or more silent next hops can still
       hold every connection between them until their timeouts. At most MAX_ATTEMPTS
       attempts run and MAX_WAITING messages wait; past that the workers wait too
       (backpressure, as a full channel is).
    9. Queue File Save (core/spool/queue_file_save.py) hears of a message when it is first
       taken up, before the pipeline may edit it (`keep`), and how it ends: in an error
       (a crash, an unexpected error, a bounce, expiry: `error`) or not (delivered to every
       recipient; dropped, held or quarantined by policy: `done`). Its calls never raise.
   10. Taking a message up reads its entry through `Spool.read_entry`: one whose envelope is
       unreadable, or whose message file is missing or not of the size recorded, goes to
       corrupt/ with a SCAN_ERROR event of rule CORRUPT_RULE, as recover() does at start
       (the alert engine mails Suspect Message for it: core/notify.py).
   11. One id is in one queue. recover() at start resolves an id found in several (a live
       backup restored: shared/spool.py rule 7), and the rescan does the same for a fast/
       id it takes up, so no copy is delivered twice or left behind; `record_copies` writes
       the one event. A move whose target holds the id already (a copy put there by hand)
       sets that copy aside in corrupt/ and moves the source, the state just written.
   12. An unexpected error handling a message (`_failed`) is tried again every
       ERROR_RETRY_SECONDS, as a full disk needs; its event is written once per message and
       error text, not at every try, until an attempt or a move of the message succeeds.
   13. Lanes: a large fast/ message (`is_large_message`: the scanning workers' large
       messages, core/pipeline/workers.py rule 7) still to be processed is taken up by one
       of LARGE_WORKERS tasks, from a channel of its own; the FAST_WORKERS tasks take the
       rest. A task waiting for a scanning slot for a large message so never keeps a small
       one from being taken up, however many large ones wait (before, 16 large messages
       held all 16 workers and a small one waited in the channel behind the others until
       a large one ended). Each lane is bounded (its tasks, its channel), so memory is.
       The lane is chosen by the size the listener's envelope gives, the rescan's stat of
       the message file (what is in fast/ at start too; one processed already then goes
       to the large lane, where it only starts its attempt), or, for an id announced
       without its envelope (a hold reprocess, a retry), by the FAST_WORKERS task that
       reads it, which hands a large one on. Nothing waits to put an id in the large
       lane's channel: with it full, the id waits in fast/, not busy, and a large lane
       task that finds the channel half empty asks for a rescan (rule 1). So a full large
       lane holds up neither the rescan's small ids nor a small lane task.
   14. An attempt delivers to each next hop of the message at once, and records a next
       hop's results when its delivery ends, while the others are still at it
       (`_record_hop`): its delivered recipients' events, the envelope written with them
       delivered, and its deferred ones' events. Before, nothing was recorded until the
       slowest next hop ended (a tarpitting MX: minutes), so a kill -9 meanwhile delivered
       the others again, and their `delivered` events carried the slowest one's time
       (life19 A1, B1). Its failed recipients wait for the attempt's end, which bounces
       them in one DSN (rule 3); so does what the last next hop decided, recorded with the
       attempt's end as a single next hop's is, with no write of its own. A record that
       cannot write the envelope (a moment of full disk) leaves it to the attempt's end,
       which writes it even when a stop cuts the attempt with nothing else decided.
   15. Start: `run()` lists the queues and reports ready; only then are the slow and hold
       entries listed looked at one by one (`_load_waiting`: LOAD_CHUNK at a time in a
       thread, each envelope read once, the slow schedule built chunk by chunk). The core
       leaves them out of its recover() (CHECKED_AFTER_START), so SMTP answers without
       waiting for them: 20,000 slow and 5,000 held messages kept a start silent for some
       20 s, reading every envelope twice (bigqueue22). The core's recovery of lost
       `accepted` events (core/app.py) reads them here too, through `load_hooks`, not
       before SMTP answers: every bounce, delay notice or alert waiting in slow/ has no
       `accepted` row, and each was read before the 220 (review22b R4); a held entry the
       look left out (an error reading it) goes to them when a hold action reads it
       (core/spool/hold.py rule 5). A damaged entry goes to corrupt/ as the set-aside of
       rule 10 does (`_left_for_corrupt`: counts, the spool.corrupt event, the Queue File
       Save error copy) as soon as it is moved, not when the look ends (a kill -9 during
       the look lost the event of every entry already moved). A stop ends the look at the
       next entry (trio.from_thread.check_cancelled); what was not looked at waits on disk
       for the next start, each entry being handled whole. Until the look ends the slow
       queue waits, a hold action or a slow-queue retry waits (apart: the core's other
       console and CLI requests are carried out meanwhile, core/control.py), and the slow
       count is what is scheduled plus what is listed and not looked at yet. A next hop
       that takes mail meanwhile moves up at once what is scheduled (rule 2 of
       core/spool/schedule.py), and, as they are read, the entries waiting for it
       (SlowSchedule.loaded, one REORDERING_STARTED when the look ends): as if they had
       been scheduled before, not after, what it defers after it took mail (that waits for
       its backoff).

Never: block the event loop, write event names as literals, delete a message that still
has undelivered recipients (unless expired, bounced, or dropped by an operator or policy).
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from core.delivery.routing import domain_of, route
from core.pipeline.decompose.mime import head_facts
from core.pipeline.service import is_large_message          # the lanes' size (rule 13)
from core.pipeline.workers import PROCESS_TIMEOUT_SECONDS   # the limit rule 2 names
from core.spool import files
from core.spool.dispositions import origin_data
from core.spool.hops import HopGate
from core.spool.notices import NoticeWriter
from core.spool.queue_file_save import NoQueueFileSave
from core.spool.schedule import SlowSchedule, retry_delay, retry_expired
from shared.clock import WallClock
from shared.events import Action, event_subject
from shared.spool import (CORRUPT, CORRUPT_RULE, DELIVERY_NOTE, DUPLICATE_RULE,
                          ENHANCED_STATUS, SUBJECT_META, Envelope, EnvelopeError, Spool)

__all__ = ["QueueManager", "FAST_CHANNEL_SIZE", "PROCESS_TIMEOUT_SECONDS", "CRASH_LIMIT",
           "CHECKED_AFTER_START",
           "record_set_aside", "record_copies"]

FAST_CHANNEL_SIZE = 1000        # ids waiting in memory per lane; more wait on disk (rule 1)
RESCAN_SECONDS = 30.0           # fast/ is listed this often for unannounced messages (rule 1)
DELETE_WAIT_SECONDS = 10        # a dropped message waits this long at most for its event
STOP_GRACE_SECONDS = 30         # how long a clean stop waits for attempts in progress (rule 7)
RECORD_CUT_SECONDS = 10         # how long past the stop's grace an attempt may take to record
                                # its results (rule 7)
HOP_ATTEMPTS = 20               # attempts in progress per next hop (rule 8; Postfix's default
                                # destination concurrency limit)


@dataclass
class SlowRetry:
    """What `QueueManager.slow_retry` did: the ids made due, those taken up for an attempt
    already, those not in the slow queue, and the first error writing an envelope."""
    due: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None


def hop_attempts(max_outgoing: int) -> int:
    """Rule 8: the attempts one next hop may have in progress, at most HOP_ATTEMPTS and
    leaving at least one of `max_outgoing` connections to the other next hops (but for a
    limit of 1, which one next hop must be able to use)."""
    return min(HOP_ATTEMPTS, max(1, max_outgoing - 1))
MAX_ATTEMPTS = 256              # attempts in progress in all (rule 8)
MAX_WAITING = 10_000            # messages waiting for a full next hop (rule 8)
SLOW_CHANNEL_SIZE = 100
LOAD_CHUNK = 100                # entries per thread call of the look at start (rule 15)
CHECKED_AFTER_START = ("slow", "hold")  # their entries are looked at after SMTP answers
                                        # (rule 15), not by the core's recover()
FAST_WORKERS = 16               # small mail, and what is processed already (rule 13)
LARGE_WORKERS = 16              # large messages to process (rule 13): at most as many as
                                # one lane took before
SLOW_WORKERS = 8
CRASH_LIMIT = 3                 # SPEC §4: the third crash holds the message
CRASH_RETRY_SECONDS = 1.0
SETTLED_POLL_SECONDS = 0.05
ERROR_RETRY_SECONDS = 60.0      # after an unexpected error handling a message
PAUSE_POLL_SECONDS = 0.2


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _as_sent(message: bytes) -> bytes:
    """`message` with each line end (a bare LF, a lone CR, CRLF) as CRLF: what
    core/smtp/client.py's DataEncoder sends for it (submit_generated)."""
    if message.count(b"\r\n") == message.count(b"\n") == message.count(b"\r"):
        return message                      # as it is (every composer of ours)
    return _LINE_END.sub(b"\r\n", message)


class QueueManager:
    def __init__(self, spool: Spool, settings: Callable[[], Mapping], events, counters,
                 clock: WallClock, pipeline, deliverer, *, tick_seconds: float = 1.0,
                 rescan_seconds: float = RESCAN_SECONDS, queue_files=None) -> None:
        """`tick_seconds`: how often (trio time) the slow queue looks at the wall clock;
        `rescan_seconds`: how often fast/ is listed (rule 1); `queue_files`: a
        QueueFileSave (rule 9), none kept without it."""
        self.spool = spool
        self.settings = settings
        self.events = events
        self.counters = counters
        self.clock = clock
        self.pipeline = pipeline
        self.deliverer = deliverer
        self.tick_seconds = tick_seconds
        self.rescan_seconds = rescan_seconds
        self.notices = NoticeWriter(self)
        self.queue_files = queue_files if queue_files is not None else NoQueueFileSave()
        # `hook(envelope, addresses)` after an attempt delivered to `addresses` (the
        # auto-generated whitelist learns from them)
        self.delivery_hooks: list[Callable[[Envelope, list[str]], None]] = []
        # `hook(envelope)` for each whole slow or hold entry looked at after the start
        # (rule 15), as its chunk ends (the core writes lost `accepted` events so), and for
        # each held one a hold action reads (core/spool/hold.py rule 5): a hook is
        # idempotent, and sees an entry the look left out before it leaves hold/
        self.load_hooks: list[Callable[[Envelope], None]] = []
        self.schedule = SlowSchedule()
        # next hop -> (trio time its reordering began, messages moved to the front so far):
        # what REORDERING_STOPPED reports (guide Table 7-5)
        self._reorderings: dict[str, tuple[float, int]] = {}
        self._fast_send, self._fast_recv = trio.open_memory_channel(FAST_CHANNEL_SIZE)
        self._large_send, self._large_recv = trio.open_memory_channel(FAST_CHANNEL_SIZE)
        self._handed_over: dict[str, Envelope] = {}  # at most one per id in the channels
        self._slow_send, self._slow_recv = trio.open_memory_channel(SLOW_CHANNEL_SIZE)
        self._fast_ids: set[str] = set()      # in fast/ as far as we know
        self._alerts_only = False             # stopping: see deliver_alerts_only
        self._busy: set[str] = set()          # queued in a channel or being handled
        self._paused: dict[str, str] = {}     # id -> queue, waiting for delivery.paused off
        self._deleting: set[str] = set()      # dropped, deleted once its events are written
        self._retrying: set[str] = set()      # fast/ ids waiting out ERROR_RETRY_SECONDS
        self._errors: dict[str, str] = {}     # id -> the error last recorded for it (rule 12)
        self._hold_count = 0
        self._rescan = trio.Event()
        self._large_left = False              # large ids left in fast/, the lane full (rule 13)
        self._slow_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._attempts: set[trio.CancelScope] = set()   # delivery attempts in progress
        self._recording: set[trio.CancelScope] = set()  # their results being recorded
        self._grace_ends: float | None = None   # trio time the stop's grace ends (rule 7)
        self._delivering: set[str] = set()    # in an attempt, or waiting for a next hop
        self._trying: dict[str, float] = {}    # in an attempt: since when (wall clock)
        self._hops = HopGate(HOP_ATTEMPTS)
        self._attempt_slots = trio.Semaphore(MAX_ATTEMPTS)
        self._hop_freed = trio.Event()         # a waiting message went on (rule 8)
        self._stopping = False
        self._loaded = trio.Event()            # slow and hold entries looked at (rule 15)
        self._slow_unread = 0                  # slow entries listed, not looked at yet
        self._accepting_while_loading: set[str] = set()   # next hops (rule 15)

    # --- public API ---------------------------------------------------------------------------
    async def run(self, *, recovery=None, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild state from the spool (after `spool.recover()`), start the workers, then
        report ready; the slow and hold entries are looked at after that (rule 15).
        `recovery` (a RecoveryReport) is accepted for symmetry; unused."""
        fast, slow, hold = await trio.to_thread.run_sync(files.list_queues, self.spool)
        self._hold_count, self._slow_unread = len(hold), len(slow)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if hasattr(self.deliverer, "run"):
                await nursery.start(self.deliverer.run)
            async with self._fast_recv, self._large_recv, self._slow_recv:
                for _ in range(FAST_WORKERS):
                    nursery.start_soon(self._worker, self._fast_recv.clone(), "fast",
                                       self._handle_fast)
                for _ in range(LARGE_WORKERS):
                    nursery.start_soon(self._worker, self._large_recv.clone(), "fast",
                                       self._handle_large)
                for _ in range(SLOW_WORKERS):
                    nursery.start_soon(self._worker, self._slow_recv.clone(), "slow",
                                       self._handle_slow)
            nursery.start_soon(self._load_waiting, slow, hold)
            nursery.start_soon(self._rescan_loop)
            nursery.start_soon(self._slow_loop)
            nursery.start_soon(self._pause_loop)
            nursery.start_soon(self._grace_at_stop)
            # the rescan takes up what is in fast/, each message in its lane (rule 13)
            self._fast_ids.update(fast)
            self._rescan.set()
            task_status.started()

    def message_accepted(self, queue_id: str, envelope: Envelope | None = None) -> None:
        """A new message is in fast/ (never blocks; see rule 1). The SMTP listener hands over
        the envelope it just committed, which saves reading it back and says its lane
        (rule 13); it is only a cache — the spool stays the truth."""
        self._fast_ids.add(queue_id)
        if queue_id in self._busy:
            return
        if envelope is not None and self._is_large(envelope):
            if self._to_large_lane(queue_id, envelope):
                self._busy.add(queue_id)
            return
        try:
            self._fast_send.send_nowait(queue_id)
            self._busy.add(queue_id)
            if envelope is not None:
                self._handed_over[queue_id] = envelope
        except trio.WouldBlock:
            self._rescan.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # stopping: the workers are gone; the next start finds it in fast/
            self._busy.discard(queue_id)

    def rescan(self) -> None:
        """Take up every message in fast/ that no worker has (rule 1): a listener process
        ended, and with it the announcements of what it committed last. Never blocks."""
        self._rescan.set()

    @property
    def loaded(self) -> trio.Event:
        """Set once the slow and hold entries listed at start are looked at (rule 15): what
        a hold action or a slow-queue retry waits for (the core's command runner, apart:
        core/control.py)."""
        return self._loaded

    def attempts_in_progress(self) -> dict[str, int]:
        """Queue id -> when its delivery attempt began (wall clock, whole seconds), for each
        in progress (at most MAX_ATTEMPTS): the status snapshot's, which `mailmoat queue
        list` shows (tester28c C3: a message held up by a silent next hop showed as `due`
        for minutes, as one nobody was trying)."""
        return {queue_id: round(since) for queue_id, since in self._trying.items()}

    def queue_sizes(self) -> dict[str, int]:
        # until the look at start ends, the slow entries listed and not looked at yet too
        return {"fast": len(self._fast_ids), "slow": len(self.schedule) + self._slow_unread,
                "hold": self._hold_count}

    async def settled(self, queue_ids) -> None:
        """Wait until none of *queue_ids* is in fast/ or being handled: delivered, bounced,
        held, deferred to slow/ or waiting for a pause to end. For the core's stop
        (core/app.py), which waits for its Service Stop alert this way; polled, as it
        happens once per run."""
        while any((q in self._fast_ids or q in self._busy) and q not in self._paused
                  for q in queue_ids):
            await trio.sleep(SETTLED_POLL_SECONDS)

    async def submit_generated(self, sender: str, recipients: list[str], message_bytes: bytes,
                               *, is_bounce: bool = False, kind: str = "bounce",
                               scan: bool = False) -> str:
        """Queue a message Mailmoat made (bounce, notice, alert, released quarantine mail)
        through the durable accept path; returns its queue id. With `scan` false it skips
        the pipeline. Its events carry its own Subject, read as the SMTP listener reads a
        received message's.

        Every line of it is spooled ending in CRLF, as delivery sends it (`_as_sent`), so
        its size, and the SIZE= it is announced with (RFC 1870 §3 counts the CR-LF pairs),
        are the octets sent, whichever generator made it. Each composer had to remember it
        and two did not: a Suspect Message alert of 757 octets went out as 776 (outbound19
        B2; review19 r2 D2)."""
        message_bytes = _as_sent(message_bytes)
        meta = {"kind": kind}
        subject = event_subject(head_facts(message_bytes).subject)   # for its events
        if subject:
            meta[SUBJECT_META] = subject
        fields = {"is_generated": True, "is_bounce": is_bounce, "processed": not scan,
                  "meta": meta,
                  "body": "7BIT" if message_bytes.isascii() else "8BITMIME",
                  "smtputf8": not all(r.isascii() for r in recipients) or not sender.isascii()}
        queue_id = await trio.to_thread.run_sync(files.write_generated, self.spool, fields,
                                                 sender, list(recipients), message_bytes,
                                                 self.clock.now())
        self.message_accepted(queue_id)
        return queue_id

    async def hold_reprocess(self, ids=None) -> int:
        from core.spool.hold import reprocess
        await self._loaded.wait()       # hold/ looked at first (rule 15)
        return await reprocess(self, ids)

    async def hold_drop(self, ids=None) -> int:
        from core.spool.hold import drop
        await self._loaded.wait()
        return await drop(self, ids)

    async def hold_forward(self, address: str, subject: str | None = None, ids=None) -> int:
        from core.spool.hold import forward
        await self._loaded.wait()
        return await forward(self, address, subject, ids)

    async def slow_retry(self, ids=None) -> SlowRetry:
        """Retry now (core/spool/schedule.py rule 5) the slow messages *ids* (None: all),
        LOAD_CHUNK at a time: each chunk's entries held from the slow loop (`_busy`) while
        their envelopes are written, then due. Those taken up for an attempt already (being
        tried, or waiting for their next hop or for a pause to end) are left as they are."""
        await self._loaded.wait()       # slow/ looked at first (rule 15)
        asked = list(self.schedule.entries) if ids is None else list(dict.fromkeys(ids))
        result = SlowRetry()
        for start in range(0, len(asked), LOAD_CHUNK):
            chunk = []
            for queue_id in asked[start:start + LOAD_CHUNK]:
                if queue_id not in self.schedule.entries:
                    result.missing.append(queue_id)
                elif queue_id in self._busy:
                    result.taken.append(queue_id)
                else:
                    chunk.append(queue_id)
            now = self.clock.now()
            self._busy.update(chunk)
            try:
                gone, error = await trio.to_thread.run_sync(files.due_now, self.spool, chunk,
                                                            now)
            finally:
                self._busy.difference_update(chunk)
            result.error = result.error or error
            result.missing += gone
            due = [queue_id for queue_id in chunk if queue_id not in gone]
            self.schedule.retry_now(now, due)
            result.due += due
            self._slow_wakeup.set()
        return result

    # --- tasks ----------------------------------------------------------------------------------
    async def _load_waiting(self, slow: list[str], hold: list[str]) -> None:
        """Look at the slow and hold entries listed at start and schedule the slow ones
        (rule 15): LOAD_CHUNK entries to a thread at a time, each chunk's slow ones
        scheduled as it ends; a stop ends the look at the next entry."""
        moved: Counter[str] = Counter()     # hop -> loaded messages it moved up
        for queue, ids in (("slow", slow), ("hold", hold)):
            set_aside = functools.partial(self._entry_set_aside_from_thread, queue)
            for start in range(0, len(ids), LOAD_CHUNK):
                chunk = ids[start:start + LOAD_CHUNK]
                envelopes = await trio.to_thread.run_sync(functools.partial(
                    files.recover_waiting, self.spool, queue, chunk, set_aside=set_aside,
                    check_stop=trio.from_thread.check_cancelled))
                for envelope in envelopes:
                    for hook in self.load_hooks:
                        hook(envelope)
                if queue != "slow":
                    continue
                self._slow_unread -= len(chunk)
                now = self.clock.now()
                for envelope in envelopes:
                    if envelope.queue_id in self.schedule.entries:
                        continue        # scheduled since, from a newer state of it
                    hops = {r.next_hop for r in envelope.recipients
                            if r.status in ("pending", "deferred") and r.next_hop}
                    moved.update(self.schedule.loaded(
                        envelope.queue_id, envelope.next_attempt_at or now, hops,
                        self._accepting_while_loading))
        self._slow_unread = 0
        self._loaded.set()
        for hop, count in sorted(moved.items()):
            self._reordering_started(hop, count)
        self._accepting_while_loading.clear()
        self._slow_wakeup.set()

    def _entry_set_aside_from_thread(self, queue: str, queue_id: str, reason: str) -> None:
        """`_left_for_corrupt`, from the thread of `_load_waiting` as each entry goes."""
        trio.from_thread.run(self._left_for_corrupt, queue, queue_id, reason)

    async def _worker(self, receive, queue: str, handle) -> None:
        """`handle(queue_id)` for each id of `receive`; one that returns True has handed
        the message on to another lane (rule 13), where it stays busy."""
        async with receive:
            async for queue_id in receive:
                handed_on = False
                try:
                    handed_on = await handle(queue_id)
                except Exception as exc:     # boundary: per message; it stays on disk
                    self._failed(queue, queue_id, exc,
                                 await self._envelope_for_event(queue, queue_id))
                finally:
                    if not handed_on:
                        self._release(queue_id)

    async def _envelope_for_event(self, queue: str, queue_id: str) -> Envelope | None:
        """The envelope of a message whose handling failed, for its event (`_failed`); None
        when it cannot be read (the entry set aside or gone, or the disk's own error)."""
        try:
            return await trio.to_thread.run_sync(self.spool.read_envelope, queue, queue_id)
        except (OSError, EnvelopeError):
            return None

    def _failed(self, queue: str, queue_id: str, exc: Exception,
                envelope: Envelope | None = None) -> None:
        """An unexpected error handling a message: another try later, and an event unless
        the last one for this message said the same (rule 12). The event carries the
        message's sender, recipients and subject when `envelope` is given, as its other
        events do (diskfull21 C1: a detail report search by subject did not find it)."""
        error = f"{type(exc).__name__}: {exc}"
        if self._errors.get(queue_id) != error:
            self._errors[queue_id] = error
            fields = envelope.event_fields() if envelope is not None else {
                "queue_id": queue_id}
            # One event per message (its detail report row says why it waits), not per
            # condition: a full disk has its low_disk event; the text says so (life19 C3)
            self.events.record(Action.SCAN_ERROR, rule="queue.error",
                               info=f"{error}; trying this message again every "
                                    f"{ERROR_RETRY_SECONDS:.0f} s (recorded once for it)",
                               **fields)
        assert self._nursery is not None
        self._nursery.start_soon(self.queue_files.error, queue_id)
        if queue == "fast":
            self._requeue_later(queue_id, ERROR_RETRY_SECONDS)
        elif queue_id in self.schedule.entries:
            self.schedule.entries[queue_id].next_attempt_at = (
                self.clock.now() + ERROR_RETRY_SECONDS)

    def _release(self, queue_id: str) -> None:
        """A worker or an attempt is done with the message: it may be taken up again, unless
        it waits for the pause to end, for its drop event or for its delivery attempt. A slow
        one given back so without its attempt's results (reading it failed) is no longer
        in attempt for the reordering (`SlowSchedule.untaken`)."""
        if queue_id not in self._paused and queue_id not in self._deleting \
                and queue_id not in self._delivering and queue_id not in self._retrying:
            self._busy.discard(queue_id)
            self.schedule.untaken(queue_id)

    def _requeue_later(self, queue_id: str, delay_seconds: float) -> None:
        """Offer a fast/ message to the workers again after *delay_seconds* (trio time).
        Busy meanwhile, so that a rescan of fast/ does not take it up early and start a
        second wait beside this one (a retry and an event more each 30 s on a full disk)."""
        self._retrying.add(queue_id)

        async def later() -> None:
            await trio.sleep(delay_seconds)
            self._retrying.discard(queue_id)
            self._busy.discard(queue_id)
            self.message_accepted(queue_id)
        assert self._nursery is not None
        self._nursery.start_soon(later)

    async def _rescan_loop(self) -> None:
        """Feed the workers the fast/ ids nobody offered them (rule 1): all of them after an
        overflow of the channel or `rescan()`, those left over from the previous listing
        every `rescan_seconds`. Blocking sends are the small lane's backpressure; the large
        lane's is that its ids wait in fast/ (rule 13)."""
        left_over: set[str] = set()     # not handled at the previous listing
        while True:
            with trio.move_on_after(self.rescan_seconds):
                await self._rescan.wait()
            take_all = self._rescan.is_set()
            self._rescan = trio.Event()
            ids = await trio.to_thread.run_sync(lambda: list(self.spool.list("fast")))
            # What is known and not busy but no longer listed has gone (or comes back with
            # its own announcement); what is busy stays, listed or not.
            self._fast_ids = set(ids).union(q for q in self._fast_ids if q in self._busy)
            waiting = [q for q in ids if q not in self._busy]
            take = waiting if take_all else [q for q in waiting if q in left_over]
            left_over = set(waiting).difference(take)
            if not take:
                continue
            take = await self._without_copies(take)
            large = await trio.to_thread.run_sync(self._large_files, take)
            # the large lane first, never waited for (rule 13): what does not fit waits in
            # fast/ until the large lane asks for a rescan
            for queue_id in take:
                if queue_id in large and queue_id not in self._busy:
                    if not self._to_large_lane(queue_id):
                        break
                    self._busy.add(queue_id)
            for queue_id in take:
                if queue_id not in large and queue_id not in self._busy:
                    self._busy.add(queue_id)
                    await self._fast_send.send(queue_id)

    def _large_files(self, fast_ids: list[str]) -> set[str]:
        """Those of *fast_ids* whose message file is large (rule 13; in a thread). One gone
        meanwhile is not: the small lane finds it gone. Processed or not, unlike
        `_is_large`: one stat per id tells the size, not whether it was processed, which
        reading every envelope would; one processed already (fast/ at a start after a
        pause or a crash) only starts its attempt in the large lane."""
        large = set()
        for queue_id in fast_ids:
            try:
                if is_large_message(os.stat(self.spool.message_path("fast", queue_id)).st_size):
                    large.add(queue_id)
            except (OSError, ValueError):
                pass
        return large

    async def _slow_loop(self) -> None:
        await self._loaded.wait()       # rule 15
        while True:
            if not self._is_paused():
                due = self.schedule.due(self.clock.now(), exclude=self._busy)
                self._busy.update(due)
                self.schedule.taken(due)        # not moved up by a reordering meanwhile
                for queue_id in due:
                    await self._slow_send.send(queue_id)
            next_at = self.schedule.next_due_at(exclude=self._busy)
            wait = self.tick_seconds
            if next_at is not None:
                wait = max(0.0, min(wait, next_at - self.clock.now()))
            with trio.move_on_after(wait if wait > 0 else self.tick_seconds / 10):
                await self._slow_wakeup.wait()
            self._slow_wakeup = trio.Event()

    async def _pause_loop(self) -> None:
        """Release what waited for `delivery.paused` to turn off (rule 5)."""
        while True:
            await trio.sleep(PAUSE_POLL_SECONDS)
            if self._paused and not self._is_paused():
                waiting, self._paused = self._paused, {}
                for queue_id, queue in waiting.items():
                    channel = self._fast_send if queue == "fast" else self._slow_send
                    await channel.send(queue_id)
                self._slow_wakeup.set()

    def _is_paused(self) -> bool:
        return bool(self.settings().get("delivery.paused"))

    # --- fast queue -----------------------------------------------------------------------------
    async def _read(self, queue: str, queue_id: str) -> Envelope | None:
        """The message's envelope, checked against its file (rule 10); None when it is no
        longer in *queue* or was set aside. Another OSError (the disk's, not the entry's)
        propagates: the worker's boundary tries the message again later (`_failed`)."""
        try:
            return await trio.to_thread.run_sync(self.spool.read_entry, queue, queue_id)
        except FileNotFoundError:
            return None
        except EnvelopeError as exc:
            await self._set_aside(queue, queue_id, str(exc))
            return None

    async def _set_aside(self, queue: str, queue_id: str, reason: str) -> None:
        """Move a damaged entry to corrupt/ (rule 10)."""
        try:
            await trio.to_thread.run_sync(self.spool.set_aside, queue, queue_id, reason)
        except OSError as exc:
            self.events.record(Action.SCAN_ERROR, queue_id=queue_id, rule=CORRUPT_RULE,
                               info=f"unreadable queue entry in {queue}: {reason}; not moved "
                                    f"to corrupt/: {exc}")
            return
        await self._left_for_corrupt(queue, queue_id, reason)

    async def _left_for_corrupt(self, queue: str, queue_id: str, reason: str) -> None:
        """The entry *queue_id* of *queue* was moved to corrupt/ for *reason* (rule 10, and
        the look at start of rule 15): the counts follow, its event, and its pending copy
        is kept (Queue File Save), not left over."""
        self._forget(queue, queue_id)
        record_set_aside(self.events, queue, queue_id, reason)
        await self.queue_files.error(queue_id)

    def _forget(self, queue: str, queue_id: str) -> None:
        """The entry left *queue* other than by a move of ours: the counts follow."""
        self._errors.pop(queue_id, None)
        if queue == "fast":
            self._fast_ids.discard(queue_id)
        elif queue == "slow":
            self.schedule.remove(queue_id)
        elif queue == "hold":
            self._hold_count -= 1

    async def _without_copies(self, fast_ids: list[str]) -> list[str]:
        """Those of *fast_ids* (about to be taken up by the rescan) in no other queue;
        the others are left in one queue by shared/spool.py rule 7 (rule 11)."""
        def find() -> dict[str, list[str]]:
            return {q: others for q in fast_ids
                    if (others := self.spool.queues_holding(q, "fast"))}
        copies = await trio.to_thread.run_sync(find)
        for queue_id, others in copies.items():
            if queue_id in self._busy:
                continue    # announced and taken up meanwhile: perhaps moved by now
            kept, done = await trio.to_thread.run_sync(self.spool.resolve_copies, queue_id,
                                                       ["fast", *others])
            for queue, what in done:
                if what == "deleted" or what.startswith(CORRUPT + "/"):
                    self._forget(queue, queue_id)
            record_copies(self.events, queue_id, kept, done)
        return [q for q in fast_ids if q not in copies]

    async def _write(self, queue: str, envelope: Envelope) -> None:
        await trio.to_thread.run_sync(self.spool.write_envelope, queue, envelope)

    async def _move(self, queue_id: str, src: str, dst: str) -> None:
        try:
            await trio.to_thread.run_sync(self.spool.move, queue_id, src, dst)
        except FileExistsError:
            # A copy is in dst already (rule 11), put there by hand. The one in src is the
            # state just written here (delivered recipients marked, say); the other is
            # older, and kept it would deliver them again. It goes aside and the move is
            # made; when it cannot go, the move fails and is tried again (_failed).
            await self._set_aside(dst, queue_id, f"an older copy, in {dst} when the one "
                                                 f"in {src} was moved there")
            await trio.to_thread.run_sync(self.spool.move, queue_id, src, dst)
        self._errors.pop(queue_id, None)
        if src == "fast":
            self._fast_ids.discard(queue_id)
        if dst == "fast":
            self._fast_ids.add(queue_id)
        self._hold_count += (dst == "hold") - (src == "hold")

    async def _delete(self, queue: str, queue_id: str) -> None:
        # Inline, not in a thread: a rename and a few unlinks (no fsync) cost less than a
        # thread hop, which here cost some 100 futex calls of GIL hand-over per message
        # (strace -c) and a third of the process's CPU (A/B on a quiet machine).
        self.spool.delete(queue, queue_id)
        self._errors.pop(queue_id, None)
        self._fast_ids.discard(queue_id)
        self.schedule.remove(queue_id)
        if queue == "hold":
            self._hold_count -= 1

    def delete_when_recorded(self, queue: str, queue_id: str) -> None:
        """Delete a message that leaves without delivery once the events that say so are
        committed (rule 4): a kill -9 in between leaves it in the spool, to be scanned and
        dropped again, rather than gone with no record of why. Until then it stays busy, so
        no worker takes it up again."""
        self._busy.add(queue_id)
        self._deleting.add(queue_id)

        async def delete() -> None:
            try:
                # Shielded (for a while): a stop right after the drop still deletes it once
                # the event is written, instead of leaving it to be scanned again, and
                # perhaps delivered under other settings, while reports say it was dropped.
                with trio.CancelScope(shield=True, deadline=trio.current_time()
                                      + DELETE_WAIT_SECONDS):
                    await self.events.committed()
                    await self._delete(queue, queue_id)
            except Exception as exc:     # boundary, as in _worker: it stays on disk
                self.events.record(Action.SCAN_ERROR, queue_id=queue_id, rule="queue.error",
                                   info=f"{type(exc).__name__}: {exc}; not deleted yet")
            finally:
                self._deleting.discard(queue_id)
                self._busy.discard(queue_id)
        assert self._nursery is not None
        self._nursery.start_soon(delete)

    async def _handle_fast(self, queue_id: str, *, large_lane: bool = False) -> bool:
        """Take up a fast/ message; True when it was handed on to the large lane (rule 13),
        where it stays busy."""
        envelope = self._handed_over.pop(queue_id, None)
        if envelope is not None and not self._is_whole(envelope):
            envelope = None         # gone (announced late, rule 1) or damaged: ask the spool
        if envelope is None:
            envelope = await self._read("fast", queue_id)
        if envelope is None:
            self._fast_ids.discard(queue_id)
            return False
        if not large_lane and self._is_large(envelope):
            return self._to_large_lane(queue_id, envelope)
        if not envelope.processed and not await self._process(envelope):
            return False
        await self._attempt("fast", envelope)
        return False

    async def _handle_large(self, queue_id: str) -> bool:
        if self._large_left and (self._large_send.statistics().current_buffer_used
                                 <= self._large_send.statistics().max_buffer_size // 2):
            self._large_left = False        # room for what waits in fast/ (rule 13)
            self._rescan.set()
        return await self._handle_fast(queue_id, large_lane=True)

    @staticmethod
    def _is_large(envelope: Envelope) -> bool:
        """The message goes to the large lane (rule 13): one the pipeline is still to
        process and the scanning workers take as large."""
        return not envelope.processed and is_large_message(envelope.size)

    def _to_large_lane(self, queue_id: str, envelope: Envelope | None = None) -> bool:
        """Put a large message's id in the large lane's channel, never waiting (rule 13);
        True when it is there. With the channel full it waits in fast/: the large lane asks
        for a rescan once its channel is half empty."""
        try:
            self._large_send.send_nowait(queue_id)
        except trio.WouldBlock:
            self._large_left = True
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False                    # stopping: the next start finds it in fast/
        if envelope is not None:
            self._handed_over[queue_id] = envelope
        return True

    def _is_whole(self, envelope: Envelope) -> bool:
        """A handed-over envelope still describes a message in fast/ (rule 10). Inline:
        one stat costs less than the thread hop that reading the entry would."""
        try:
            self.spool.check_message("fast", envelope)
        except (OSError, EnvelopeError):
            return False
        return True

    async def _process(self, envelope: Envelope) -> bool:
        """Run the pipeline; True when the message goes on to delivery (rule 2)."""
        from core.spool.dispositions import apply_result, crashed
        settings = self.settings()
        path = self.spool.message_path("fast", envelope.queue_id)
        await self.queue_files.keep(envelope, settings)
        try:
            # No deadline here: the pipeline limits the time in a worker (rule 2); one here
            # would also count the wait for a free worker against the message.
            result = await self.pipeline.process(envelope.queue_id, envelope, path, settings)
        except Exception as exc:            # boundary: a crash counts against the message
            await self.queue_files.error(envelope.queue_id)
            await crashed(self, envelope, f"{type(exc).__name__}: {exc}")
            return False
        goes_on = await apply_result(self, envelope, result)
        if not goes_on:     # dropped, held or quarantined: a scan error was kept by the hook
            self.queue_files.done(envelope.queue_id)
        return goes_on

    # --- slow queue -----------------------------------------------------------------------------
    async def _handle_slow(self, queue_id: str) -> None:
        envelope = await self._read("slow", queue_id)
        if envelope is None:
            self.schedule.remove(queue_id)
            return
        await self._attempt("slow", envelope)

    # --- delivery -------------------------------------------------------------------------------
    async def _grace_at_stop(self) -> None:
        """When the manager is cancelled (a clean stop), give the attempts in progress
        STOP_GRACE_SECONDS to finish (rule 7)."""
        try:
            await trio.sleep_forever()
        finally:
            self._stopping = True
            deadline = self._grace_ends = trio.current_time() + STOP_GRACE_SECONDS
            for scope in self._attempts:
                scope.deadline = min(scope.deadline, deadline)
            for scope in self._recording:
                scope.deadline = min(scope.deadline, deadline + RECORD_CUT_SECONDS)

    def deliver_alerts_only(self) -> None:
        """The core is stopping (core/app.py): attempts in progress go on, and the Service
        Stop alert may still go out, but no other delivery starts — every attempt cut at
        the end of the stop grace is a message a slow next hop may get twice."""
        self._alerts_only = True

    async def _attempt(self, queue: str, envelope: Envelope) -> None:
        """Start a delivery attempt of the message in a task of its own, or have it wait for
        a full next hop (rule 8)."""
        if self._stopping or (self._alerts_only and envelope.meta.get("kind") != "alert"):
            return
        settings = self.settings()
        hops = {hop.key for hop in self._routes(envelope, settings)}
        limit = hop_attempts(int(settings["smtp.max_outgoing"]))
        if limit != self._hops.limit:
            self._go_on(self._hops.set_limit(limit))
        queue_id = envelope.queue_id
        self._delivering.add(queue_id)
        while (full := self._hops.full_hop(hops)) is not None:
            if self._hops.waiting_count < MAX_WAITING:
                # `full` has attempts in progress: the end of one of them wakes it
                self._hops.wait(full, (queue, envelope))
                return
            await self._hop_freed.wait()            # too many wait already: backpressure
        self._hops.enter(hops)
        try:
            await self._attempt_slots.acquire()
        except BaseException:
            self._leave(queue_id, hops)
            raise
        assert self._nursery is not None
        self._nursery.start_soon(self._attempt_task, queue, envelope, hops)

    async def _attempt_task(self, queue: str, envelope: Envelope, hops: set[str]) -> None:
        """One delivery attempt (rule 7: shielded from a stop, for a while)."""
        try:
            with trio.CancelScope(shield=True) as scope:
                self._attempts.add(scope)
                self._trying[envelope.queue_id] = self.clock.now()
                try:
                    await self._attempt_now(queue, envelope)
                    # a later error is a new episode, with its own event (rule 12)
                    self._errors.pop(envelope.queue_id, None)
                finally:
                    self._attempts.discard(scope)
                    self._trying.pop(envelope.queue_id, None)
        except Exception as exc:            # boundary, as in _worker
            self._failed(queue, envelope.queue_id, exc, envelope)
        finally:
            self._attempt_slots.release()
            self._leave(envelope.queue_id, hops)

    def _leave(self, queue_id: str, hops: set[str]) -> None:
        """The attempt is over: free its next hops, and let what waited for them go on."""
        self._delivering.discard(queue_id)
        self._release(queue_id)
        self._go_on(self._hops.leave(hops))
        self._hop_freed.set()
        self._hop_freed = trio.Event()

    def _go_on(self, ready) -> None:
        """Attempt again the messages that waited for a next hop (`HopGate`), now free."""
        assert self._nursery is not None
        for queue, envelope in ready:
            self._delivering.discard(envelope.queue_id)
            self._nursery.start_soon(self._attempt_waited, queue, envelope)

    async def _attempt_waited(self, queue: str, envelope: Envelope) -> None:
        try:
            await self._attempt(queue, envelope)
        finally:
            self._release(envelope.queue_id)

    @staticmethod
    def _routes(envelope: Envelope, settings: Mapping) -> dict[Any, list]:
        """The recipients still to do, by the next hop they go to."""
        groups: dict[Any, list] = {}
        for recipient in envelope.recipients:
            if recipient.status in ("pending", "deferred"):
                hop = route(domain_of(recipient.address), settings)
                groups.setdefault(hop, []).append(recipient)
        return groups

    async def _attempt_now(self, queue: str, envelope: Envelope) -> None:
        """One delivery attempt of every recipient still to do, then rule 3."""
        if self._is_paused():
            if queue == "fast":   # it may wait long: keep "processed" across a restart
                await self._write(queue, envelope)
            self._paused[envelope.queue_id] = queue
            return
        settings = self.settings()
        path = self.spool.message_path(queue, envelope.queue_id)
        todo = [r for r in envelope.recipients if r.status in ("pending", "deferred")]
        groups = self._routes(envelope, settings)
        for hop, recipients in groups.items():
            for recipient in recipients:
                recipient.next_hop = hop.key
        results: dict[str, Any] = {}    # address -> (hop, RecipientResult), decided first
        recorded: set[str] = set()      # addresses recorded when their next hop ended (rule 14)
        one_at_a_time = trio.Lock()     # those records write the one envelope file
        running = len(groups)           # next hops whose delivery has not ended
        unwritten = False               # one of those records could not write the envelope

        def unrecorded() -> list:
            return [r for r in todo if r.address not in recorded]

        async def record_hop(recipients) -> None:
            nonlocal unwritten
            if not await self._record_hop(queue, envelope, recipients, results, recorded):
                unwritten = True

        async def deliver_group(hop, recipients) -> None:
            nonlocal running

            def decided(result) -> None:
                results[result.address] = (hop, result)

            addresses = [r.address for r in recipients]
            for result in await self.deliverer.deliver(hop, envelope, addresses, path, settings,
                                                       on_result=decided):
                decided(result)
            running -= 1
            if running:         # other next hops are still at it (rule 14)
                async with one_at_a_time:
                    await self._shielded(envelope, lambda: record_hop(recipients))

        async def record() -> None:
            envelope.attempts += 1
            failed = self._record_results(envelope, unrecorded(), results)
            await self._after_attempt(queue, envelope, failed, settings)

        ended = False
        try:
            async with trio.open_nursery() as nursery:
                for hop, recipients in groups.items():
                    nursery.start_soon(deliver_group, hop, recipients)
            ended = True
        finally:
            if not ended:       # cut (rule 7): what is decided is recorded all the same
                await self._shielded(envelope,
                                     lambda: self._record_cut(queue, envelope, unrecorded(),
                                                              results, unwritten))
        # Shielded too: the stop may come while the deliverer ends shielded (a QUIT), so
        # that it returns in full into a cancelled scope, and the envelope must still say
        # what the next hops took (rule 7; review-delivery A1).
        await self._shielded(envelope, record)

    async def _shielded(self, envelope: Envelope, record) -> None:
        """`await record()` shielded from the stop, until RECORD_CUT_SECONDS after its grace
        (rule 7). Past that deadline the rest is not written: a SCAN_ERROR says so, since
        the restart makes again what the envelope on disk does not show as done."""
        deadline = math.inf if self._grace_ends is None else \
            max(trio.current_time(), self._grace_ends) + RECORD_CUT_SECONDS
        with trio.CancelScope(shield=True, deadline=deadline) as scope:
            self._recording.add(scope)
            try:
                await record()
            finally:
                self._recording.discard(scope)
        if scope.cancelled_caught:
            self.events.record(
                Action.SCAN_ERROR, queue_id=envelope.queue_id, rule="queue.error",
                info=f"the stop cut the recording of a delivery attempt's results "
                     f"{RECORD_CUT_SECONDS} s after its grace: after the next start, what "
                     f"the queue file does not show as delivered or bounced is done again")

    async def _record_hop(self, queue: str, envelope: Envelope, recipients, results,
                          recorded: set[str]) -> bool:
        """Record what a next hop's delivery decided while the message's other next hops
        are still at it (rule 14): its delivered and deferred recipients (their events; the
        envelope written once one was delivered), added to *recorded*. Its failed ones wait
        for the attempt's end, which bounces them all in one DSN (rule 3) and marks none
        failed before its bounce is queued (rule 4). False when the envelope could not be
        written: the attempt's end must write it, cut by the stop or not."""
        done = [r for r in recipients
                if r.address in results and results[r.address][1].outcome != "failed"]
        self._record_results(envelope, done, results)
        recorded.update(r.address for r in done)
        if not any(r.status == "delivered" for r in done):
            return True         # nothing a restart would do twice
        try:
            await self._write(queue, envelope)
        except OSError:
            # A full disk, say: the attempt's end writes the envelope again (`_record_cut`
            # too, when the stop cuts it), or says why it cannot (`_failed`). Raising here
            # would cut the other next hops' deliveries.
            return False
        return True

    async def _record_cut(self, queue: str, envelope: Envelope, todo, results,
                          unwritten: bool) -> None:
        """Record the results a cut attempt has (rule 7: the delivered and failed ones, and
        every result of a next hop whose delivery had ended) as `_after_attempt` would,
        without a schedule or a delay notice for the others, which the restart takes up as
        they were. The envelope is written with the others first, the failed ones still to
        do, before their bounce (rule 4's order for those): a bounce that cannot be queued
        in the time left (RECORD_CUT_SECONDS, a full disk) then leaves the delivered ones
        recorded, and no recipient is marked failed before its bounce is queued.
        *todo* is what the next hops recorded early (rule 14) left; `unwritten`: one of
        those records could not write the envelope (a moment of full disk), which is then
        written here even with nothing else decided. Before, a stop that cut the attempt
        while the other next hops had decided nothing left that next hop's delivered
        recipients "pending" on disk, with no event, and the restart sent them a second
        copy (review19 r3 R1)."""
        known = [r for r in todo if r.address in results]
        if not known:
            if unwritten:
                await self._write(queue, envelope)
            return
        envelope.attempts += 1
        to_bounce = [r for r in known if results[r.address][1].outcome == "failed"]
        others = [r for r in known if r not in to_bounce]
        self._record_results(envelope, others, results)
        if to_bounce:
            if others or unwritten:
                await self._write(queue, envelope)
            failed = self._record_results(envelope, to_bounce, results)
            await self.queue_files.error(envelope.queue_id)
            await self.notices.bounce(queue, envelope, failed)
        if any(r.status in ("pending", "deferred") for r in envelope.recipients):
            await self._write(queue, envelope)
            return
        await self.complete(queue, envelope)

    def _record_results(self, envelope: Envelope, todo, results) -> list:
        failed = []
        hops_ok, hops_deferred = set(), set()
        # The message's columns (its client IP and inbound connection id too: guide Table
        # 7-8 "Delivered"), each event naming its one recipient.
        fields = envelope.event_fields()
        for recipient in todo:
            hop, result = results[recipient.address]
            recipient.status = result.outcome
            recipient.attempts += 1
            recipient.last_error = None if result.outcome == "delivered" else result.text
            recipient.extra[ENHANCED_STATUS] = result.status
            recipient.extra["remote_mta"] = result.remote_mta
            recipient.extra["is_remote_reply"] = result.is_remote_reply
            if result.note:             # beside last_error, never in it (for the DSN)
                recipient.extra[DELIVERY_NOTE] = result.note
            else:
                recipient.extra.pop(DELIVERY_NOTE, None)
            action, counter = {"delivered": (Action.DELIVERED, "delivered"),
                               "deferred": (Action.DEFERRED, None),
                               "failed": (Action.DELIVERY_FAILED, "delivery_failures")}[
                result.outcome]
            if counter:
                self.counters.incr(counter)
            self.events.record(action, **{**fields, "recipients": [recipient.address]},
                               result=result.outcome, info=result.full_text, rule=hop.rule,
                               data={"next_hop": hop.key, "remote_mta": result.remote_mta,
                                     "status": result.status,
                                     # the status is the next hop's reply, not our finding
                                     **({"remote_reply": True} if result.is_remote_reply
                                        else {}),
                                     **origin_data(envelope)})
            if result.outcome == "failed":
                failed.append(recipient)
            (hops_ok if result.outcome == "delivered" else
             hops_deferred if result.outcome == "deferred" else set()).add(hop.key)
        delivered = [r.address for r in todo if r.status == "delivered"]
        if delivered:
            for hook in self.delivery_hooks:
                hook(envelope, delivered)
        for key in hops_deferred - hops_ok:
            self.schedule.hop_deferred(key)
        for key in hops_ok:
            self._reordering_started(key, self.schedule.hop_delivered(key))
            if not self._loaded.is_set():
                # what the look at start schedules later goes too (rule 15)
                self._accepting_while_loading.add(key)
        return failed

    def _reordering_started(self, key: str, count: int) -> None:
        """*count* slow messages waiting for the next hop *key*, which took mail, go now
        (rule 2 of core/spool/schedule.py)."""
        if count:
            # a hop that defers and accepts again during its reordering adds to it
            started, moved = self._reorderings.get(key, (trio.current_time(), 0))
            self._reorderings[key] = (started, moved + count)
            self.events.record(Action.REORDERING_STARTED, info=key,
                               data={"next_hop": key, "messages": count})
            self._slow_wakeup.set()

    async def _after_attempt(self, queue: str, envelope: Envelope, failed: list,
                             settings: Mapping) -> None:
        queue_id = envelope.queue_id
        for hop in self.schedule.attempted(queue_id):
            started, moved = self._reorderings.pop(hop, (trio.current_time(), 0))
            self.events.record(Action.REORDERING_STOPPED, info=hop, data={
                "next_hop": hop, "messages": moved,
                "seconds": round(trio.current_time() - started, 3)})
        deferred = [r for r in envelope.recipients if r.status in ("pending", "deferred")]
        now = self.clock.now()
        expired = bool(deferred) and retry_expired(envelope.received_at, settings, now)
        if failed:
            await self.queue_files.error(queue_id)
            if not expired:     # else one bounce says both (notices.py rule 2)
                await self.notices.bounce(queue, envelope, failed)
        if not deferred:
            await self.complete(queue, envelope)
            return
        if expired:
            await self.queue_files.error(queue_id)
            await self.notices.expire(queue, envelope, deferred, failed)
            return
        if not envelope.first_deferral_notice_sent:
            envelope.first_deferral_notice_sent = True    # even when none may be sent
            await self.notices.delay(queue, envelope, deferred, settings)
        envelope.next_attempt_at = now + retry_delay(envelope.attempts,
                                                     settings["delivery.retry_initial_seconds"],
                                                     settings["delivery.retry_max_seconds"])
        await self._write(queue, envelope)
        if queue == "fast":
            await self._move(queue_id, "fast", "slow")
        self.schedule.put(queue_id, envelope.next_attempt_at,
                          {r.next_hop for r in deferred if r.next_hop})

    async def complete(self, queue: str, envelope: Envelope) -> None:
        """Every recipient is delivered or failed: the message goes."""
        await self._delete(queue, envelope.queue_id)
        self.queue_files.done(envelope.queue_id)
        # guide Table 7-8 "Completed": the client IP and connection id as well
        self.events.record(Action.COMPLETED, **envelope.event_fields(),
                           data=origin_data(envelope))


def record_copies(events, queue_id: str, kept: str, done: list[tuple[str, str]]) -> None:
    """The one event for an id found in several queues (rule 11; Spool.resolve_copies's
    `done`): a SCAN_ERROR of rule CORRUPT_RULE when a copy went to corrupt/ (a person looks
    at it: the Suspect Message alert), else of rule DUPLICATE_RULE. None when every other
    copy was gone by then (moved meanwhile: there was one)."""
    if not done:
        return
    said = "; ".join(f"the copy in {queue}: {'moved to ' if what.startswith(CORRUPT + '/') else ''}"
                     f"{what}" for queue, what in done)
    aside = any(what.startswith(CORRUPT + "/") for _, what in done)
    events.record(Action.SCAN_ERROR, queue_id=queue_id,
                  rule=CORRUPT_RULE if aside else DUPLICATE_RULE,
                  info=f"{queue_id} was in {len(done) + 1} queues (a copy of the spool made "
                       f"while it moved?): kept the copy in {kept}; {said}",
                  data={"kept": kept, "copies": dict(done)})


def record_set_aside(events, queue: str, name: str, reason: str) -> None:
    """The event for a queue entry moved to corrupt/, at start (recover) or when taken up
    (rule 10): a SCAN_ERROR of rule CORRUPT_RULE, which raises the Suspect Message alert."""
    events.record(Action.SCAN_ERROR, queue_id=name, rule=CORRUPT_RULE,
                  info=f"unreadable queue entry in {queue} moved to corrupt/: {reason}")
