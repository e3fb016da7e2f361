"""Backoff schedule and reordering state of the slow queue."""

import random

from core.delivery.mx import order_mx
from core.spool.schedule import SlowSchedule, retry_delay, retry_expired, retry_until


def test_backoff_doubles_from_initial_up_to_max():
    assert [retry_delay(n, 300, 14400) for n in range(1, 9)] == [
        300, 600, 1200, 2400, 4800, 9600, 14400, 14400]
    assert retry_delay(0, 300, 14400) == 300
    assert retry_delay(10_000, 1, 86400) == 86400


def test_retry_days_end_at_the_same_moment_for_every_caller():
    # review14 D2: the queue manager, its delay notice and the central forwarder each
    # counted the days themselves
    settings = {"delivery.retry_days": 5}
    since = 1_800_000_000.0
    assert retry_until(since, settings) == since + 5 * 24 * 3600
    assert not retry_expired(since, settings, since + 5 * 24 * 3600 - 1)
    assert retry_expired(since, settings, since + 5 * 24 * 3600)


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


def test_a_message_the_hop_defers_again_while_it_takes_other_mail_waits_for_its_backoff():
    """One recipient's 451 at a busy, healthy hop: the message is reordered once when the hop
    takes other mail; deferred again then, it is its own, and the hop's later successes do
    not send it again before its backoff (it went after each: 5 attempts in a second)."""
    s = SlowSchedule()
    s.put("m", 1000, {"hop1"})
    s.put("other", 1000, {"hop1", "hop2"})
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 2               # the hop took a message: both go now
    assert s.attempted("m") == []
    s.put("m", 2000, {"hop1"})                        # ... and hop1 held m back again
    assert s.attempted("other") == ["hop1"]
    s.put("other", 2000, {"hop2"})                    # other went at hop1; waits for hop2
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 0               # m waits for its backoff
    assert s.due(1500) == [] and s.due(2000) == ["m", "other"]
    s.hop_deferred("hop2")
    assert s.hop_delivered("hop2") == 1               # hop2 never declined "other"
    s.remove("m")
    s.put("m", 3000, {"hop1"})                        # a new entry (a restart) starts afresh
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 1


def test_a_reordering_that_comes_while_an_attempt_ends_still_stands():
    """Between a message's attempt and its next put (the envelope is written meanwhile) the
    hop may take other mail and reorder it: that reordering must stand, and the hop must not
    count as having declined it (the message sat in the reordering set until its backoff)."""
    s = SlowSchedule()
    s.put("m", 1000, {"hop1"})
    assert s.attempted("m") == []                     # m's attempt ends (deferred) ...
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 1               # ... the hop takes other mail ...
    s.put("m", 2000, {"hop1"})                        # ... then m is put back
    assert s.due(1500) == ["m"]                       # the reordering stands
    assert s.attempted("m") == ["hop1"]
    s.put("m", 4000, {"hop1"})                        # deferred again on that attempt
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 0 and s.reordering == {}


def test_a_hop_that_takes_mail_while_its_reordered_message_is_being_put_back_waits():
    """The window between a reordered message's attempted() and its put(): a success at the
    hop then must not reorder it a second time (3 attempts where at most 2 were meant)."""
    s = SlowSchedule()
    s.put("m", 1000, {"hop1"})
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 1
    assert s.attempted("m") == ["hop1"]
    s.hop_deferred("hop1")                            # m's reordered attempt: held back again
    assert s.hop_delivered("hop1") == 0               # another message went meanwhile
    s.put("m", 2000, {"hop1"})
    assert s.due(1500) == [] and s.reordering == {}


def test_a_messages_own_scheduled_retry_that_succeeds_moves_nothing_up():
    """Outbound19 B1: the one waiting message's own retry delivers at a hop that deferred
    it: nothing was moved up, so no reordering (a pair of events said "messages=1")."""
    s = SlowSchedule()
    s.put("m", 1000, {"hop1"})
    s.hop_deferred("hop1")
    assert s.due(1000) == ["m"]
    s.taken(["m"])
    assert s.hop_delivered("hop1") == 0 and s.reordering == {}
    assert s.attempted("m") == []
    s.remove("m")


def test_only_the_messages_moved_up_count_not_those_in_flight_on_their_own_schedule():
    """Outbound19 B1: four wait for a greylisting hop, three of them due and taken at the
    same moment; the first one's success moves up only the fourth ("messages=4" before)."""
    s = SlowSchedule()
    for qid in ("a", "b", "c"):
        s.put(qid, 1000, {"hop1"})
    s.put("d", 5000, {"hop1"})
    s.hop_deferred("hop1")
    s.taken(s.due(1000))
    assert s.hop_delivered("hop1") == 1               # a's success: d goes now, alone
    assert s.reordering == {"hop1": {"d"}}
    assert s.due(1000) == ["d", "a", "b", "c"] and s.due(1000, exclude={"a", "b", "c"}) == ["d"]
    s.remove("a")
    assert s.attempted("b") == [] and s.attempted("c") == []
    s.put("b", 2000, {"hop1"})                        # the hop held b back meanwhile: its own
    s.remove("c")
    s.taken(["d"])
    assert s.attempted("d") == ["hop1"]               # the stop: when d had its attempt
    s.remove("d")
    s.hop_deferred("hop1")
    assert s.hop_delivered("hop1") == 0               # b declined: it waits for its backoff
    assert s.due(1500) == []


def test_retry_now_makes_due_what_it_is_given_and_keeps_an_earlier_time():
    """Rule 5 (`mailmoat queue retry --slow`): what waits for its backoff becomes due now;
    a message due earlier keeps its place; an id not scheduled is passed over."""
    s = SlowSchedule()
    s.put("later", 5_000, {"hop1"})
    s.put("early", 10, {"hop1"})
    s.put("other", 9_000, {"hop2"})
    assert s.due(100) == ["early"]
    s.retry_now(100, ["later", "early", "nosuch"])
    assert s.due(100) == ["early", "later"]
    assert (s.entries["early"].next_attempt_at, s.entries["later"].next_attempt_at) == (10, 100)
    assert s.entries["other"].next_attempt_at == 9_000      # not asked for
    assert "nosuch" not in s.entries
