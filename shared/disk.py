"""What a full disk looks like to our code, in one place.

A full disk (or a full quota) shows as OSError ENOSPC/EDQUOT from file writes and as
SQLITE_FULL ("database or disk is full") from SQLite. The core must not stop for it:
delivering the spool is what frees the space. So the writers of things that can wait
(events, the status snapshot, the auto-generated whitelist, the run marker) keep what they
could not write, or skip it, and try again; SMTP answers 452 4.3.1 (core/smtp/server.py).
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["is_out_of_space", "OUT_OF_SPACE_RETRY_SECONDS"]

OUT_OF_SPACE_RETRY_SECONDS = 1.0  # a writer that hit a full disk tries again this often

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
