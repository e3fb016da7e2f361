"""core/delivery/pool.py: the outgoing connection limit follows smtp.max_outgoing live; a
connection is reused for a limited time; a second connection for a key beside an idle one."""

from __future__ import annotations

import pytest
import trio

from core.delivery.pool import IDLE_CONNECTION_SECONDS, REUSE_TIME_LIMIT_SECONDS, ConnectionPool

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


# --- reuse time limit (rule 5) and a second connection beside an idle one (rule 2) --------------

def closing_pool(limit: int):
    closed = []

    async def close(session):
        closed.append(session)

    return ConnectionPool(limit, close), closed


async def test_an_idle_connection_past_its_reuse_time_limit_is_closed_not_handed_out(
        mock_clock):
    # mxfail finding 1: a connection kept busy within the idle time was reused for good
    pool, closed = closing_pool(2)
    slot = await pool.checkout("hop")
    slot.session = "first"
    pool.checkin(slot)
    mock_clock.jump(REUSE_TIME_LIMIT_SECONDS - 1)
    again = await pool.checkout("hop")
    assert again is slot and pool.is_reusable(again)     # within its 300 s: reused
    pool.checkin(again)
    mock_clock.jump(1)
    fresh = await pool.checkout("hop")
    assert fresh.session is None and closed == ["first"]
    assert (pool.open_connections, pool.idle_connections) == (1, 0)


async def test_reuse_time_counts_from_the_session_set_not_the_slot(mock_clock):
    pool, _ = closing_pool(1)
    slot = await pool.checkout("hop")
    mock_clock.jump(REUSE_TIME_LIMIT_SECONDS)     # e.g. a connection replaced in the slot
    slot.session = "replacement"
    assert pool.is_reusable(slot)
    mock_clock.jump(REUSE_TIME_LIMIT_SECONDS)
    assert not pool.is_reusable(slot)


async def test_reap_closes_a_connection_past_its_reuse_time_limit_however_briefly_idle(
        mock_clock):
    pool, closed = closing_pool(2)
    old, young = await pool.checkout("a"), await pool.checkout("b")
    old.session = "old"
    mock_clock.jump(REUSE_TIME_LIMIT_SECONDS - 5)
    young.session = "young"
    pool.checkin(old)
    pool.checkin(young)
    mock_clock.jump(5)                                   # idle 5 s, open 300 s
    assert await pool.reap(IDLE_CONNECTION_SECONDS) == 1
    assert closed == ["old"] and pool.idle_connections == 1


async def test_checkout_without_reuse_opens_a_second_connection_beside_an_idle_one():
    pool, closed = closing_pool(2)
    first = await pool.checkout("hop")
    first.session = "first"
    pool.checkin(first)
    second = await pool.checkout("hop", reuse=False)
    assert second is not first and second.session is None and closed == []
    assert (pool.open_connections, pool.idle_connections) == (2, 1)


async def test_checkout_without_reuse_at_the_limit_closes_the_idle_connection():
    # smtp.max_outgoing 1: the connection given back when recipients go on to another
    # host makes room for that host's; waiting for it would wait for ever
    pool, closed = closing_pool(1)
    first = await pool.checkout("hop")
    first.session = "first"
    pool.checkin(first)
    with trio.fail_after(5):
        second = await pool.checkout("hop", reuse=False)
    assert second.session is None and closed == ["first"]
    assert (pool.open_connections, pool.idle_connections) == (1, 0)


# --- closed at shutdown (rule 6) -------------------------------------------------------------

async def test_a_connection_in_use_when_the_pool_closes_is_no_longer_reusable():
    # review16b C3: an attempt running on in its grace after the deliverer's run had closed
    # the pool checked its connection in, idle where nothing ever QUIT it; the deliverer
    # gives back only what `is_reusable`, and closes the rest itself
    pool, closed = closing_pool(2)
    idle, busy = await pool.checkout("a"), await pool.checkout("b")
    idle.session, busy.session = "idle", "busy"
    pool.checkin(idle)
    assert pool.is_reusable(busy)
    await pool.close_all()
    assert closed == ["idle"] and pool.idle_connections == 0
    assert not pool.is_reusable(busy)
