"""A clock the test moves by hand, in place of `trio.current_time` (core/smtp/rbl.py takes one)."""

from __future__ import annotations

__all__ = ["FakeTime"]


class FakeTime:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
