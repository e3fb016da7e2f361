"""Regression (review24a O1): the SMTP listeners set SO_REUSEPORT so that the core's listener
processes share the port, and any other process of the same user that set it too joined
the group: a second core (another data home with the same smtp.port) started beside the
first, and the kernel split the connections between them, with no event. Now a core's start
is refused where another program listens (core/smtp/listen_sockets.py,
`refuse_if_listened_on`); a rebind at run time is not guarded (said there)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from core.app import run_core
from core.smtp.listen_sockets import ListenFailed
from shared.cli import sole_exception
from shared.events import Action
from tests.support.core import CoreProcess, free_port, greets, make_home
from tests.support.waiting import events_of

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
    with pytest.raises(BaseExceptionGroup) as raised, trio.fail_after(30):
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
