"""What one console process holds: its data home, wall clock, event writer, logon counters,
live sessions (console.sessions), logon throttle and the budgets of the HTTP protocol
violation and unauthorized access events (console.throttle).

Rules:
- One `ConsoleContext` per app, made by `create_app`; views and services reach it through
  `console_context()` and never build their own event writer (ARCHITECTURE invariant 4: one
  writer per process).
- A database connection lives for one request (`request_db()`), opened lazily and closed at
  teardown; SQLite connections are cheap and WAL lets the core write meanwhile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flask import current_app, g

from console.sessions import Sessions
from console.throttle import LogonThrottle, UnauthorizedBudget, ViolationBudget
from shared import disk
from shared import db as shared_db
from shared.clock import WallClock
from shared.events import EventWriter
from shared.paths import DataHome
from shared.settings_store import load

__all__ = ["ConsoleContext", "FailedLogons", "console_context", "request_db", "settings"]

EXTENSION_KEY = "mailmoat"


class FailedLogons:
    """Failed logons per account name since its last successful logon (guide Table 3-2).

    Kept in memory: a console restart starts the counts again. Bounded: past
    `MAX_NAMES` names the least recently failed one is forgotten.
    """

    MAX_NAMES = 10_000

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def fail(self, name: str) -> int:
        """Count one failure for `name`; returns the count including it."""
        with self._lock:
            count = self._counts.pop(name, 0) + 1
            self._counts[name] = count
            while len(self._counts) > self.MAX_NAMES:
                self._counts.popitem(last=False)
            return count

    def reset(self, name: str) -> None:
        with self._lock:
            self._counts.pop(name, None)

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)


@dataclass
class ConsoleContext:
    home: DataHome
    clock: WallClock
    events: EventWriter
    failed_logons: FailedLogons = field(default_factory=FailedLogons)
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LogonThrottle = field(default_factory=LogonThrottle)
    violations: ViolationBudget = field(default_factory=ViolationBudget)
    unauthorized: UnauthorizedBudget = field(default_factory=UnauthorizedBudget)
    # Free fraction of the file system of a path, as the core's low-disk alert measures it
    # (tests put a low value in instead of filling a disk).
    disk_free: Callable[[Path], float] = disk.disk_free_fraction
    # The same file system's free octets and inodes (console.status: a full disk keeps the
    # core from writing its status report); tests put a full one in the same way.
    disk_space: Callable[[Path], disk.DiskSpace] = disk.disk_space
    # Ports the listeners really use, set by console.serve (tests bind port 0); None = settings.
    bound_ports: dict[str, int] = field(default_factory=dict)
    # console.serve serves HTTP only, for want of a key and certificate that load.
    https_off: bool = False

    def close(self) -> None:
        self.events.close()


def console_context() -> ConsoleContext:
    return current_app.extensions[EXTENSION_KEY]


def request_db():
    """The request's SQLite connection (opened on first use, closed at teardown)."""
    conn = g.get("_mailmoat_db")
    if conn is None:
        conn = g._mailmoat_db = shared_db.connect(console_context().home.db)
    return conn


def close_request_db(_exc: BaseException | None = None) -> None:
    conn = g.pop("_mailmoat_db", None)
    if conn is not None:
        conn.close()


def settings() -> dict[str, Any]:
    """The full settings dict, read once per request."""
    values = g.get("_mailmoat_settings")
    if values is None:
        values = g._mailmoat_settings = load(request_db())
    return values


def forget_settings() -> None:
    """Drop the request's cached settings after a save."""
    g.pop("_mailmoat_settings", None)
