"""Every kind of request the console or the CLI can leave in the commands table
(shared.commands.Command) has a handler in a running core: a kind added on one side only would
be recorded as "unknown command" and the administrator's click would do nothing."""

from __future__ import annotations

from core.app import run_core
from shared import db
from shared.commands import HOLD_ACTIONS, SLOW_ACTIONS, Command
from tests.support.commands import ask
from tests.support.core import make_home
from tests.support.waiting import until

# Arguments that name nothing, so that each handler runs and changes nothing.
_HARMLESS_ARGS = {
    Command.HOLD_REPROCESS: {"ids": ["NOSUCHID"]},
    Command.HOLD_DROP: {"ids": ["NOSUCHID"]},
    Command.HOLD_FORWARD: {"ids": ["NOSUCHID"], "address": "admin@local.test"},
    Command.SLOW_RETRY: {"ids": ["NOSUCHID"]},
    Command.WHITELIST_AUTO_DELETE: {"domains": []},
    Command.VIRUS_QUARANTINE_DELETE: {"ids": []},
    Command.VIRUS_QUARANTINE_CENTRAL_RESEND: {"ids": []},
}


def _query(home, sql, args=()):
    conn = db.connect(home.db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_the_core_has_a_handler_for_every_command_kind(tmp_path, nursery):
    assert set(_HARMLESS_ARGS) == set(Command)      # a new kind needs its line above
    home = make_home(tmp_path)
    await nursery.start(run_core, home)
    for kind, args in _HARMLESS_ARGS.items():
        ask(home, kind, args, requested_by="test")
    await until(lambda: not _query(home, "SELECT id FROM commands "
                                         "WHERE state IN ('pending', 'running')"), 20)
    results = {row["kind"]: row["result"] for row in
               _query(home, "SELECT kind, result FROM commands")}
    assert set(results) == {str(kind) for kind in Command}
    unknown = {kind: result for kind, result in results.items()
               if result.startswith("unknown command")}
    assert not unknown


def test_every_hold_action_is_a_hold_command():
    assert {str(kind) for kind in HOLD_ACTIONS.values()} == {
        str(kind) for kind in Command if kind.startswith("hold.")}


def test_every_slow_queue_action_is_a_slow_command():
    assert {str(kind) for kind in SLOW_ACTIONS.values()} == {
        str(kind) for kind in Command if kind.startswith("slow.")}
