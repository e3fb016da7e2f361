"""The `events_purged` event gives its cut-off as ISO 8601 with the offset of the `timezone`
setting, as every other time in the reports (reports18 C1: the detail report showed
`cutoff=1795395120.6663094`). console.jobs.purge_old_events on a real home; the detail
report's own formatting of the row."""

from __future__ import annotations

import datetime as dt
import json

from console.jobs import purge_old_events
from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.report_format import detail_parts
from shared.settings_store import apply_changes

NOW = dt.datetime(2026, 11, 30, 0, 52, tzinfo=dt.timezone.utc).timestamp()


def test_the_purge_cutoff_is_iso_8601_in_the_timezone_setting(home):
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"logging.retention_days": 7, "timezone": "Asia/Kolkata"})
    finally:
        conn.close()
    clock = FakeClock(NOW)
    writer = EventWriter(home.db, "console", clock)
    try:
        purge_old_events(home, writer, clock)
        writer.flush()
    finally:
        writer.close()
    conn = db.connect(home.db)
    try:
        info, data = conn.execute("SELECT info, data FROM events WHERE action = ? "
                                  "ORDER BY id DESC", (Action.EVENTS_PURGED.value,)).fetchone()
    finally:
        conn.close()
    values = json.loads(data)
    assert values["cutoff"] == "2026-11-23T06:22:00+05:30"      # 7 days before, in IST
    assert "cutoff=2026-11-23T06:22:00+05:30" in detail_parts("events_purged", values,
                                                              info=info)
