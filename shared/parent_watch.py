"""Children that do not outlive `mailmoat run`: each child watches a lifeline to it.

The supervisor opens a pipe per child (`lifeline`) and keeps the write end for as long as the
child lives; the child gets the read end and its number in SUPERVISOR_FD_VARIABLE (as systemd
passes LISTEN_FDS). Nothing is ever written: when the supervisor ends — a clean exit, a crash
or kill -9 — the kernel closes the write end, the child reads end-of-file and sends itself
SIGTERM, so it stops exactly as a clean stop by signal does (the core's listener processes
watch the core the same way, through their socketpair: core/smtp/listener_main.py).

Rules:
- The write end is never inherited: os.pipe() gives close-on-exec descriptors, and only the
  child named gets its read end (pass_fds). Another child holding it would keep this child
  alive after the supervisor.
- A child calls `watch_supervisor` once SIGTERM means a clean stop in it, never before: a
  supervisor already gone would otherwise kill it with SIGTERM's default action. Without the
  variable (`mailmoat core` or `mailmoat console` started by hand or as a service unit)
  nothing is watched.
- Not PR_SET_PDEATHSIG: Linux sends it when the *thread* that forked the child ends, and trio
  forks from a worker thread that its thread cache retires after a few idle seconds — the
  children would be stopped shortly after every healthy start.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["lifeline", "watch_supervisor", "SUPERVISOR_FD_VARIABLE"]

SUPERVISOR_FD_VARIABLE = "MAILMOAT_SUPERVISOR_FD"


@contextmanager
def lifeline() -> Iterator[dict]:
    """The supervisor's side for one child: yields the keywords (pass_fds, env) to start it
    with; keep the block open until the child has exited."""
    read_end, write_end = os.pipe()
    try:
        yield {"pass_fds": (read_end,),
               "env": {**os.environ, SUPERVISOR_FD_VARIABLE: str(read_end)}}
    finally:
        os.close(read_end)
        os.close(write_end)


def watch_supervisor(name: str) -> bool:
    """In a child of `mailmoat run`: a daemon thread sends this process SIGTERM when the
    supervisor has gone, and says so on stderr as `mailmoat NAME: ...`. True when there is a
    supervisor to watch."""
    value = os.environ.pop(SUPERVISOR_FD_VARIABLE, None)  # not for this process's children
    if value is None:
        return False
    try:
        fd = int(value)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False                # a stray variable, not our lifeline
    except (ValueError, OSError):
        return False
    os.set_inheritable(fd, False)       # pass_fds made it inheritable

    def wait() -> None:
        while os.read(fd, 1):           # nothing is ever written: b"" is the end
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        try:    # after the signal: a closed stderr must not keep the process running
            os.write(2, f"mailmoat {name}: `mailmoat run` has gone; stopping\n".encode())
        except OSError:
            pass

    threading.Thread(target=wait, name="supervisor-watch", daemon=True).start()
    return True
