"""A start is not refused because someone looks whether a process holds its lock.

`lock_holder` (the Status page with a stale status report, `migrate` and `run` checking
for a running core) takes the lock shared for an instant; a core starting in that instant
failed with "another Mailmoat core is running (pid …)", naming the pid of the last core to
have held it (fix-disk21b's note on 4063ab1). `hold_lock` now waits LOOKER_WAIT_SECONDS for
such a look to end; a real holder still refuses the start.
"""

from __future__ import annotations

import fcntl
import os
import threading

import pytest

from shared.home import CORE_LOCK, LOOKER_WAIT_SECONDS, AlreadyRunning, hold_lock
from tests.support.core import make_home


def test_a_start_waits_for_a_look_at_its_lock(tmp_path):
    home = make_home(tmp_path / "home")
    fd = os.open(home.run / CORE_LOCK.name, os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)      # a look, as lock_holder takes it
    # the look ends a moment after the start has met it (closing drops the shared lock)
    look = threading.Timer(LOOKER_WAIT_SECONDS / 5, os.close, (fd,))
    look.start()
    try:
        held = hold_lock(home, *CORE_LOCK)
    finally:
        look.join()
    os.close(held)


def test_a_held_lock_still_refuses_the_start(tmp_path):
    home = make_home(tmp_path / "home")
    first = hold_lock(home, *CORE_LOCK)
    try:
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            hold_lock(home, *CORE_LOCK)
    finally:
        os.close(first)
