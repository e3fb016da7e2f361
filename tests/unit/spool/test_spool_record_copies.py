"""core/spool/manager.py record_copies: the one event for an id found in several queues, and
none when the other copy was gone by the time it was resolved (review 15 C6: a rescan that
listed an id in fast/ as it was being moved on said it "was in 1 queues")."""

from core.spool.manager import record_copies
from shared.events import Action
from shared.spool import DUPLICATE_RULE


class Events:
    """Stands in for EventWriter: keeps what is recorded."""

    def __init__(self):
        self.rows = []

    def record(self, action, **fields):
        self.rows.append((Action(action), fields))


def test_no_event_when_no_other_copy_was_there_to_resolve():
    events = Events()
    record_copies(events, "D251AAAAAAAA", "slow", [])
    assert events.rows == []


def test_one_event_names_the_queues_and_what_was_done():
    events = Events()
    record_copies(events, "D251AAAAAAAA", "slow", [("fast", "deleted")])
    [(action, fields)] = events.rows
    assert action == Action.SCAN_ERROR and fields["rule"] == DUPLICATE_RULE
    assert fields["info"].startswith("D251AAAAAAAA was in 2 queues")
    assert "kept the copy in slow; the copy in fast: deleted" in fields["info"]
