"""`logging.retention_days` applies to the diagnostics directory (exploratory finding
diagnostics 7: conversation logs and saved queue files were never deleted; a log 100 days
old survived the console's retention job).

The job is console.jobs.purge_old_events, the one that purges events and saved report CSVs;
the rule is shared.retention.purge_diagnostics. Real files with real modification times,
real SQLite.
"""

from __future__ import annotations

import json
import os
import time

from console.jobs import purge_old_events
from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.retention import SECONDS_PER_DAY
from shared.settings_store import apply_changes


def _file(path, age_days: float, now: float, data: bytes = b"x") -> object:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = now - age_days * SECONDS_PER_DAY
    os.utime(path, (stamp, stamp))
    return path


def _retention(home, days: int) -> None:
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"logging.retention_days": days})
    finally:
        conn.close()


def _last_purge(home):
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT info, data FROM events WHERE action = ? ORDER BY id DESC",
                            (Action.EVENTS_PURGED.value,)).fetchone()
    finally:
        conn.close()


def test_diagnostics_files_past_the_retention_are_deleted_by_the_daily_job(home):
    now = time.time()
    clock = FakeClock(now)
    diagnostics, queue_files = home.diagnostics, home.diagnostics / "queuefiles"
    old = [_file(diagnostics / "inbound-20260101T000000-c1.log", 100, now),
           _file(diagnostics / "outbound" / "attempt-1.log", 8, now),     # at any depth
           _file(queue_files / "0000000000AA.eml", 8, now),
           _file(queue_files / "0000000000AA.envelope.json", 8, now)]
    recent = [_file(diagnostics / "inbound-20270101T000000-c2.log", 6, now),
              _file(queue_files / "0000000000BB.eml", 0, now)]
    # waiting for its message's fate in the core, however old the message
    pending = _file(queue_files / ".pending" / "0000000000CC.eml", 20, now)
    writer = EventWriter(home.db, "console", clock)
    try:
        _retention(home, 0)
        purge_old_events(home, writer, clock)                       # 0: kept for ever
        assert all(path.exists() for path in old + recent + [pending])
        _retention(home, 7)
        purge_old_events(home, writer, clock)
        writer.flush()
    finally:
        writer.close()
    assert not any(path.exists() for path in old)
    assert all(path.exists() for path in recent + [pending])
    assert (diagnostics / "outbound").is_dir() and queue_files.is_dir()   # folders stay
    info, data = _last_purge(home)
    assert info.endswith("and 4 diagnostics file(s) older than 7 days deleted"), info
    assert json.loads(data)["diagnostics_files_deleted"] == 4


def test_the_usage_counts_every_file_once_however_many_names_it_has(home):
    from shared.retention import diagnostics_usage

    now = time.time()
    queue_files = home.diagnostics / "queuefiles"
    _file(home.diagnostics / "inbound-x.log", 0, now, b"a" * 1000)
    kept = _file(queue_files / "0000000000AA.eml", 0, now, b"b" * 500)
    (queue_files / ".pending").mkdir()
    os.link(kept, queue_files / ".pending" / "0000000000AA.eml")     # one file, two names
    usage = diagnostics_usage(home.diagnostics)
    assert (usage.files, usage.octets) == (3, 1500)
