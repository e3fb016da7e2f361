"""Small helpers the end-to-end tests share: read events back, wait for a condition.

What a core records reaches SQLite a moment later (its event writer batches, a listener
process has a writer of its own, the status snapshot is written once a second), and some of it
is recorded only after what a test can see (an entry in hold/, a message at the sink). A test
that reads something that may still be on its way waits for that row itself (`until` with
`flush`, `at_least`, `next_snapshot`) instead of flushing or sleeping once and then reading.
"""

from __future__ import annotations

import time

import trio

from shared import db
from shared.status import read_snapshot

__all__ = ["events_of", "until", "at_least", "next_snapshot", "wait_for"]


def events_of(home, action) -> list:
    """Rows of one action from the home's events table, oldest first."""
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT * FROM events WHERE action = ? ORDER BY id",
                            (str(action),)).fetchall()
    finally:
        conn.close()


async def until(predicate, timeout: float = 20.0, *, flush=None):
    """Poll `predicate` on trio's clock until it is true, and return what it returned;
    TooSlowError after `timeout`. `flush` (a core's `events.aflush`) is awaited before each
    look, so events the core has recorded are committed when the predicate reads them:
    `core.events.flush()` inside the predicate would block the trio thread the core under
    test runs on until its writer had committed."""
    with trio.fail_after(timeout):
        while True:
            if flush is not None:
                await flush()
            if found := predicate():
                return found
            await trio.sleep(0.02)


async def at_least(home, action, count: int, timeout: float = 20.0, *, flush=None) -> list:
    """The rows of `action` once there are at least `count` of them; `flush` as for
    `until`."""
    rows: list = []

    def enough():
        rows[:] = events_of(home, action)
        return len(rows) >= count
    await until(enough, timeout, flush=flush)
    return rows


def _snapshot(home) -> tuple[dict, float] | None:
    conn = db.connect(home.db, readonly=True)
    try:
        return read_snapshot(conn)
    finally:
        conn.close()


async def next_snapshot(home, timeout: float = 20.0) -> dict:
    """The core's status snapshot once one is written after now, so it counts what
    happened before this call: a sleep of a snapshot interval may end before the core's
    next write (its writes come on its own clock, through a thread)."""
    now = time.time()       # the snapshot's stamp is the core's wall-clock time
    found = await until(lambda: (taken := _snapshot(home)) and taken[1] > now and taken,
                        timeout)
    return found[0]


def wait_for(predicate, timeout: float) -> bool:
    """Poll `predicate` (outside trio) until true or `timeout`; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
