"""Outgoing SMTP connections: the global limit and reuse per next hop (SPEC §4 limits).

What this module owns
    `ConnectionPool`: one `trio.CapacityLimiter` whose tokens are *open connections* (busy
    or idle) — so at most `smtp.max_outgoing` delivery connections exist at once — and the
    idle connections kept per pool key (next hop + TLS mode) for reuse.

Rules
    1. A token is borrowed on behalf of a connection slot (`Slot`) before connecting and
       given back only when that connection is closed; an idle connection still holds its
       token. The limit follows `smtp.max_outgoing` live (`set_limit`); lowering it lets
       connections in use finish and close, and closes idle ones over it at once (`shed`:
       they sat above the new limit until their idle time ran out).
    2. `checkout(key)` returns an idle connection for the key if there is one, else a new
       slot when a token is free, else closes the oldest idle connection (of any key) to
       free a token, else waits until a connection is returned or closed.
       `checkout(key, reuse=False)` skips the first step: a second connection for the key
       while its first waits idle (core/delivery/deliver.py, handing recipients on to
       another host, gives back the first host's connection before it opens one there).
       That connection, just given back, is the most recently used idle one, so at the
       limit it is closed for the second only when no other connection is idle: every
       other token is held by a connection in use, and the limit counts idle connections
       too (rule 1), so there is no room for both. Under load at the limit a hand-on
       thus costs the first host's connection, and its next message opens a new one;
       waiting for a token instead would only close the next connection given back.
    3. At most one task uses a connection at a time (it is out of the pool while in use).
    4. Idle connections are closed after IDLE_CONNECTION_SECONDS (trio's clock) by `reap`,
       which the deliverer's `run` task calls every REAP_INTERVAL_SECONDS.
    5. A connection is used for at most REUSE_TIME_LIMIT_SECONDS from when it was opened
       (`Slot.opened_at`, set with its session): past it, `is_reusable` is false and the
       deliverer closes it instead of giving it back for reuse, and one found idle past it
       is closed (`checkout`, `reap`). Mail arriving more often than the idle time would
       otherwise keep one connection, and the host it happens to go to, for good.
    6. `close_all` (the deliverer's `run` ending at shutdown) closes the pool for good: no
       connection `is_reusable` after it, so an attempt still running in its grace closes
       (QUITs) the one it is done with instead of checking it in, idle where nothing would
       ever reap or QUIT it.
    Which connections are given back for reuse at all is the deliverer's choice
    (core/delivery/deliver.py: those to a best-preference host of the next hop).

Never: open sockets itself (the deliverer does), or let a token leak — every path that
ends a slot calls `release`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["ConnectionPool", "Slot", "IDLE_CONNECTION_SECONDS", "REAP_INTERVAL_SECONDS",
           "REUSE_TIME_LIMIT_SECONDS"]

IDLE_CONNECTION_SECONDS = 30.0   # Postfix's smtp_connection_cache_time_limit is 2 s; 30 s
                                 # still closes well before a peer's 5-minute idle timeout
REAP_INTERVAL_SECONDS = 1.0
REUSE_TIME_LIMIT_SECONDS = 300.0  # Postfix's smtp_connection_reuse_time_limit (300 s):
                                  # a busy next hop's connection still ends, and the next
                                  # one goes to the host the MX records prefer then (rule 5)


class Slot:
    """One connection's claim on the limiter; `session` is set once connected."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self._session: Any = None
        self.opened_at: float = 0.0     # trio time `session` was set: its reuse began (rule 5)
        self.idle_since: float = 0.0

    @property
    def session(self) -> Any:
        return self._session

    @session.setter
    def session(self, session: Any) -> None:
        if session is not None and session is not self._session:
            self.opened_at = trio.current_time()
        self._session = session


class ConnectionPool:
    def __init__(self, limit: int, close: Callable[[Any], Awaitable[None]]) -> None:
        """`close(session)` closes a connection politely (QUIT) with its own deadline."""
        self.limiter = trio.CapacityLimiter(limit)
        self._close_session = close
        self._idle: dict[Any, list[Slot]] = {}
        self._changed = trio.Event()
        self._closed = False             # rule 6

    # --- facts ----------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return self.limiter.borrowed_tokens

    @property
    def idle_connections(self) -> int:
        return sum(len(slots) for slots in self._idle.values())

    def set_limit(self, limit: int) -> None:
        if limit != self.limiter.total_tokens:
            self.limiter.total_tokens = limit
            self._notify()

    # --- borrowing ----------------------------------------------------------------------------
    async def checkout(self, key: Any, *, reuse: bool = True) -> Slot:
        """An idle slot for *key* (its `session` set), unless `reuse` is false, or a new one
        (`session` None) (rule 2)."""
        while True:
            idle = self._idle.get(key) if reuse else None
            if idle:
                slot = idle.pop()          # the most recently used: the likeliest alive
                if not idle:
                    del self._idle[key]
                if not self.is_reusable(slot):
                    await self._discard(slot, already_taken=True)
                    continue
                return slot
            slot = Slot(key)
            try:
                self.limiter.acquire_on_behalf_of_nowait(slot)
                return slot
            except trio.WouldBlock:
                pass
            victim = self._oldest_idle()
            if victim is not None:
                await self._discard(victim)
                continue
            changed = self._changed
            await changed.wait()

    def is_reusable(self, slot: Slot) -> bool:
        """Is the slot's connection within its reuse time limit (rule 5), and the pool
        still open (rule 6)?"""
        return not self._closed \
            and trio.current_time() - slot.opened_at < REUSE_TIME_LIMIT_SECONDS

    def checkin(self, slot: Slot) -> None:
        """Give back a slot whose session is open, ready for another transaction and
        `is_reusable`."""
        slot.idle_since = trio.current_time()
        self._idle.setdefault(slot.key, []).append(slot)
        self._notify()

    def release(self, slot: Slot) -> None:
        """The slot's connection is closed (or was never opened): free its token."""
        slot.session = None
        try:
            self.limiter.release_on_behalf_of(slot)
        except RuntimeError:     # not a borrower: released twice — harmless, keep going
            pass
        self._notify()

    # --- upkeep -------------------------------------------------------------------------------
    async def reap(self, max_idle_seconds: float = IDLE_CONNECTION_SECONDS) -> int:
        """Close connections idle longer than *max_idle_seconds*, or past their reuse time
        limit (rule 5); returns how many."""
        now = trio.current_time()
        stale = [slot for slots in self._idle.values() for slot in slots
                 if now - slot.idle_since >= max_idle_seconds or not self.is_reusable(slot)]
        for slot in stale:
            if self._take_idle(slot):
                await self._discard(slot, already_taken=True)
        return len(stale)

    async def shed(self) -> int:
        """Close idle connections, the oldest first, while more are open than the limit
        allows (rule 1); returns how many."""
        closed = 0
        while self.limiter.borrowed_tokens > self.limiter.total_tokens:
            victim = self._oldest_idle()
            if victim is None or not self._take_idle(victim):
                break
            await self._discard(victim, already_taken=True)
            closed += 1
        return closed

    async def close_all(self) -> None:
        """Close every idle connection, and the pool for good (at shutdown, rule 6)."""
        self._closed = True
        for slot in [s for slots in self._idle.values() for s in slots]:
            if self._take_idle(slot):
                await self._discard(slot, already_taken=True)

    # --- helpers ------------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _oldest_idle(self) -> Slot | None:
        slots = [s for slots in self._idle.values() for s in slots]
        return min(slots, key=lambda s: s.idle_since) if slots else None

    def _take_idle(self, slot: Slot) -> bool:
        slots = self._idle.get(slot.key)
        if not slots or slot not in slots:
            return False
        slots.remove(slot)
        if not slots:
            del self._idle[slot.key]
        return True

    async def _discard(self, slot: Slot, already_taken: bool = False) -> None:
        if not already_taken:
            self._take_idle(slot)
        session = slot.session
        try:
            if session is not None:
                await self._close_session(session)
        finally:
            self.release(slot)
