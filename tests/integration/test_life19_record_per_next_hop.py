"""A message's recipients on several next hops: what one next hop took is recorded when its
delivery ends, not when the slowest other next hop's does (core/spool/manager.py rule 14;
life19 A1, B1). Before, a recipient already delivered stayed "pending" in the queue file,
with no `delivered` event, until the slowest next hop ended (a tarpitting MX: minutes): a
kill -9 meanwhile delivered it again, and its event carried the slowest next hop's time.

A real core on a temp home, two loopback sinks as next hops: fast.test answers at once,
slow.test holds the end of the message (its 250 to the dot) until the test lets it go.
"""

from __future__ import annotations

import smtplib
import threading

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import Spool
from tests.support.core import CoreProcess, make_home
from tests.support.waiting import events_of, until

FAST, SLOW = "p1@fast.test", "p2@slow.test"
MESSAGE = b"From: s@sender.test\r\nSubject: two next hops\r\n\r\nhello\r\n"


class HeldDot:
    """A sink's `data_reply` that keeps the end of the message unanswered until `release()`
    (the slow next hop), then gives `reply` (None: the sink's 250): `held` is set once a
    message waits there."""

    def __init__(self, reply=None):
        self.held = threading.Event()
        self.released = threading.Event()
        self.reply = reply

    def __call__(self, _message):
        self.held.set()
        self.released.wait(60)
        return self.reply

    def release(self):
        self.released.set()


def two_hop_home(tmp_path, fast, slow):
    return make_home(tmp_path, routing__local=[
        {"match": "fast.test", "relay": "127.0.0.1", "port": fast.port},
        {"match": "slow.test", "relay": "127.0.0.1", "port": slow.port}])


def send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("s@sender.test", [FAST, SLOW], MESSAGE)


def statuses(spool: Spool, queue_id: str) -> dict[str, str]:
    return {r.address: r.status for r in spool.read_envelope("fast", queue_id).recipients}


def delivered_to(home, address: str) -> list:
    return [r for r in events_of(home, Action.DELIVERED) if r["recipients"] == address]


@pytest.mark.trio
async def test_a_recipient_delivered_is_recorded_while_another_next_hop_still_holds(
        tmp_path, make_sink, nursery):
    fast, slow = make_sink(), make_sink()
    slow.data_reply = dot = HeldDot()
    home = two_hop_home(tmp_path, fast, slow)
    spool = Spool(home.spool)
    core = await nursery.start(run_core, home)
    try:
        await trio.to_thread.run_sync(send, core.smtp_addresses[0][1])
        await trio.to_thread.run_sync(dot.held.wait, 30)
        [queue_id] = spool.list("fast")
        # the slow next hop still holds the attempt: fast.test's copy is on disk and in
        # the events all the same
        await until(lambda: statuses(spool, queue_id)[FAST] == "delivered")
        await until(lambda: delivered_to(home, FAST), flush=core.events.aflush)
        assert not dot.released.is_set() and statuses(spool, queue_id)[SLOW] == "pending"
        assert not delivered_to(home, SLOW)
    finally:
        dot.release()
    await until(lambda: delivered_to(home, SLOW), flush=core.events.aflush)
    await until(lambda: not list(spool.list("fast")))
    [first], [second] = delivered_to(home, FAST), delivered_to(home, SLOW)
    assert first["time"] < second["time"]       # each stamped when its next hop took it
    assert [len(fast.messages_to(FAST)), len(slow.messages_to(SLOW))] == [1, 1]
    core.cancel_scope.cancel()


@pytest.mark.slow           # a core process killed and started again: several seconds
def test_a_kill_while_another_next_hop_holds_does_not_deliver_the_first_again(tmp_path,
                                                                            make_sink):
    fast, slow = make_sink(), make_sink()
    slow.data_reply = dot = HeldDot()
    home = two_hop_home(tmp_path, fast, slow)
    spool = Spool(home.spool)
    core = CoreProcess(home).start(timeout=60)
    try:
        send(core.smtp_port)
        assert dot.held.wait(30)
        [queue_id] = spool.list("fast")
        trio.run(until, lambda: statuses(spool, queue_id)[FAST] == "delivered")
        core.kill()                     # while the slow next hop holds the attempt
        dot.release()                   # that copy's connection is gone with the core
        core.start(timeout=60)
        trio.run(until, lambda: not list(spool.list("fast")) and not list(spool.list("slow")))
    finally:
        dot.release()
        core.stop()
    assert len(fast.messages_to(FAST)) == 1         # not delivered again after the restart
    assert slow.messages_to(SLOW)
