"""Backoff schedule and reordering state of the slow queue."""

import random

from core.delivery.mx import order_mx
from core.spool.schedule import SlowSchedule, retry_delay


def test_backoff_doubles_from_initial_up_to_max():
    assert [retry_delay(n, 300, 14400) for n in range(1, 9)] == [
        300, 600, 1200, 2400, 4800, 9600, 14400, 14400]
    assert retry_delay(0, 300, 14400) == 300
    assert retry_delay(10_000, 1, 86400) == 86400


def test_due_orders_reordered_first_then_oldest():
    s = SlowSchedule()
    s.put("a", 100, {"hop1"})
    s.put("b", 50, {"hop2"})
    s.put("c", 500, {"hop1"})
    assert s.due(200) == ["b", "a"]
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 2
    assert s.due(200) == ["a", "c", "b"]
    assert s.next_due_at() == 0.0
    assert s.attempted("a") == []
    assert s.attempted("c") == ["hop1"]
    assert s.due(200) == ["b", "a"]


def test_delivery_to_a_hop_that_was_not_deferring_reorders_nothing():
    s = SlowSchedule()
    s.put("a", 100, {"hop1"})
    assert s.hop_delivered("hop1") == 0
    assert s.reordering == {}


def test_mx_order_by_preference_with_equal_ones_shuffled():
    records = [(20, "c"), (10, "a"), (10, "b"), (30, "d")]
    seen = set()
    for seed in range(20):
        ordered = order_mx(records, random.Random(seed))
        assert [p for p, _ in ordered] == [10, 10, 20, 30]
        seen.add(tuple(h for _, h in ordered[:2]))
    assert seen == {("a", "b"), ("b", "a")}
