"""Requests a core was carrying out when it stopped (backup-restore finding 5): a row left
`running` by a kill -9, or by a database backup taken during a command, is taken up at the
next start — carried out again when that does what was asked, else failed with a reason —
so the virus quarantine copy it is about is no longer hidden from the console for good.
The real core on a temp home, its real SQLite database."""

from __future__ import annotations


import pytest
import trio

from core.app import run_core
from core.control import CommandRunner
from shared.commands import INTERRUPTED, RESUMED_RESULT, Command
from shared.spool import Spool, new_queue_id
from tests.support.commands import ask, command_row
from tests.support.core import routed_home
from tests.support.waiting import until
from tests.support.spool import put_message

pytestmark = pytest.mark.trio


def _left_running(home, kind: Command, args: dict, state: str = "running") -> int:
    return ask(home, kind, args, requested_by="console", state=state)


def _put(spool: Spool, queue: str) -> str:
    return put_message(spool, queue, recipients=("u@local.test",), hold_reason="held")


async def test_commands_left_running_are_carried_out_again_or_failed(tmp_path, sink):
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    copy, held = _put(spool, "quarantine/virus"), _put(spool, "hold")
    delete = _left_running(home, Command.VIRUS_QUARANTINE_DELETE, {"ids": [copy]})
    drop_one = _left_running(home, Command.HOLD_DROP, {"ids": [held]})
    drop_all = _left_running(home, Command.HOLD_DROP, {})
    forward = _left_running(home, Command.HOLD_FORWARD, {"address": "x@local.test"})
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        await until(lambda: all(command_row(home, c)["state"] in ("done", "failed")
                                for c in (delete, drop_one, drop_all, forward)))
        core.cancel_scope.cancel()
    assert tuple(command_row(home, delete)) == ("done",
                                         RESUMED_RESULT + "1 virus quarantine copy deleted")
    assert list(spool.list("quarantine/virus")) == []
    assert tuple(command_row(home, drop_one)) == ("done", RESUMED_RESULT + "1 message(s) dropped")
    for command_id in (drop_all, forward):      # would take in mail held since, or send twice
        assert tuple(command_row(home, command_id)) == ("failed", INTERRUPTED)
    assert list(spool.list("hold")) == [] and sink.messages == []


async def test_a_request_whose_work_was_done_before_the_stop_is_done_when_run_again(tmp_path,
                                                                                   sink):
    """Review 15 B2: the copy deleted, the held message dropped, and the core stopped before
    it wrote so. Run again, none of them is there: that is what was asked, not a failure
    ("not in the hold queue"). A request that was never begun is still refused for it."""
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)
    gone_copy, gone_held = new_queue_id(), new_queue_id()
    delete = _left_running(home, Command.VIRUS_QUARANTINE_DELETE, {"ids": [gone_copy]})
    drop = _left_running(home, Command.HOLD_DROP, {"ids": [gone_held]})
    fresh = _left_running(home, Command.HOLD_DROP, {"ids": [gone_held]}, state="pending")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        await until(lambda: all(command_row(home, c)["state"] in ("done", "failed")
                                for c in (delete, drop, fresh)))
        core.cancel_scope.cancel()
    assert tuple(command_row(home, delete)) == (
        "done", f"{RESUMED_RESULT}nothing left to do: not in the virus quarantine: {gone_copy}")
    assert tuple(command_row(home, drop)) == (
        "done", f"{RESUMED_RESULT}nothing left to do: not in the hold queue: {gone_held}")
    assert tuple(command_row(home, fresh)) == ("failed", f"not in the hold queue: {gone_held}")
    assert list(spool.list("hold")) == [] and sink.messages == []


async def test_a_request_whose_handler_returned_as_the_core_stops_is_recorded(tmp_path, sink):
    """Review 15 B2: the stop's cancellation came between the handler's return and the
    row's update, and the row stayed `running` for a request carried out."""
    home = routed_home(tmp_path, sink)
    command_id = _left_running(home, Command.HOLD_DROP, {"ids": ["X"]}, state="pending")
    runner = CommandRunner(home.db)
    async with trio.open_nursery() as nursery:
        async def drop(args):
            nursery.cancel_scope.cancel()       # the stop, as the work ends
            return "1 message(s) dropped"
        runner.register(Command.HOLD_DROP, drop)
        await nursery.start(runner.run)
    assert tuple(command_row(home, command_id)) == ("done", "1 message(s) dropped")
