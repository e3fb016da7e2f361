"""Worker processes for the CPU-bound steps (ARCHITECTURE invariant 2; SPEC §4).

`run_in_worker(fn, *args, timeout_seconds)` runs a picklable function in a trio-parallel
worker process and returns its result. The event loop only waits: SMTP sessions stay
responsive however long a message takes.

Rules
    1. Past `timeout_seconds` (SPEC §4: 60) the worker is killed (kill_on_cancel) and
       `WorkerTimeout` is raised; a worker that dies (segfault, os._exit, OOM kill) raises
       `WorkerCrashed`. The queue manager counts either as a crash of that message; the
       third holds it with the suspect_message alert (core/spool/dispositions.py).
    2. Exceptions raised by `fn` itself come back as they are (also crashes, for the
       manager); the pool replaces dead workers by itself.
    3. `inline=True` runs `fn` in a thread instead (for unit tests that need no processes);
       the kill guarantee of rule 1 holds only for processes.
"""

from __future__ import annotations

import trio
import trio_parallel

__all__ = ["run_in_worker", "WorkerCrashed", "WorkerTimeout", "PROCESS_TIMEOUT_SECONDS"]

PROCESS_TIMEOUT_SECONDS = 60.0


class WorkerCrashed(RuntimeError):
    """The worker process died while handling the message."""


class WorkerTimeout(RuntimeError):
    """The worker took longer than allowed and was stopped."""


async def run_in_worker(fn, *args, timeout_seconds: float = PROCESS_TIMEOUT_SECONDS,
                        inline: bool = False):
    try:
        with trio.fail_after(timeout_seconds):
            if inline:
                return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
            return await trio_parallel.run_sync(fn, *args, kill_on_cancel=True)
    except trio.TooSlowError:
        raise WorkerTimeout(f"worker stopped after {timeout_seconds:g} s") from None
    except trio_parallel.BrokenWorkerError as exc:
        raise WorkerCrashed(f"worker process died: {exc}") from None
