"""core/delivery/pool.py: the outgoing connection limit follows smtp.max_outgoing live."""

from __future__ import annotations

import pytest

from core.delivery.pool import ConnectionPool

pytestmark = pytest.mark.trio


async def test_lowering_the_limit_closes_idle_connections_over_it_oldest_first():
    # limits tester C2: lowered from 3 to 1 with no mail waiting, the idle connections
    # stayed open above the new limit until their 30 s idle time ran out
    closed = []

    async def close(session):
        closed.append(session)

    pool = ConnectionPool(3, close)
    slots = [await pool.checkout(("hop", n)) for n in range(3)]
    for n, slot in enumerate(slots):
        slot.session = f"session {n}"
        pool.checkin(slot)
    assert (pool.open_connections, pool.idle_connections) == (3, 3)
    pool.set_limit(1)
    assert await pool.shed() == 2
    assert closed == ["session 0", "session 1"]
    assert (pool.open_connections, pool.idle_connections) == (1, 1)
    assert await pool.shed() == 0                        # within the limit: nothing more


async def test_a_connection_in_use_is_never_shed_it_closes_when_given_back():
    closed = []

    async def close(session):
        closed.append(session)

    pool = ConnectionPool(2, close)
    busy, idle = await pool.checkout("a"), await pool.checkout("b")
    busy.session, idle.session = "busy", "idle"
    pool.checkin(idle)
    pool.set_limit(1)
    assert await pool.shed() == 1 and closed == ["idle"]
    assert pool.open_connections == 1                    # the busy one: within the limit
