"""What a full disk looks like to our code, in one place.

A full disk (or a full quota) shows as OSError ENOSPC/EDQUOT from file writes and as
SQLITE_FULL ("database or disk is full") from SQLite. The core must not stop for it:
delivering the spool is what frees the space. So the writers of things that can wait
(events, the status snapshot, the auto-generated whitelist, the run marker) keep what they
could not write, or skip it, and try again; SMTP answers 452 4.3.1 (core/smtp/policy.py
before MAIL, core/smtp/reception.py at the end of data).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["is_out_of_space", "disk_free_fraction", "disk_space", "DiskSpace",
           "OUT_OF_SPACE_RETRY_SECONDS", "LOW_DISK_FRACTION"]

OUT_OF_SPACE_RETRY_SECONDS = 1.0  # a writer that hit a full disk tries again this often
# Under this free fraction a disk is low: the low_disk alert (guide Table 3-2: "less than 10
# percent"), the console saves no copy of a CSV report, and the core keeps no virus
# quarantine copy.
LOW_DISK_FRACTION = 0.10


@dataclass(frozen=True)
class DiskSpace:
    """The file system holding a path, as statvfs saw it (space available to us, not to
    root)."""

    free_octets: int
    total_octets: int
    free_inodes_fraction: float = 1.0   # 1.0 where the file system counts none (btrfs)

    def free_fraction(self, writing: int = 0) -> float:
        """Free fraction (0..1) once `writing` more octets are written: space or inodes,
        whichever is lower."""
        if not self.total_octets:
            return self.free_inodes_fraction
        space = max(self.free_octets - writing, 0) / self.total_octets
        return min(space, self.free_inodes_fraction)


def disk_space(path: str | os.PathLike) -> DiskSpace:
    st = os.statvfs(Path(path))
    return DiskSpace(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize,
                     st.f_favail / st.f_files if st.f_files else 1.0)


def disk_free_fraction(path: str | os.PathLike) -> float:
    """Free fraction (0..1) of the file system holding `path` (DiskSpace.free_fraction)."""
    return disk_space(path).free_fraction()

def is_out_of_space(exc: BaseException) -> bool:
    """True when *exc* says the disk (or the user's quota) is full."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == sqlite3.SQLITE_FULL   # extended codes keep it in the low byte
        return "database or disk is full" in str(exc)
    return False
