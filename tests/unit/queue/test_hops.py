"""HopGate (core/spool/hops.py): attempts per next hop and the messages waiting for one."""

from __future__ import annotations

from core.spool.hops import HopGate


def test_a_full_next_hop_makes_a_message_wait_and_its_end_lets_the_first_go():
    gate = HopGate(limit=2)
    gate.enter({"a"})
    gate.enter({"a", "b"})
    assert gate.full_hop({"b", "a"}) == "a" and gate.full_hop({"b"}) is None
    gate.wait("a", "m1")
    gate.wait("a", "m2")
    assert gate.waiting_count == 2
    assert gate.leave({"a", "b"}) == ["m1"]           # one per next hop freed, in order
    assert gate.active == {"a": 1} and gate.waiting_count == 1
    assert gate.leave({"a"}) == ["m2"] and gate.active == {} and gate.waiting_count == 0


def test_a_message_for_two_next_hops_enters_both_or_waits_on_the_full_one():
    gate = HopGate(limit=1)
    gate.enter({"b"})
    assert gate.full_hop({"a", "b"}) == "b"             # rule 1: it holds neither
    assert gate.active == {"b": 1}
    gate.wait("b", "m")
    assert gate.leave({"b"}) == ["m"]
    assert gate.full_hop({"a", "b"}) is None
    gate.enter({"a", "b"})
    assert gate.active == {"a": 1, "b": 1}


def test_a_raised_limit_hands_back_at_once_what_now_has_room():
    # review28d R9: the limit follows smtp.max_outgoing; raised, it reached no next hop
    # that had messages waiting, as each ending attempt woke just one of them
    gate = HopGate(2)
    gate.enter(["h"])
    gate.enter(["h"])
    for n in range(5):
        gate.wait("h", n)
    gate.wait("g", "other")          # waits on a hop with nothing in progress
    assert gate.set_limit(4) == [0, 1, "other"]
    assert gate.waiting_count == 3
    # lowered, nothing is handed back: the attempts in progress end as they do
    assert gate.set_limit(1) == []
    assert gate.waiting_count == 3
    assert gate.full_hop(["h"]) == "h"
