"""The daily retention purge follows the `timezone` setting live (SPEC §3: every setting
applies within 2 seconds; reports18 B3: the CronTrigger was built once, in the zone read at
start, so a change of `timezone` moved nothing until the console restarted). The real
scheduler of console.jobs on a real home; a change saved as the console and the CLI save it.
"""

from __future__ import annotations

import time

from console.jobs import start_jobs
from shared import db
from shared.clock import FakeClock
from shared.events import EventWriter
from shared.settings_store import apply_changes

DAILY, AT_START = "purge_old_events", "purge_old_events_at_start"


def _set_timezone(home, name: str) -> None:
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"timezone": name})
    finally:
        conn.close()


def _until(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "not within the timeout"
        time.sleep(0.05)


def test_a_timezone_change_moves_the_daily_purge_without_a_restart(home):
    _set_timezone(home, "Atlantic/Azores")
    writer = EventWriter(home.db, "console", FakeClock())
    jobs = start_jobs(home, writer, FakeClock())
    try:
        daily = jobs.scheduler.get_job(DAILY)
        assert daily.trigger.timezone.key == "Atlantic/Azores"
        _set_timezone(home, "Asia/Kolkata")
        _until(lambda: jobs.scheduler.get_job(DAILY).trigger.timezone.key == "Asia/Kolkata")
        local = jobs.scheduler.get_job(DAILY).next_run_time.astimezone(
            jobs.scheduler.get_job(DAILY).trigger.timezone)
        assert (local.hour, local.minute) == (2, 30)
        # the run a minute after the start is still to come
        assert jobs.scheduler.get_job(AT_START) is not None
    finally:
        jobs.shutdown()
        writer.close()
