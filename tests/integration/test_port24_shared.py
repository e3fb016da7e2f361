"""Regression (review24a O1): the SMTP listeners set SO_REUSEPORT so that the core's listener
processes share the port, and any other process of the same user that set it too joined
the group: a second core (another data home with the same smtp.port) started beside the
first, and the kernel split the connections between them, with no event. Now a shared
socket binds only where no other program listens (core/smtp/listen_sockets.py), and this
core's own listener processes still share the port."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from core.app import run_core
from core.smtp.listen_sockets import ListenFailed
from shared.cli import sole_exception
from shared.events import Action
from tests.support.core import (CoreProcess, free_port, greets, listener_pids, make_home,
                                set_settings)
from tests.support.waiting import events_of, until

# A program of this user listening with SO_REUSEPORT, as another core's listener does. A
# process of its own: the test process is the core here, and the core's own sockets share.
_HOLDER = """
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
sys.stdin.read()        # until the test closes it
"""


class _Holder:
    """A SO_REUSEPORT socket listening on 127.0.0.1:`port` in another process."""

    def __init__(self, port: int):
        self.port = port
        self.process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout.readline() == b"listening\n"

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture
def holder():
    held = _Holder(free_port())
    yield held
    held.close()


# the listener in the core process, and listener processes (several seconds: `make test-slow`)
_COUNTS = [1, pytest.param(2, marks=pytest.mark.slow)]


def _in_use(port: int) -> str:
    return f"cannot listen for SMTP on 127.0.0.1:{port} (Address already in use)"


async def _refused_at_start(home) -> ListenFailed:
    with pytest.raises(BaseExceptionGroup) as raised, trio.fail_after(60):
        await run_core(home)
    failure = sole_exception(raised.value)      # what `mailmoat core` prints
    assert isinstance(failure, ListenFailed)
    assert not (home.run / "core.running").exists()
    return failure


@pytest.mark.parametrize("processes", _COUNTS)
async def test_a_core_refuses_a_port_where_a_shared_socket_of_another_program_listens(
        tmp_path, holder, processes):
    home = make_home(tmp_path, smtp__port=holder.port, smtp__listener_processes=processes)
    failure = await _refused_at_start(home)
    assert str(failure) == _in_use(holder.port)
    assert [e["info"] for e in events_of(home, Action.SERVICE_START_FAILED)] \
        == [_in_use(holder.port)]


@pytest.mark.slow          # two cores with listener processes
async def test_a_second_core_on_the_same_port_refuses_to_start(tmp_path):
    """The reviewer's case: two data homes, one smtp.port, the first with listener
    processes (another core's processes are not this core's)."""
    first = CoreProcess(make_home(tmp_path / "first", smtp__listener_processes=2,
                                  smtp__hostname="first.test")).start()
    try:
        port = first.smtp_port
        second = make_home(tmp_path / "second", smtp__port=port, smtp__listener_processes=2)
        failure = await _refused_at_start(second)
        assert str(failure) == _in_use(port)
        for _ in range(10):     # all the mail still goes to the first
            with trio.fail_after(10):
                assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)
    finally:
        assert first.stop() == 0


@pytest.mark.parametrize("processes", _COUNTS)
async def test_a_rebind_to_a_port_where_a_shared_socket_listens_is_refused(
        tmp_path, holder, processes):
    """The listeners stay where they were and one event says why, as for a plain socket
    in the way (test_core_smtp, test_listeners)."""
    home = make_home(tmp_path, smtp__listener_processes=processes)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        set_settings(home, smtp__port=holder.port)
        await until(lambda: events_of(home, Action.SERVICE_START_FAILED))
        if processes > 1:
            await trio.sleep(1)     # the other listener process has tried too by now
        assert [e["info"] for e in events_of(home, Action.SERVICE_START_FAILED)] == [
            f"{_in_use(holder.port)}; still listening on 127.0.0.1:{port} until smtp.port "
            f"or smtp.listen changes"]
        for _ in range(4):          # every listener still answers there
            assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)
        core.cancel_scope.cancel()


@pytest.mark.slow          # two shapes of listener processes
async def test_listener_processes_share_a_new_port_and_a_new_count(tmp_path):
    """This core's own processes are not "another program": a rebind to a free port moves
    every listener process (the first one there does not keep the others out), and a
    change of their count binds beside the old ones there."""
    home = make_home(tmp_path, smtp__listener_processes=2)
    new_port = free_port()
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        set_settings(home, smtp__port=new_port)
        # no listener left on the old port: none was refused the new one
        await until(lambda: not greets("127.0.0.1", port), 30)
        assert await trio.to_thread.run_sync(greets, "127.0.0.1", new_port)
        old = set(listener_pids(home))
        set_settings(home, smtp__listener_processes=3)
        # three new processes, the two old ones drained and ended
        await until(lambda: len(set(listener_pids(home)) - old) == 3
                    and not old & set(listener_pids(home)), 60)
        for _ in range(6):
            assert await trio.to_thread.run_sync(greets, "127.0.0.1", new_port)
        assert events_of(home, Action.SERVICE_START_FAILED) == []
        core.cancel_scope.cancel()
