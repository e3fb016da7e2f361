"""The events a figure leaves out by their result (shared/report.py NOT_COUNTED) are counted
through the partial index that holds them alone (migration 0005 events_not_counted), not by
reading every event of the action in the range.

Regression, review21b D1: since c526637 Spam Detected left out the whitelisted
heuristic_spam events by reading every heuristic_spam event of the range
(events_action_time, then `result` from the table): a 30-day summary over a million of them
took ~0.2-0.3 s (4-5 s on cold pages) where the roll-ups answer in a few milliseconds.
The plan is what is checked, not a time (no wall-clock assertions)."""

from __future__ import annotations

import pytest

from shared import db
from shared.clock import FakeClock
from shared.events import WHITELISTED, Action, EventWriter
from shared.report import NOT_COUNTED, _NOT_COUNTED_WHERE, summarise
from shared.report_time import ReportRange

T0 = 1_800_000_000.0


@pytest.fixture
def conn(tmp_path):
    conn = db.connect(tmp_path / "mailmoat.db")
    db.migrate(conn)
    yield conn
    conn.close()


@pytest.mark.parametrize("action", list(NOT_COUNTED))
def test_every_left_out_count_reads_only_the_index_of_the_left_out(conn, action):
    for select in ("COUNT(*)", "time"):
        plan = " ".join(row[-1] for row in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT {select} {_NOT_COUNTED_WHERE}",
            (action.value, T0, T0 + 3600, NOT_COUNTED[action])))
        assert "COVERING INDEX events_not_counted" in plan, plan


def test_spam_detected_leaves_the_whitelisted_out_through_the_index(tmp_path, conn):
    clock = FakeClock(T0)
    writer = EventWriter(tmp_path / "mailmoat.db", "core", clock)
    for i, result in enumerate(["delivered", WHITELISTED, "delivered", WHITELISTED, "held"]):
        clock.value = T0 + 100 + i * 1000          # across whole hours and their edges
        writer.record(Action.HEURISTIC_SPAM, result=result, queue_id=f"q{i}")
    writer.flush()
    writer.close()
    summary = summarise(conn, ReportRange(T0 + 50, T0 + 5 * 3600), premium=True)
    assert dict(summary.section("premium").rows)["Spam Detected"] == 3
