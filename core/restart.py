"""When to start again a process that died (SPEC §1: "backoff 1 s doubling to 60 s").

One rule for every supervisor in Mailmoat: `mailmoat run` for the core and the console
(core/commands.py), the core for its SMTP listener processes (core/smtp/listeners.py).

Rules
    1. The first restart waits RESTART_INITIAL_SECONDS; each next one twice as long as the
       last, up to RESTART_MAX_SECONDS.
    2. A process that ran HEALTHY_SECONDS or more before it died was well: the backoff
       starts over. Without this, the deaths of a long life add up (one a week), and
       after six each one costs RESTART_MAX_SECONDS of no service (chaos finding 3).
    3. Times are durations of the supervisor's own clock (trio's, or time.monotonic):
       never the wall clock, which may step.
"""

from __future__ import annotations

__all__ = ["RestartBackoff", "RESTART_INITIAL_SECONDS", "RESTART_MAX_SECONDS",
           "HEALTHY_SECONDS"]

RESTART_INITIAL_SECONDS = 1
RESTART_MAX_SECONDS = 60
HEALTHY_SECONDS = 2 * RESTART_MAX_SECONDS


class RestartBackoff:
    """The waits before the restarts of one supervised process."""

    def __init__(self, healthy_seconds: float = HEALTHY_SECONDS) -> None:
        """`healthy_seconds`: rule 2's time (a test makes it short)."""
        self.healthy_seconds = healthy_seconds
        self._next = RESTART_INITIAL_SECONDS

    def after_exit(self, ran_seconds: float) -> int:
        """The seconds to wait before starting again a process that ran `ran_seconds`
        and then died (rules 1 and 2)."""
        if ran_seconds >= self.healthy_seconds:
            self._next = RESTART_INITIAL_SECONDS
        delay, self._next = self._next, min(self._next * 2, RESTART_MAX_SECONDS)
        return delay
