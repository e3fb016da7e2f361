"""`mailmoat queue retry --slow`: the slow queue's messages tried now, not at their next
backoff step (core/spool/schedule.py rule 5; tester28c C2). Before, an administrator who
had mended a next hop could only wait for each message's NEXT, hours at the back of the
backoff, unless some other message went through that next hop first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import Spool
from tests.support.core import make_home, routed_home, set_settings
from tests.support.mail import send_text
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


@pytest.mark.trio
async def test_ids_not_in_the_slow_queue_ask_for_nothing_or_are_named(tmp_path, sink,
                                                                      nursery):
    sink.tempfail_all = True
    home = routed_home(tmp_path, sink, delivery__retry_initial_seconds=HOURS,
                       delivery__retry_max_seconds=2 * HOURS, delivery__paused=False)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_text, core.smtp_addresses[0][1], "one", "Hello.\n",
                                  "a@client.test", "one@local.test")
    [queue_id] = await until(lambda: list(_slow(home)), flush=core.events.aflush)

    typo = await _cli(home, "retry", "--slow", "--id", queue_id, "--id", "NOSUCH")
    assert (typo.returncode, typo.stdout, typo.stderr) == (
        2, "", "mailmoat: not in the slow queue: NOSUCH; nothing was requested\n")
    assert events_of(home, Action.OBJECT_MODIFIED) == []

    # delivery paused: the retry is taken, and says when the messages go
    set_settings(home, delivery__paused=True)
    await until(lambda: core.settings()["delivery.paused"])
    paused = await _cli(home, "retry", "--slow", "--id", queue_id)
    assert paused.stdout == ("1 message(s) of the slow queue to be tried now; delivery is "
                             "paused (delivery.paused): they go when it is turned off\n")
    sink.tempfail_all = False
    set_settings(home, delivery__paused=False)
    await trio.to_thread.run_sync(sink.wait_for, 1)
    core.cancel_scope.cancel()


@pytest.mark.parametrize("args, error", [
    (["retry"], "retry acts on the slow queue: add --slow"),
    (["retry", "--hold"], "--hold: the hold queue takes reprocess, drop and forward, not retry"),
    (["retry", "--slow", "--hold"],
     "--hold: the hold queue takes reprocess, drop and forward, not retry"),
    (["retry", "slow", "--slow"],
     "slow: `queue retry` takes no queue: it acts on the slow queue (--slow)"),
    (["drop", "--slow"], "--slow: the slow queue takes only retry, not drop"),
    (["forward", "x@example.test", "--hold", "--slow"],
     "--slow: the slow queue takes only retry, not forward"),
    (["list", "--hold", "--slow"], "--hold, --slow: `queue list` lists one queue or all"),
    (["list", "fast", "--slow"],
     "--slow: `queue list` lists the queue it is given, here fast; for the slow queue: "
     "queue list slow"),
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
