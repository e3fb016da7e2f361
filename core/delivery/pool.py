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
       slot when a token is free, else closes the oldest idle connection of *another* key to
       free a token, else waits until a connection is returned or closed.
    3. At most one task uses a connection at a time (it is out of the pool while in use).
    4. Idle connections are closed after IDLE_CONNECTION_SECONDS (trio's clock) by `reap`,
       which the deliverer's `run` task calls every REAP_INTERVAL_SECONDS.

Never: open sockets itself (the deliverer does), or let a token leak — every path that
ends a slot calls `release`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["ConnectionPool", "Slot", "IDLE_CONNECTION_SECONDS", "REAP_INTERVAL_SECONDS"]

IDLE_CONNECTION_SECONDS = 30.0   # Postfix's smtp_connection_cache_time_limit is 2 s; 30 s
                                 # still closes well before a peer's 5-minute idle timeout
REAP_INTERVAL_SECONDS = 1.0


class Slot:
    """One connection's claim on the limiter; `session` is set once connected."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.session: Any = None
        self.idle_since: float = 0.0


class ConnectionPool:
    def __init__(self, limit: int, close: Callable[[Any], Awaitable[None]]) -> None:
        """`close(session)` closes a connection politely (QUIT) with its own deadline."""
        self.limiter = trio.CapacityLimiter(limit)
        self._close_session = close
        self._idle: dict[Any, list[Slot]] = {}
        self._changed = trio.Event()

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
    async def checkout(self, key: Any) -> Slot:
        """An idle slot for *key* (its `session` set) or a new one (`session` None)."""
        while True:
            idle = self._idle.get(key)
            if idle:
                slot = idle.pop()          # the most recently used: the likeliest alive
                if not idle:
                    del self._idle[key]
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

    def checkin(self, slot: Slot) -> None:
        """Give back a slot whose session is open and ready for another transaction."""
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
        """Close connections idle longer than *max_idle_seconds*; returns how many."""
        now = trio.current_time()
        stale = [slot for slots in self._idle.values() for slot in slots
                 if now - slot.idle_since >= max_idle_seconds]
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
        """Close every idle connection (at shutdown)."""
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
