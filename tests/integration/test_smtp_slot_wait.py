"""A connection waiting for a session slot whose client hangs up (core/smtp/server.py rules):
it ends there, is not counted against its client any longer and is never served. It was:
a client that gave up waiting and came back was counted twice, and the per-client limit
then refused it 421 after a few tries with not one session served (the CI flake of
test_client_session_limit, whose client tries again from another port)."""

from __future__ import annotations

import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import make_home
from tests.support.waiting import events_of, until


async def _greeting(stream) -> bytes:
    with trio.fail_after(10):
        return await stream.receive_some(512)


async def _quit(stream) -> None:
    await stream.send_all(b"QUIT\r\n")
    with trio.fail_after(10):
        while (await stream.receive_some(512)) != b"":
            pass
    await stream.aclose()


async def test_a_client_that_hangs_up_while_it_waits_for_a_slot_is_never_served(tmp_path,
                                                                                  nursery):
    home = make_home(tmp_path, smtp__max_incoming=1)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    first = await trio.open_tcp_stream("127.0.0.1", port)
    assert (await _greeting(first)).startswith(b"220")
    waiting = await trio.open_tcp_stream("127.0.0.1", port)
    await waiting.aclose()                  # gave up before a slot came free
    # its client's count goes back to the one session served (it stayed 2 until a slot
    # came free, and then the slot went to a connection nobody was at)
    await until(lambda: core.server.client_sessions.of("127.0.0.1") == 1, 5)
    await _quit(first)
    last = await trio.open_tcp_stream("127.0.0.1", port)
    assert (await _greeting(last)).startswith(b"220")
    await _quit(last)
    # a session's connection_from is recorded before its greeting is sent: the last's 220
    # came after every earlier one's
    rows = await until(lambda: events_of(home, Action.CONNECTION_FROM), flush=core.events.aflush)
    assert len(rows) == 2                   # the first and the last; the one that left, never
    core.cancel_scope.cancel()
