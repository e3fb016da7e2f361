"""Small helpers the end-to-end tests share: read events back, wait for a condition."""

from __future__ import annotations

import trio

from shared import db

__all__ = ["events_of", "until", "at_least"]


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


async def at_least(home, action, count: int, timeout: float = 20.0) -> list:
    """The rows of `action` once there are at least `count` of them."""
    rows: list = []

    def enough():
        rows[:] = events_of(home, action)
        return len(rows) >= count
    await until(enough, timeout)
    return rows
