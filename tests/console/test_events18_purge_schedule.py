"""The daily retention purge follows the `timezone` setting live (SPEC §3: every setting
applies within 2 seconds; reports18 B3: the CronTrigger was built once, in the zone read at
start, so a change of `timezone` moved nothing until the console restarted). The real
scheduler of console.jobs on a real home; a change saved as the console and the CLI save it.

The reschedule is driven by calling `follow_timezone` (what the follower thread runs each
FOLLOW_SECONDS); one test shows the thread does it, waiting for the scheduler's own "job
modified" event (review18 T3). Following reads the one `timezone` row, and a stored name that
makes no zone is UTC with one warning, not a traceback a second (review18 D7).
"""

from __future__ import annotations

import logging
import threading

import pytest
from apscheduler.events import EVENT_JOB_MODIFIED

from console.jobs import schedule_jobs, start_jobs
from console.sessions import Sessions
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


def _store_timezone_unchecked(home, text: str) -> None:
    """A value the schema refuses today, as an older release or a hand edit left it."""
    conn = db.connect(home.db)
    try:
        with conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value, updated_at) "
                         "VALUES ('timezone', ?, 0)", (text,))
    finally:
        conn.close()


def _daily_zone(jobs) -> str:
    return jobs.scheduler.get_job(DAILY).trigger.timezone.key


@pytest.fixture
def writer(home):
    writer = EventWriter(home.db, "console", FakeClock())
    yield writer
    writer.close()


@pytest.fixture
def jobs(home, writer):
    """The scheduler with its jobs, without the follower thread: the test follows."""
    _set_timezone(home, "Atlantic/Azores")
    jobs = schedule_jobs(home, writer, FakeClock(), Sessions())
    yield jobs
    jobs.shutdown()


def test_a_timezone_change_moves_the_daily_purge_without_a_restart(home, jobs):
    assert _daily_zone(jobs) == "Atlantic/Azores"
    assert jobs.follow_timezone() is False              # nothing changed yet
    _set_timezone(home, "Asia/Kolkata")
    assert jobs.follow_timezone() is True
    daily = jobs.scheduler.get_job(DAILY)
    assert daily.trigger.timezone.key == "Asia/Kolkata"
    local = daily.next_run_time.astimezone(daily.trigger.timezone)
    assert (local.hour, local.minute) == (2, 30)
    assert jobs.follow_timezone() is False              # once per change
    # the run a minute after the start is still to come
    assert jobs.scheduler.get_job(AT_START) is not None


def test_following_reads_only_the_timezone_row(home, jobs):
    statements: list[str] = []
    jobs.conn.set_trace_callback(statements.append)
    _set_timezone(home, "Asia/Kolkata")
    assert jobs.follow_timezone() is True
    jobs.conn.set_trace_callback(None)
    assert statements == ["SELECT value FROM settings WHERE key = 'timezone'"]


def test_a_stored_name_that_makes_no_zone_is_utc_with_one_warning(home, jobs, caplog):
    caplog.set_level(logging.INFO, logger="mailmoat.console.jobs")
    _store_timezone_unchecked(home, '"Europe"')         # a tz directory: IsADirectoryError
    assert jobs.follow_timezone() is True
    assert _daily_zone(jobs) == "UTC"
    for _ in range(3):                                  # the follower's next seconds
        assert jobs.follow_timezone() is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "the timezone setting 'Europe' names no time zone: the daily "
        "event purge runs in UTC"]
    assert not any(r.exc_info for r in caplog.records)
    _set_timezone(home, "Asia/Kolkata")                 # a good name again is followed
    assert jobs.follow_timezone() is True
    assert _daily_zone(jobs) == "Asia/Kolkata"


def test_the_console_process_follows_in_a_thread_of_its_own(home, writer):
    _set_timezone(home, "Atlantic/Azores")
    jobs = start_jobs(home, writer, FakeClock(), Sessions())
    try:
        moved = threading.Event()
        jobs.scheduler.add_listener(lambda event: event.job_id == DAILY and moved.set(),
                                    EVENT_JOB_MODIFIED)
        _set_timezone(home, "Asia/Kolkata")
        assert moved.wait(timeout=10), "the follower did not reschedule the daily purge"
        assert _daily_zone(jobs) == "Asia/Kolkata"
    finally:
        jobs.shutdown()
