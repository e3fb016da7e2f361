"""`mailmoat queue list` shows a delivery attempt in progress, and for how long (tester28c
C3): a message held up by a next hop that accepts connections and never greets sat in the
listing for the greeting timeout (300 s) as one nobody was trying."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest
import trio

from core.app import run_core
from shared import db
from shared.spool import Spool
from shared.status import STALE_AFTER_SECONDS, new_snapshot, write_snapshot
from tests.support.core import make_home
from tests.support.mail import send_text
from tests.support.spool import put_message
from tests.support.waiting import until

pytest_plugins = ["tests.support.fixtures"]


def _listing(home) -> dict[str, dict[str, str]]:
    """`queue list`'s rows by queue id, each by column name (ASCII rows: the header's
    columns start where the row's do)."""
    result = subprocess.run([sys.executable, "-m", "shared.cli", "queue", "list",
                             "--home", str(home.root)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    rows = {}
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows[cells[1]] = dict(zip(names, cells))
    return rows


@pytest.mark.trio
async def test_an_attempt_held_up_by_a_silent_next_hop_shows_as_trying(tmp_path, nursery):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    home = make_home(tmp_path, routing__local=[
        {"match": "silent.test", "relay": "127.0.0.1", "port": silent.getsockname()[1]}],
        delivery__retry_initial_seconds=3600, delivery__retry_max_seconds=7200)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_text, core.smtp_addresses[0][1], "held up", "Hi.\n",
                                  "a@silent.test", "user@silent.test")
    connection, _ = await trio.to_thread.run_sync(silent.accept)   # no greeting, ever
    try:
        rows = await until(lambda: [r for r in _listing(home).values()
                                    if r["NEXT"].startswith("trying (")])
        [row] = rows
        assert (row["QUEUE"], row["RECIPIENTS"]) == ("fast", "user@silent.test")
    finally:
        connection.close()      # the attempt ends: deferred, to the slow queue
        silent.close()
    queue_id = row["ID"]
    # the snapshot is written once a second: the attempt's end shows within one
    after = await until(lambda: (r := _listing(home).get(queue_id)) and r["QUEUE"] == "slow"
                        and not r["NEXT"].startswith("trying") and r)
    assert after["NEXT"].startswith("in "), after
    core.cancel_scope.cancel()


@pytest.mark.parametrize("written_ago, shown", [
    (0, r"trying \(1m0\ds\)"),                    # a live snapshot: how long so far (the
                                                    # command starts a second or two later)
    (STALE_AFTER_SECONDS + 1, "due"),               # a core gone: its attempts are not
])
def test_only_a_live_snapshot_says_what_is_being_tried(tmp_path, written_ago, shown):
    home = make_home(tmp_path)
    now = time.time()
    queue_id = put_message(Spool(home.spool), "slow", attempts=1, next_attempt_at=now - 5)
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, new_snapshot(attempts={queue_id: round(now - 60)}),
                       now - written_ago)
    finally:
        conn.close()
    assert re.fullmatch(shown, _listing(home)[queue_id]["NEXT"])


def test_a_snapshot_of_a_release_without_attempts_shows_none(tmp_path):
    home = make_home(tmp_path)
    queue_id = put_message(Spool(home.spool), "slow", attempts=1,
                           next_attempt_at=time.time() + 600)
    snapshot = new_snapshot()
    del snapshot["attempts"]
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, snapshot)
    finally:
        conn.close()
    assert _listing(home)[queue_id]["NEXT"].startswith("in 9m")
