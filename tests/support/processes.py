"""Stopping a child process, for the tests and the benchmarks: signal it, give it time to end
as it does on a stop, then kill it — never leave it behind."""

from __future__ import annotations

import signal
import subprocess

__all__ = ["stop_process"]


def stop_process(process: subprocess.Popen, timeout: float = 30.0,
                 sig: int = signal.SIGTERM) -> int | None:
    """Send `sig` to `process` if it still runs, wait up to `timeout` s, then SIGKILL it and
    reap it. Its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
