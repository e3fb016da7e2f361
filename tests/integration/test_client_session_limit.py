"""One client's share of the SMTP sessions with listener processes (core/smtp/server.py
rules, core/smtp/client_sessions.py): half of smtp.max_incoming, counted in every process,
so a client has its whole share wherever the kernel puts its connections, and no more.

The core runs in-process with two listener processes; the clients are raw loopback
sockets held open (idle sessions), as the host that took every slot did."""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import make_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

TOO_MANY = b"421 4.7.0 Too many connections from your host\r\n"


async def _first_reply(port: int, held: list) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    held.append(stream)                 # open until the test ends: an idle session
    with trio.fail_after(10):
        return await stream.receive_some(512)


async def test_a_client_has_half_the_sessions_of_all_listener_processes(tmp_path, nursery):
    # 8 sessions over 2 processes (4 each), 4 for a client: the 4 are served wherever they
    # land (a limit of each process's half, 2, refused one of them 5 times in 8), the 5th
    # is refused whichever process takes it
    home = make_home(tmp_path, smtp__listener_processes=2, smtp__max_incoming=8)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    held: list = []
    for _ in range(4):
        assert (await _first_reply(port, held)).startswith(b"220 ")
    assert await _first_reply(port, held) == TOO_MANY
    await until(lambda: events_of(home, Action.REJECTED))
    [rejected] = events_of(home, Action.REJECTED)
    assert (rejected["rule"], rejected["client_ip"]) == ("smtp.max_incoming", "127.0.0.1")
    # a session that ends frees its place, whichever process served it
    await held[0].aclose()
    with trio.fail_after(10):
        while not (reply := await _first_reply(port, held)).startswith(b"220 "):
            assert reply == TOO_MANY
            await trio.sleep(0.05)
    for stream in held:
        await stream.aclose()
    core.cancel_scope.cancel()
