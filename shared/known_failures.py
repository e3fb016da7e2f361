"""The failures of the data home, not of our code, and the words for them, in one place: the
command line's boundary (shared/cli.py) and the console's error page (console/security.py)
both say them from here. They drifted apart as two copies (review21b D3).

Rules:
- A full disk (shared.disk `is_out_of_space`: ENOSPC, EDQUOT, SQLITE_FULL) is the data
  home's only when the data home's file system is seen full: under FULL_DISK_OCTETS free,
  or no inode free (`full_notice`, which the Status page shows too). Otherwise it is said
  as a disk out of space without blaming the data home: SQLite writes its temporary files
  (a sort or GROUP BY that spills) to SQLITE_TMPDIR, /var/tmp or /tmp, and a quota shows
  as EDQUOT with room on the disk. A report read over a full /tmp said "The disk of the
  data home is full … the core refuses new mail with 452", all of it untrue (review21b R1).
- A locked database is SQLITE_BUSY only (shared.busy `is_held_by_another`): another
  connection held the lock past the busy timeout. SQLITE_LOCKED, "database table is
  locked", comes from within one connection, ours: a bug, which the boundaries report as
  one (a traceback), not as "another program".
- `KnownFailure.reason` is one line, what the command line prints and the console logs; a
  boundary adds only what it knows of itself (the console: whether the request read or
  saved).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from shared.busy import is_held_by_another
from shared.disk import DiskSpace, disk_space, is_out_of_space
from shared.home import SPACE_RESERVE_OCTETS

__all__ = ["KnownFailure", "known_failure", "full_notice", "FULL_DISK_OCTETS",
           "DATA_HOME_FULL", "OUT_OF_SPACE", "LOCKED", "LOCKED_REASON"]

# Under this many octets free the data home's disk counts as full: SQLite cannot grow its
# write-ahead log, so the core's status snapshot fails ("database or disk is full"). The
# room shared.home SPACE_RESERVE_OCTETS keeps for the same writes.
FULL_DISK_OCTETS = SPACE_RESERVE_OCTETS

DATA_HOME_FULL = "data_home_full"
OUT_OF_SPACE = "out_of_space"
LOCKED = "locked"

DATA_HOME_FULL_REASON = "no space left on the data home's disk"
OUT_OF_SPACE_REASON = ("no space left on a disk other than the data home's, which has room "
                       "(SQLite's temporary files go to SQLITE_TMPDIR, /var/tmp or /tmp), or "
                       "a disk quota reached")
# the data home's file system could not be looked at: either may be full
SOME_DISK_REASON = ("no space left on a disk: the data home's, or the one of SQLite's "
                    "temporary files (SQLITE_TMPDIR, /var/tmp or /tmp)")
LOCKED_REASON = ("mailmoat.db is locked by another program (an sqlite3 session left inside a "
                 "transaction, a VACUUM)")


@dataclass(frozen=True)
class KnownFailure:
    kind: str       # DATA_HOME_FULL, OUT_OF_SPACE or LOCKED
    reason: str     # one line (module rules)


def full_notice(space: DiskSpace) -> str:
    """How much is free ("0.2 MB free", "no inode free") while `space` is a full disk
    (module rules), or "" while it is not."""
    if space.free_inodes_fraction <= 0:
        return "no inode free"
    if space.free_octets < FULL_DISK_OCTETS:
        return f"{space.free_octets / 2**20:.1f} MB free"
    return ""


def known_failure(exc: BaseException, data_home: str | os.PathLike,
                  space: Callable[[str | os.PathLike], DiskSpace] = disk_space
                  ) -> KnownFailure | None:
    """What `exc` is, when it is a failure of the data home's disk or of another program's
    lock (module rules); None for anything else, a bug included. `space` measures the data
    home's file system (the console's context has one tests can set)."""
    if is_out_of_space(exc):
        try:
            seen = space(data_home)
        except OSError:
            return KnownFailure(OUT_OF_SPACE, SOME_DISK_REASON)
        if full_notice(seen):
            return KnownFailure(DATA_HOME_FULL, DATA_HOME_FULL_REASON)
        return KnownFailure(OUT_OF_SPACE, OUT_OF_SPACE_REASON)
    if is_held_by_another(exc):
        return KnownFailure(LOCKED, LOCKED_REASON)
    return None
