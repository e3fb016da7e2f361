"""Event retention (guide §3 "Configuring logging options"; SPEC §3 `logging.*`).

Rules:
- `logging.retention_days` N > 0: events older than N days are deleted by `purge_events`,
  which the console's scheduler runs daily (console.jobs). 0 keeps events for ever.
- The same N applies to the files of the diagnostics directory (`purge_diagnostics`, in the
  same daily job): SMTP conversation logs and saved queue files hold whole messages —
  personal data — and support needs days of them, not years. A file is as old as its last
  modification, at any depth; names starting with "." are the core's work in progress (a
  queue file copy waiting for its message's fate, core/spool/queue_file_save.py) and are
  left, with everything below them; folders stay, as the core writes into them at any time.
- The purge deletes in batches of `PURGE_BATCH_ROWS`, each its own short `BEGIN IMMEDIATE`
  transaction, and pauses between batches: the core's event writer (which waits up to the
  busy timeout) never waits longer than one batch, a few tens of milliseconds. The roll-up
  triggers of migration 0002 take each deleted event out of `event_hourly` in the same
  transaction, so reports stay exact while a purge runs. It is idempotent: run twice, the
  second run finds nothing to delete.
- The newest row (the highest id) is never deleted, even past the retention: SQLite gives a
  new row the highest id + 1, so an emptied table would hand out ids again below the alert
  engine's cursor (core/notify.py reads `id >` it) and the alerts for those events would be
  lost. One row kept past its time is the price.
- The space the purge frees goes back to the disk when it is more than a quarter of the
  file (`give_space_back`): a database made by this release is in SQLite's incremental
  auto-vacuum mode, and free pages are released in batches of `RELEASE_BATCH_PAGES`, each
  its own short write, as the deletes are. Below a quarter they stay for the next days'
  events (a gateway's daily purge frees about one day's worth, refilled the next day). A
  database made before that mode (auto_vacuum 0) keeps its size: docs/operations.md says
  how to convert it while Mailmoat is stopped.
- `logging.local` false: the writers stop storing events locally, except the few other parts
  of Mailmoat read as their input — the Status page's traffic chart (accepted, delivered,
  dropped, rejected), the events that raise alerts (core/notify.py), and, while SIEM forwarding is on,
  the events it forwards (the guide: SIEM logging is independent of local logging). Reports
  for such a period are empty apart from those. `local_storage_filter` is the writers' `keep`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from shared import db
from shared.busy import is_busy
from shared.events import CATEGORY_OF, SIEM_ACTIONS, Action, Category, Event
from shared.report_time import iso_local, zone_of

__all__ = ["PurgeResult", "purge_events", "cutoff_for", "cutoff_shown", "local_storage_filter",
           "keeps_locally", "STATUS_ACTIONS", "ALERT_ACTIONS", "PURGE_BATCH_ROWS",
           "kept_without_local_logging", "purge_diagnostics", "diagnostics_usage",
           "DirectoryUsage", "give_space_back"]

T = TypeVar("T")

PURGE_BATCH_ROWS = 2_000
PURGE_PAUSE_SECONDS = 0.01
RELEASE_BATCH_PAGES = 1_000     # 4 MB of 4 KiB pages: ~30 ms of write lock (module rules)
# Tries of a write another connection keeps locked, each waiting the busy timeout (10 s).
BUSY_TRIES = 6
SECONDS_PER_DAY = 86_400
# What console.status counts per hour for its chart (kept with logging.local off).
STATUS_ACTIONS = frozenset({Action.ACCEPTED, Action.DELIVERED, Action.DROPPED, Action.REJECTED})
# What the core's alert engine reads (core/notify.py `alert_key`, guide Table 3-2): every
# system event, plus the non-system actions that raise an alert.
ALERT_ACTIONS = frozenset({a for a in Action if CATEGORY_OF[a] is Category.SYSTEM} | {
    Action.SCAN_ERROR, Action.PROTOCOL_VIOLATION, Action.HELD, Action.DEFERRED,
    Action.DELIVERY_FAILED})


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    cutoff: float | None      # events before this UTC time were deleted; None = retention off
    batches: int
    seconds: float
    longest_batch_seconds: float


def cutoff_for(now: float, retention_days: int) -> float | None:
    return None if not retention_days else now - retention_days * SECONDS_PER_DAY


def cutoff_shown(cutoff: float, timezone: str | None) -> str:
    """The cut-off as an `events_purged` event's data gives it: ISO 8601 with the offset of
    the `timezone` setting, as the reports show times (`2026-11-23T00:52:00+00:00`; reports18
    C1: it was a Unix float, `cutoff=1795395120.6663094`). Both writers of the event use it."""
    return iso_local(cutoff, zone_of(timezone))


def purge_events(conn: sqlite3.Connection, now: float, retention_days: int, *,
                 batch: int = PURGE_BATCH_ROWS, pause: float = PURGE_PAUSE_SECONDS,
                 max_batches: int | None = None) -> PurgeResult:
    """Delete events older than `retention_days` before `now`, in short transactions.

    `conn` must be in autocommit mode (shared.db.connect). Returns what was done; raises
    sqlite3 errors (a busy batch is retried after the pause, `BUSY_TRIES` times at most).
    """
    started = time.monotonic()
    cutoff = cutoff_for(now, retention_days)
    if cutoff is None:
        return PurgeResult(0, None, 0, 0.0, 0.0)
    deleted = batches = 0
    longest = 0.0

    def one_batch() -> int:
        conn.execute("BEGIN IMMEDIATE")
        count = conn.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? "
            "AND id < (SELECT MAX(id) FROM events) ORDER BY time LIMIT ?)",
            (cutoff, batch)).rowcount
        conn.execute("COMMIT")
        return count

    while max_batches is None or batches < max_batches:
        t0 = time.monotonic()
        count = _written(conn, one_batch, pause)
        longest = max(longest, time.monotonic() - t0)
        batches += 1
        deleted += count
        if count < batch:
            break
        time.sleep(pause)   # let the writers in between batches
    return PurgeResult(deleted, cutoff, batches, time.monotonic() - started, longest)


def give_space_back(conn: sqlite3.Connection, *, batch: int = RELEASE_BATCH_PAGES,
                    pause: float = PURGE_PAUSE_SECONDS) -> int:
    """Release the database's free pages to the disk when they are more than a quarter of
    it and the database is in incremental auto-vacuum mode (module rules); returns about how
    many octets were released (0: nothing to do, or an older database; pages the other
    writers reuse meanwhile count as released). Raises sqlite3 errors (a busy batch is
    retried after the pause, `BUSY_TRIES` times at most)."""
    if not db.incremental_vacuum(conn):
        return 0
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if free * 4 <= conn.execute("PRAGMA page_count").fetchone()[0]:
        return 0
    released = 0
    while free > 0:
        # executescript steps the pragma to its end; execute() releases one page
        _written(conn, lambda: conn.executescript(f"PRAGMA incremental_vacuum({int(batch)});"),
                 pause)
        left = conn.execute("PRAGMA freelist_count").fetchone()[0]
        released += (free - left) * page_size
        if left >= free:        # nothing more came free: do not loop
            break
        free = left
        time.sleep(pause)   # let the writers in between batches
    return released


def _written(conn: sqlite3.Connection, write: Callable[[], T], pause: float) -> T:
    """What `write` returns, tried again after `pause` while another connection holds the
    write lock past the busy timeout — `BUSY_TRIES` times in all, then its error is raised:
    an `sqlite3` session left open must not hold the daily job for ever (review20a R7)."""
    tries = 1
    while True:
        try:
            return write()
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not is_busy(exc) or tries == BUSY_TRIES:
                raise
        tries += 1
        time.sleep(pause)


def kept_without_local_logging(settings: Mapping) -> frozenset[Action]:
    """The actions still stored while `logging.local` is false."""
    kept = set(STATUS_ACTIONS) | ALERT_ACTIONS
    if settings.get("forwarding.enabled"):
        kept |= SIEM_ACTIONS
    return frozenset(kept)


def keeps_locally(settings: Mapping, event: Event) -> bool:
    if settings.get("logging.local", True):
        return True
    return event.action in kept_without_local_logging(settings)


def local_storage_filter(settings: Callable[[], Mapping]) -> Callable[[Event], bool]:
    """A writer's `keep`: reads the current settings (a cheap snapshot call) per event.
    A failure to read settings keeps the event: losing a fact is worse than storing one."""

    def keep(event: Event) -> bool:
        try:
            return keeps_locally(settings(), event)
        except Exception:
            return True

    return keep


def db_size_bytes(db_path: Path) -> int:
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal"))
               if p.exists())


# --- the diagnostics directory ---------------------------------------------------------------

@dataclass(frozen=True)
class DirectoryUsage:
    files: int
    octets: int         # each file once, however many names it has (hard links)


def purge_diagnostics(directory: Path, cutoff: float) -> tuple[int, str]:
    """Delete the files under `directory` last modified before `cutoff` (UTC unix seconds),
    as the module's rules say; returns (files deleted, the first problem met or ""). A file
    that cannot be deleted does not stop the others."""
    deleted, problem = 0, ""
    try:
        for path, status in _files(directory, hidden=False):
            if status.st_mtime >= cutoff:
                continue
            try:
                os.unlink(path)
                deleted += 1
            except FileNotFoundError:       # deleted meanwhile
                continue
            except OSError as exc:
                problem = problem or f"{path}: {exc.strerror or exc}"
    except OSError as exc:                  # a folder that cannot be read
        problem = problem or f"{exc.filename or directory}: {exc.strerror or exc}"
    return deleted, problem


def diagnostics_usage(directory: Path) -> DirectoryUsage:
    """How many files `directory` holds, at any depth, and their size. Raises OSError when
    a folder of it cannot be read."""
    seen: set[tuple[int, int]] = set()
    files = octets = 0
    for _path, status in _files(directory, hidden=True):
        files += 1
        if (status.st_dev, status.st_ino) not in seen:
            seen.add((status.st_dev, status.st_ino))
            octets += status.st_size
    return DirectoryUsage(files, octets)


def _files(directory: Path, *, hidden: bool) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every regular file under `directory` (symbolic links are not
    followed, nor counted); without `hidden`, none whose name or folder's name starts
    with ".". A missing `directory` holds none."""
    folders = [str(directory)]
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                entries = list(listing)
        except FileNotFoundError:           # removed meanwhile, or never made
            continue
        for entry in entries:
            if not hidden and entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    yield entry.path, entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
