"""SMTP listener processes that die (chaos finding 3): the restart backoff starts afresh
after a healthy run. Real listener processes, killed with SIGKILL."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from core.restart import RestartBackoff
from core.smtp.listeners import ListenerPool
from core.status import Counters
from shared.events import Action
from tests.support.core import make_home

pytestmark = pytest.mark.trio


def _listener_pids(home) -> list[int]:
    """Live listener processes of this home (read from /proc)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"core.smtp.listener_main" in cmdline and str(home.root).encode() in cmdline:
            pids.append(int(pid))
    return pids


class _Events:
    def __init__(self):
        self.infos: list[str] = []

    def record(self, action, **fields):
        if action == Action.SERVICE_START_IMPROPER:
            self.infos.append(fields["info"])


async def _kill_when_listening(home, events: _Events, deaths: int) -> None:
    """Wait for a listener process that is not the one killed before, and kill it."""
    with trio.fail_after(60):
        while len(events.infos) < deaths - 1 or not _listener_pids(home):
            await trio.sleep(0.05)
    [pid] = _listener_pids(home)
    os.kill(pid, signal.SIGKILL)
    with trio.fail_after(30):
        while len(events.infos) < deaths:
            await trio.sleep(0.05)


async def test_listener_restart_backoff_starts_afresh_after_a_healthy_run(tmp_path, nursery):
    """Without the reset each death waits twice as long as the one before, up to 60 s, over
    the core's whole life: after a few deaths a week apart SMTP was down a minute each time."""
    healthy_seconds = 6
    home = make_home(tmp_path)
    events = _Events()
    pool = ListenerPool(home, 1, on_accepted=lambda *_: None, counters=Counters(),
                        events=events, backoff=lambda: RestartBackoff(healthy_seconds))
    await nursery.start(pool.run)
    await _kill_when_listening(home, events, 1)     # at once: not healthy
    await _kill_when_listening(home, events, 2)
    assert events.infos[0].endswith("restarting in 1 s")
    assert events.infos[1].endswith("restarting in 2 s")     # killed as soon as it started
    with trio.fail_after(60):
        while not _listener_pids(home):
            await trio.sleep(0.05)
    await trio.sleep(healthy_seconds)               # this one runs a healthy while
    await _kill_when_listening(home, events, 3)
    assert events.infos[2].endswith("restarting in 1 s"), events.infos
