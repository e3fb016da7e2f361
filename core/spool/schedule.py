"""When the slow queue tries again: the backoff schedule and reordering (SPEC §4).

What this module owns
    `retry_delay(attempts, initial, maximum)`, `retry_until` and `retry_expired` (pure), and
    `SlowSchedule`, the in-memory view of the slow queue: for every message its next
    attempt (wall-clock unix time, as persisted in `envelope.next_attempt_at`) and the next
    hops it still waits for. It is rebuilt from the envelopes at startup, so a restart
    keeps the schedule.

Rules
    1. Backoff: the first retry comes `delivery.retry_initial_seconds` after a temporary
       failure, then the interval doubles, capped at `delivery.retry_max_seconds`.
    2. Reordering: a next hop becomes *deferring* when a delivery to it is deferred (and,
       at startup, every hop a slow message waits for is deferring). When a delivery to a
       deferring hop succeeds, the hop is accepting again: every slow message waiting for it
       becomes due at once and goes out ahead of other due messages — REORDERING_STARTED.
       When the last of those messages has had its attempt, REORDERING_STOPPED.
       Only messages really moved up count: not one `taken` for an attempt whose results
       are not in yet (the message whose own delivery the success is, others in flight on
       their own schedule, due() having listed them). None moved: no events (before, a
       message's own scheduled retry that succeeded wrote a pair, "messages=1", and the
       count included messages in flight: outbound19 B1).
       A message that the hop defers again on that attempt, while it takes other mail, is
       deferred for its own sake (a full mailbox, greylisting, one recipient's 451): that hop
       reorders it no more, and it waits for its backoff. Before, it went again after every
       message the busy hop took (diagnostics tester: 5 attempts in a second). So does a
       message in flight when the hop took other mail, and that it defers on that attempt.
    3. `due(now)` lists due messages, reordered ones first, then oldest due first; the
       queue manager says which it takes (`taken`), until `attempted`, or `untaken` when
       it gives one back without an attempt.
    4. Expiry (SPEC §4): what waits is tried for `delivery.retry_days` from when it began
       to wait (a message's `received_at`, a central copy's `pending_since`); the first
       attempt that fails temporarily at or after `retry_until` ends it. The queue
       manager, its delay notice ("retry until") and the central forwarder read it here.
    5. Retry now (`mailmoat queue retry --slow`, like Postfix's `postqueue -f`): the
       messages asked for that are not taken up for an attempt become due now, written so
       in their envelopes first (the queue manager: a restart before their attempt keeps
       it). Their attempt counts as any other: one that fails again waits for the next step
       of its backoff, and expiry (rule 4) is unchanged.

Never: touch the spool or read a clock — times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["retry_delay", "retry_until", "retry_expired", "SlowSchedule", "SlowEntry",
           "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86_400


def retry_delay(attempts: int, initial: float, maximum: float) -> float:
    """Seconds until the next try after *attempts* (>= 1) failed attempts (rule 1)."""
    attempts = max(1, attempts)
    delay = initial * (2 ** min(attempts - 1, 62))
    return float(min(delay, maximum))


def retry_until(since: float, settings: Mapping) -> float:
    """The unix time after which what waits since `since` is tried no more (rule 4)."""
    return since + settings["delivery.retry_days"] * SECONDS_PER_DAY


def retry_expired(since: float, settings: Mapping, now: float) -> bool:
    """True when what waits since `since` is past `delivery.retry_days` at `now` (rule 4)."""
    return now >= retry_until(since, settings)


@dataclass
class SlowEntry:
    next_attempt_at: float
    hops: frozenset[str] = frozenset()
    is_reordered: bool = False
    reordered_by: frozenset[str] = frozenset()   # hops whose reordering waits for its attempt
    # ... and those its attempt is or was for: reordered for, or taking other mail meanwhile
    tried_for: frozenset[str] = frozenset()
    declined_by: frozenset[str] = frozenset()    # hops that reorder it no more (rule 2)
    in_attempt: bool = False                     # taken, its attempt's results not in yet


@dataclass
class SlowSchedule:
    entries: dict[str, SlowEntry] = field(default_factory=dict)
    deferring_hops: set[str] = field(default_factory=set)
    reordering: dict[str, set[str]] = field(default_factory=dict)   # hop -> ids still to try

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, queue_id: str, next_attempt_at: float, hops) -> None:
        """The message waits for `hops` until `next_attempt_at`. After an attempt, a hop it
        was reordered for and still waits for declines it (rule 2); a reordering that came
        while the attempt was ending still stands."""
        hops = frozenset(hops)
        old = self.entries.get(queue_id)
        if old is None:
            self.entries[queue_id] = SlowEntry(next_attempt_at, hops)
            return
        self.entries[queue_id] = SlowEntry(
            next_attempt_at, hops, is_reordered=old.is_reordered and bool(old.reordered_by & hops),
            reordered_by=old.reordered_by & hops,
            declined_by=(old.declined_by | old.tried_for) & hops)

    def loaded(self, queue_id: str, next_attempt_at: float, hops, accepted) -> frozenset[str]:
        """A slow message read after the start (core/spool/manager.py rule 15): put() as a
        new one, its hops deferring as at startup, except the next hops of *accepted*,
        which took mail since the start; for those it is moved up, as it would have been
        had it been scheduled before they did (rule 2). Returns the hops it was moved up
        for. A hop that deferred other mail after it took mail reorders only those loaded:
        what it deferred meanwhile waits for its backoff."""
        hops = frozenset(hops)
        moved = hops & frozenset(accepted)
        self.entries[queue_id] = SlowEntry(next_attempt_at, hops, is_reordered=bool(moved),
                                           reordered_by=moved)
        self.deferring_hops.update(hops - moved)
        for hop in moved:
            self.reordering.setdefault(hop, set()).add(queue_id)
        return moved

    def remove(self, queue_id: str) -> None:
        self.entries.pop(queue_id, None)

    def hop_deferred(self, hop: str) -> None:
        self.deferring_hops.add(hop)

    def taken(self, queue_ids) -> None:
        """The queue manager took these messages for an attempt each (rule 3)."""
        for queue_id in queue_ids:
            entry = self.entries.get(queue_id)
            if entry is not None:
                entry.in_attempt = True

    def untaken(self, queue_id: str) -> None:
        """The queue manager gave a message taken back without an attempt (reading it
        failed: it waits for its error retry): not in attempt any more, and none of the hops
        that took mail meanwhile tried it (rule 3). Before, it stayed "in attempt" until
        its next attempt: a hop taking mail again neither moved it up nor counted it, and
        deferring it then declined it for good (review19 r3 R2)."""
        entry = self.entries.get(queue_id)
        if entry is not None and entry.in_attempt:
            entry.in_attempt = False
            entry.tried_for = frozenset()

    def hop_delivered(self, hop: str) -> int:
        """A delivery to *hop* succeeded; returns how many messages were moved up (rule 2)."""
        if hop not in self.deferring_hops:
            return 0
        self.deferring_hops.discard(hop)
        # tried_for: its attempt for this hop is under way or has just ended, and put() is
        # to say whether the hop held it back again (then it declines it) or took it
        waiting = set()
        for qid, entry in self.entries.items():
            if hop not in entry.hops or hop in entry.declined_by | entry.tried_for:
                continue
            if entry.in_attempt:    # it goes anyway, not moved up: the hop's own success
                entry.tried_for |= {hop}    # included; its attempt is one for this hop
            else:
                waiting.add(qid)
        if not waiting:
            return 0
        for qid in waiting:
            entry = self.entries[qid]
            entry.is_reordered = True
            entry.reordered_by |= {hop}
        self.reordering.setdefault(hop, set()).update(waiting)
        return len(waiting)

    def attempted(self, queue_id: str) -> list[str]:
        """A message had its attempt; returns the hops whose reordering is now over."""
        finished = []
        entry = self.entries.get(queue_id)
        if entry is not None:
            entry.is_reordered = entry.in_attempt = False
            entry.tried_for, entry.reordered_by = entry.tried_for | entry.reordered_by, frozenset()
        for hop, ids in list(self.reordering.items()):
            ids.discard(queue_id)
            if not ids:
                del self.reordering[hop]
                finished.append(hop)
        return finished

    def retry_now(self, now: float, queue_ids) -> None:
        """Rule 5: *queue_ids* (scheduled, not in an attempt: the queue manager's choice)
        are due at `now`, unless due earlier."""
        for queue_id in queue_ids:
            entry = self.entries.get(queue_id)
            if entry is not None:
                entry.next_attempt_at = min(entry.next_attempt_at, now)

    def due(self, now: float, exclude=frozenset()) -> list[str]:
        """Due ids: reordered first, then by next attempt (rule 3)."""
        ready = [(not e.is_reordered, e.next_attempt_at, qid) for qid, e in self.entries.items()
                 if qid not in exclude and (e.is_reordered or e.next_attempt_at <= now)]
        return [qid for *_, qid in sorted(ready)]

    def next_due_at(self, exclude=frozenset()) -> float | None:
        times = [0.0 if e.is_reordered else e.next_attempt_at
                 for qid, e in self.entries.items() if qid not in exclude]
        return min(times) if times else None
