"""GroupCommitter at shutdown: a session waiting (shielded) for its commit must never wait
for a committer that is gone. Shutdown cancels the committer; it still commits what is
pending, and a later commit fails at once. Before this rule a listener process could hang
for good after its core died (found as an orphaned listener after the SIGKILL test)."""

from __future__ import annotations

import errno
import threading

import trio

from core.smtp.group_commit import GroupCommitter, PendingMessage
from shared.spool import Envelope, Spool, new_queue_id

CONTENT = [b"Subject: shutdown\r\n\r\nhello\r\n"]


def _pending() -> PendingMessage:
    queue_id = new_queue_id()
    envelope = Envelope.new(queue_id, "a@client.test", ["b@local.test"])
    return PendingMessage(queue_id, envelope, list(CONTENT))


def _run_in_thread(scenario) -> bool:
    """True when trio.run(scenario) finished within 20 s (a hang must fail, not block)."""
    thread = threading.Thread(target=trio.run, args=(scenario,), daemon=True)
    thread.start()
    thread.join(20)
    return not thread.is_alive()


def test_commit_racing_shutdown_completes_or_fails_and_later_commits_fail(tmp_path):
    spool = Spool(tmp_path / "spool")
    outcomes: list = []
    first, late = _pending(), _pending()

    async def scenario():
        committer = GroupCommitter(spool)
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)

            async def session():
                try:
                    await committer.commit(first)
                    outcomes.append("committed")
                except OSError as exc:
                    outcomes.append(exc.errno)

            nursery.start_soon(session)
            nursery.cancel_scope.cancel()      # shutdown while the session commits
        try:
            await committer.commit(late)
        except OSError as exc:
            outcomes.append(("late", exc.errno))

    assert _run_in_thread(scenario), "a session waited for a committer that had stopped"
    assert outcomes[0] in ("committed", errno.ESHUTDOWN)
    assert outcomes[1] == ("late", errno.ESHUTDOWN)
    in_fast = set(spool.list("fast"))
    assert (first.queue_id in in_fast) == (outcomes[0] == "committed")
    assert late.queue_id not in in_fast

