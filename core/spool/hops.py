"""Delivery attempts per next hop (QueueManager rule 8).

What it owns
    `HopGate`: how many delivery attempts are in progress per next hop (`NextHop.key`), at
    most `limit` each, and the messages waiting for a busy next hop, in the order they came.
    A next hop that answers slowly, or accepts connections and never greets, then holds at
    most `limit` attempts, and mail for every other next hop goes on past it — as Postfix's
    per-destination concurrency limit does. Without it one dead next hop held every queue
    worker and stopped all delivery (an exploratory test: a healthy next hop got nothing
    for 90 s behind 20 messages to a host that never greeted).

Rules
    1. A message enters (`enter`) every next hop it has recipients for at once, or waits
       (`wait`) on the first that is full; it never holds part of its next hops.
    2. `leave` frees the message's next hops and hands back, per next hop freed, the first
       message waiting for it; the caller tries it again (it may wait on another next hop).
    3. Pure bookkeeping: no I/O, no trio; the caller bounds how many messages wait
       (`waiting_count`).
    4. The limit may change (`set_limit`: it follows `smtp.max_outgoing`, QueueManager rule
       8). A lower one lets the attempts in progress end; a higher one hands back at once
       the messages waiting for which there is room now.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

__all__ = ["HopGate"]


class HopGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: Counter[str] = Counter()
        self._waiting: dict[str, deque[Any]] = {}
        self.waiting_count = 0

    def full_hop(self, hops: Iterable[str]) -> str | None:
        """The first of `hops` with `limit` attempts in progress, or None."""
        return next((hop for hop in hops if self.active[hop] >= self.limit), None)

    def enter(self, hops: Iterable[str]) -> None:
        for hop in hops:
            self.active[hop] += 1

    def wait(self, hop: str, item: Any) -> None:
        self._waiting.setdefault(hop, deque()).append(item)
        self.waiting_count += 1

    def set_limit(self, limit: int) -> list[Any]:
        """Rule 4: the limit from now on; the messages that may go now because it rose, as
        many per next hop as it has room for (a raised limit reached no next hop that had
        messages waiting: each ending attempt woke one, review28d R9)."""
        self.limit = limit
        ready = []
        for hop in list(self._waiting):
            waiting = self._waiting[hop]
            for _ in range(min(max(0, limit - self.active[hop]), len(waiting))):
                ready.append(waiting.popleft())
                self.waiting_count -= 1
            if not waiting:
                del self._waiting[hop]
        return ready

    def leave(self, hops: Iterable[str]) -> list[Any]:
        """Free `hops` (rule 2); the messages that may go now, one per next hop freed."""
        ready = []
        for hop in hops:
            self.active[hop] -= 1
            if self.active[hop] <= 0:
                del self.active[hop]
            waiting = self._waiting.get(hop)
            if waiting:
                ready.append(waiting.popleft())
                self.waiting_count -= 1
                if not waiting:
                    del self._waiting[hop]
        return ready
