"""What a locked database looks like to our code, in one place.

Another program can hold SQLite's write lock on mailmoat.db longer than the busy timeout
(shared/db.py BUSY_TIMEOUT_MS): an administrator's `sqlite3` session left inside a
transaction, a plain VACUUM of a large file, a slow disk. A write then fails with
SQLITE_BUSY, "database is locked". The core must not stop for it (scale19 A1: it did, SMTP
was down for about 50 s, and the listener processes it took down lost the events they had
not written yet): reception and delivery need no SQLite. So the writers of things that can
wait keep what they could not write, or skip it, and try again at their next turn: the
event writers (shared/events.py), the status snapshot (core/status.py), the command poller
(core/control.py), the auto-generated whitelist (core/scan/antispam/autowhitelist.py).

`BusyNotice` is how such a writer says it, on the process's standard error (the journal
under systemd): once when it begins to wait, once when it goes on, never at every try.
"""

from __future__ import annotations

import sqlite3
import sys

__all__ = ["is_busy", "is_held_by_another", "BusyNotice"]

_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_busy(exc: BaseException) -> bool:
    """True when `exc` is SQLite's "database is locked" (SQLITE_BUSY, SQLITE_LOCKED, their
    extended codes): another connection held the lock past the busy timeout."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


def is_held_by_another(exc: BaseException) -> bool:
    """True when `exc` is SQLITE_BUSY (or an extended code of it) alone: another connection
    held the database's lock past the busy timeout. SQLITE_LOCKED ("database table is
    locked") is left out: it comes from within one connection, ours, so it is a bug to
    report, not another program to wait for (review21b R1). `is_busy` takes both, for the
    writers that only wait and try again."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return str(exc).startswith("database is locked")


class BusyNotice:
    """The one-line notices of one writer (`what` waits) in `process` (module header).
    Touched from one task only."""

    def __init__(self, what: str, process: str = "core"):
        self.what = what
        self.process = process
        self.waiting = False
        self.tries = 0          # how many tries met the lock, all episodes together

    def locked(self, exc: BaseException) -> None:
        """The writer met the lock (`exc`) and will try again at its next turn."""
        self.tries += 1
        if not self.waiting:
            self.waiting = True
            print(f"mailmoat {self.process}: mailmoat.db stayed locked by another connection "
                  f"past the busy timeout ({exc}): {self.what} waits and is tried again",
                  file=sys.stderr, flush=True)

    def done(self) -> None:
        """The writer's try went through."""
        if self.waiting:
            self.waiting = False
            print(f"mailmoat {self.process}: mailmoat.db is free again: {self.what} goes on",
                  file=sys.stderr, flush=True)
