"""The one injectable wall clock (ARCHITECTURE invariant 5).

Event stamps, queue ages and schedules read wall-clock time from a `WallClock`; timeouts use
trio's clock instead. Tests pass a `FakeClock` to move time without sleeping.
"""

from __future__ import annotations

import datetime
import email.utils
import time

__all__ = ["WallClock", "FakeClock", "SYSTEM_CLOCK", "mail_date"]


def mail_date(timestamp: float) -> str:
    """An RFC 5322 date of mail Mailmoat writes (Received, Date, DSN dates): in UTC with
    "+0000", since "-0000" means the offset is unknown (RFC 5322 §3.3)."""
    return email.utils.format_datetime(
        datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc))


class WallClock:
    """UTC wall-clock time in unix seconds."""

    def now(self) -> float:
        return time.time()


class FakeClock(WallClock):
    def __init__(self, start: float = 1_800_000_000.0):
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


SYSTEM_CLOCK = WallClock()
