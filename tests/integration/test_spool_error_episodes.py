"""A per-message error is recorded once (core/spool/manager.py rule 12), and again when it
comes back after the message was handled without it (review 15 B3): a full disk on Monday
and again on Friday are two episodes, two queue.error events. The real core on a temp home,
a loopback sink as next hop that defers the message; the error is a real one of the spool's
own envelope write (its temp file's name taken by a directory, which even root cannot open
for writing)."""

from __future__ import annotations

import functools
import time

import pytest
import trio

from core.app import run_core
from shared.clock import FakeClock
from shared.events import Action
from shared.spool import ENVELOPE_FILE, TMP_SUFFIX, Envelope, Spool, new_queue_id
from tests.support.core import routed_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

MESSAGE = b"From: a@client.test\r\nTo: u@local.test\r\nSubject: s\r\n\r\nbody\r\n"


def errors(home):
    return [r for r in events_of(home, Action.SCAN_ERROR) if r["rule"] == "queue.error"]


async def test_an_error_that_comes_back_after_a_good_attempt_is_recorded_again(tmp_path,
                                                                               sink):
    sink.rcpt_replies["u@local.test"] = (451, "4.3.0 later")
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    clock = FakeClock(time.time())
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(MESSAGE)
    spool.commit([incoming.prepare(Envelope.new(
        queue_id, "a@client.test", ["u@local.test"], processed=True, attempts=1,
        next_attempt_at=clock.now(), first_deferral_notice_sent=True))], "slow")
    blocker = spool.root / "slow" / queue_id / (ENVELOPE_FILE + TMP_SUFFIX)

    def deferrals():
        return [r for r in events_of(home, Action.DEFERRED) if r["queue_id"] == queue_id]

    async with trio.open_nursery() as nursery:
        blocker.mkdir()                 # recover() removes temp files, not a directory
        core = await nursery.start(functools.partial(run_core, home, clock=clock))
        await until(lambda: errors(home), flush=core.events.aflush)       # Monday
        blocker.rmdir()
        clock.advance(3600)             # past the error retry
        await until(lambda: len(deferrals()) == 2, flush=core.events.aflush)
        await until(lambda: spool.read_envelope("slow", queue_id).attempts == 2)   # written
        blocker.mkdir()
        clock.advance(86400)            # past the next attempt: Friday
        await until(lambda: len(deferrals()) == 3, flush=core.events.aflush)
        await until(lambda: len(errors(home)) == 2, flush=core.events.aflush)
        core.cancel_scope.cancel()
    first, second = errors(home)
    assert first["queue_id"] == second["queue_id"] == queue_id
    assert first["info"] == second["info"] and "IsADirectoryError" in first["info"]
