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
