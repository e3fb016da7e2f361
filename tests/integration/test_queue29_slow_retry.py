"""`mailmoat queue retry --slow`: the slow queue's messages tried now, not at their next
backoff step (core/spool/schedule.py rule 5; tester28c C2). Before, an administrator who
had mended a next hop could only wait for each message's NEXT, hours at the back of the
backoff, unless some other message went through that next hop first."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import Spool
from shared.commands import RESUMED_RESULT, Command
from tests.support.commands import ask, command_row
from tests.support.core import make_home, routed_home, set_settings
from tests.support.mail import send_text
from tests.support.spool import put_message
from tests.support.waiting import events_of, until

pytest_plugins = ["tests.support.fixtures"]

HOURS = 3600        # no backoff step falls within a test


def _mailmoat(home, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", "queue", *args,
                           "--home", str(home.root)],
                          capture_output=True, text=True, timeout=timeout)


async def _cli(home, *args) -> subprocess.CompletedProcess:
    return await trio.to_thread.run_sync(lambda: _mailmoat(home, *args))


def _slow(home) -> dict:
    spool = Spool(home.spool)
    return {queue_id: spool.read_envelope("slow", queue_id) for queue_id in spool.list("slow")}


@pytest.mark.trio
async def test_a_deferred_message_goes_at_once_when_asked_and_not_before(tmp_path, make_sink,
                                                                         nursery):
    sinks = [make_sink(), make_sink()]
    for sink in sinks:
        sink.tempfail_all = True
    # two next hops: a message delivered moves up the others waiting for its next hop
    # (schedule.py rule 2), not those for another; the senders' delay notices wait for
    # client.test's MX, which no DNS server answers
    home = make_home(tmp_path, routing__local=[
        {"match": domain, "relay": "127.0.0.1", "port": sink.port}
        for domain, sink in zip(("one.test", "two.test"), sinks)],
        delivery__retry_initial_seconds=HOURS, delivery__retry_max_seconds=2 * HOURS)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for recipient in ("user@one.test", "user@two.test"):
        await trio.to_thread.run_sync(send_text, port, "deferred", "Hello.\n",
                                      "a@client.test", recipient)
    waiting = await until(lambda: len(slow := _slow(home)) == 4 and slow,
                          flush=core.events.aflush)
    by_recipient = {e.recipients[0].address: i for i, e in waiting.items()}
    first, second = by_recipient["user@one.test"], by_recipient["user@two.test"]
    for sink in sinks:
        sink.tempfail_all = False

    named = await _cli(home, "retry", "--slow", "--id", first)
    assert (named.returncode, named.stdout, named.stderr) == (
        0, "1 message(s) of the slow queue to be tried now\n", "")
    [delivered] = await trio.to_thread.run_sync(sinks[0].wait_for, 1)
    assert delivered.recipients == ["user@one.test"]
    await until(lambda: first not in _slow(home))
    # the others, not asked for, wait for their backoff
    assert sorted(_slow(home)) == sorted(set(waiting) - {first})
    assert sinks[1].messages == []
    assert {e.attempts for e in _slow(home).values()} == {1}

    every = await _cli(home, "retry", "--slow")
    assert (every.returncode, every.stdout) == (
        0, "3 message(s) of the slow queue to be tried now\n"), every.stderr
    [other] = await trio.to_thread.run_sync(sinks[1].wait_for, 1)
    assert other.recipients == ["user@two.test"]
    # the notices were tried too, and deferred again: one attempt more, the next backoff step
    notices = await until(lambda: (slow := _slow(home)) and set(slow) == set(waiting) - {
        first, second} and {e.attempts for e in slow.values()} == {2} and slow)
    assert all(e.recipients[0].address == "a@client.test" for e in notices.values())

    # who asked, as for the hold actions: the command, its arguments and its request
    audit = await until(lambda: len(rows := events_of(home, Action.OBJECT_MODIFIED)) == 2
                        and rows, flush=core.events.aflush)
    assert [row["info"] for row in audit] == ["mailmoat queue retry --slow"] * 2
    data = [json.loads(row["data"]) for row in audit]
    assert [(d["page"], d["command"], d["args"]) for d in data] == [
        ("cli", "slow.retry", {"ids": [first]}), ("cli", "slow.retry", {})]
    core.cancel_scope.cancel()


def _slow_entry(home, recipient: str = "u@local.test", **fields) -> str:
    """A slow-queue message from a@b.test whose next attempt is hours away."""
    fields.setdefault("next_attempt_at", time.time() + HOURS)
    return put_message(Spool(home.spool), "slow", recipients=(recipient,), attempts=1,
                       **fields)


async def _done(home, command_id: int):
    return await until(lambda: (row := command_row(home, command_id))["state"] in (
        "done", "failed") and tuple(row))


@pytest.mark.trio
async def test_ids_not_in_the_slow_queue_ask_for_nothing_or_are_named(tmp_path, sink,
                                                                      nursery):
    sink.tempfail_all = True
    home = routed_home(tmp_path, sink, delivery__retry_initial_seconds=HOURS,
                       delivery__retry_max_seconds=2 * HOURS)
    present = _slow_entry(home)
    core = await nursery.start(run_core, home)

    typo = await _cli(home, "retry", "--slow", "--id", present, "--id", "NOSUCH")
    assert (typo.returncode, typo.stdout, typo.stderr) == (
        2, "", "mailmoat: not in the slow queue: NOSUCH; nothing was requested\n")
    assert events_of(home, Action.OBJECT_MODIFIED) == []

    # ids that leave the slow queue after the command looked (as a request the console or
    # a CLI that checked earlier leaves): named in the result, or the request fails
    none_there = ask(home, Command.SLOW_RETRY, {"ids": ["GONE1", "GONE2"]})
    assert await _done(home, none_there) == ("failed", "not in the slow queue: GONE1, GONE2")
    some = ask(home, Command.SLOW_RETRY, {"ids": ["GONE1", present]})
    assert await _done(home, some) == (
        "done", "1 message(s) of the slow queue to be tried now; not in the slow queue: GONE1")
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_message_being_tried_is_counted_apart(tmp_path, nursery):
    """A retry leaves a message taken up for an attempt as it is, and says so: here its
    attempt waits on a next hop that accepted the connection and never greets."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    home = make_home(tmp_path, routing__local=[
        {"match": "silent.test", "relay": "127.0.0.1", "port": silent.getsockname()[1]}])
    queue_id = _slow_entry(home, "user@silent.test")
    core = await nursery.start(run_core, home)
    first = await _cli(home, "retry", "--slow")
    assert first.stdout == "1 message(s) of the slow queue to be tried now\n", first.stderr
    connection, _ = await trio.to_thread.run_sync(silent.accept)
    try:
        again = await _cli(home, "retry", "--slow", "--id", queue_id)
        assert (again.returncode, again.stdout) == (0, "0 message(s) of the slow queue to be "
                                                       "tried now; 1 taken up for an attempt "
                                                       "already\n"), again.stderr
    finally:
        connection.close()
        silent.close()
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_retry_asked_while_delivery_is_paused_outlasts_a_restart(tmp_path, sink):
    """Review29b R1: the retry is written in the envelopes, not only in the core's memory,
    so a core stopped before the attempt (here: delivery paused, then a restart) does not
    forget it, and `queue list` shows the message due at once."""
    home = routed_home(tmp_path, sink, delivery__paused=True)
    queue_id = _slow_entry(home)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        paused = await _cli(home, "retry", "--slow")
        assert paused.stdout == ("1 message(s) of the slow queue to be tried now; delivery "
                                 "is paused (delivery.paused): they go when it is turned "
                                 "off\n"), paused.stderr
        core.cancel_scope.cancel()
    assert Spool(home.spool).read_envelope("slow", queue_id).next_attempt_at <= time.time()
    listed = _mailmoat(home, "list", "slow")
    assert f"{queue_id}  " in listed.stdout and "  due" in listed.stdout, listed.stdout
    set_settings(home, delivery__paused=False)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
        assert delivered.recipients == ["u@local.test"]
        core.cancel_scope.cancel()


@pytest.mark.trio
@pytest.mark.parametrize("named", [True, False])
async def test_a_retry_cut_off_by_a_stop_is_carried_out_again(tmp_path, sink, named):
    """A retry left `running` by a kill -9 is carried out again at the next start
    (shared.commands.can_run_again): a second run only asks for attempts now once more."""
    home = routed_home(tmp_path, sink)
    queue_id = _slow_entry(home)
    command_id = ask(home, Command.SLOW_RETRY, {"ids": [queue_id]} if named else {},
                     state="running")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        assert await _done(home, command_id) == (
            "done", RESUMED_RESULT + "1 message(s) of the slow queue to be tried now")
        await trio.to_thread.run_sync(sink.wait_for, 1)
        core.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_message_past_retry_days_is_bounced_by_the_attempt_a_retry_asks_for(
        tmp_path, sink, nursery):
    """The retry changes when the attempt comes, not how long mail is tried: a message
    older than `delivery.retry_days` that is deferred again is bounced (SPEC §4)."""
    sink.tempfail_all = True
    home = routed_home(tmp_path, sink, delivery__retry_days=1)
    old = time.time() - 2 * 86_400
    queue_id = _slow_entry(home, clock=lambda: old)
    core = await nursery.start(run_core, home)
    retried = await _cli(home, "retry", "--slow", "--id", queue_id)
    assert retried.returncode == 0, retried.stderr
    [bounced] = await until(lambda: events_of(home, Action.BOUNCED), flush=core.events.aflush)
    assert bounced["queue_id"] == queue_id
    await until(lambda: queue_id not in Spool(home.spool).list("slow"))
    core.cancel_scope.cancel()


@pytest.mark.parametrize("args, error", [
    (["retry"], "--slow: retry acts on the slow queue; add it"),
    (["drop"], "--hold: drop acts on the hold queue; add it"),
    (["retry", "--hold"], "--hold: the hold queue takes reprocess, drop and forward, not retry"),
    (["retry", "--slow", "--hold"],
     "--hold: the hold queue takes reprocess, drop and forward, not retry"),
    (["retry", "slow", "--slow"],
     "slow: `queue retry` takes no queue: it acts on the slow queue (--slow)"),
    (["retry", "--slow", "--subject", "S"], "--subject: only forward takes a subject, not retry"),
    (["drop", "--hold", "--subject", "S"], "--subject: only forward takes a subject, not drop"),
    (["drop", "--slow"], "--slow: the slow queue takes only retry, not drop"),
    (["forward", "x@example.test", "--hold", "--slow"],
     "--slow: the slow queue takes only retry, not forward"),
    (["list", "--hold", "--slow"], "--hold, --slow: `queue list` lists one queue or all"),
    (["list", "fast", "--slow"],
     "--slow: `queue list` lists the queue it is given, here fast; for the slow queue: "
     "queue list slow"),
    (["list", "--id", "X"], "--id: `queue list` lists whole queues and asks the core for nothing"),
    (["list", "slow", "--wait", "5"],
     "--wait: `queue list` lists whole queues and asks the core for nothing"),
    (["list", "--no-wait"],
     "--no-wait: `queue list` lists whole queues and asks the core for nothing"),
    (["retry", "--slow", "--id", ""], "--id: must not be empty"),
    (["retry", "--slow", "--wait", "0"], "--wait: must be a number of seconds above 0"),
])
def test_bad_input_asks_for_nothing(tmp_path, args, error):
    home = make_home(tmp_path)
    result = _mailmoat(home, *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"mailmoat: {error}\n")


def test_without_a_core_the_request_is_withdrawn(tmp_path):
    home = make_home(tmp_path)
    result = _mailmoat(home, "retry", "--slow", "--wait", "0.5")
    assert result.returncode == 1
    assert "withdrawn: the core did not take it up within 0.5 s" in result.stderr
    listed = _mailmoat(home, "list", "--slow")
    assert listed.returncode == 0, listed.stderr
