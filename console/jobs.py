"""The console process's scheduled jobs: ONE APScheduler BackgroundScheduler per process.

Rules (STYLE §1 "Console"):
- `start_jobs` is called once, by `console.serve.run` — the `mailmoat console` process — never
  by `create_app`, so tests and any future multi-worker server never run a job twice.
- Jobs are plain service functions that are idempotent and record their outcome as an event
  through the console's one event writer; the scheduler only decides when.
- `coalesce` and `max_instances=1`: a job missed while the machine slept runs once, and never
  overlaps itself.

Jobs:
- `purge_old_events` (shared.retention): daily at PURGE_AT local time (the `timezone`
  setting as read at start), and once a minute after the console starts, so a console that is
  restarted daily still purges. The same retention applies to the copies Write to CSV saved
  in logs/ (console.reporting.service.purge_saved_csv) and to the files of the diagnostics
  directory: conversation logs and saved queue files (shared.retention.purge_diagnostics).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from console.reporting.service import purge_saved_csv
from shared import db
from shared.clock import WallClock
from shared.events import Action, EventWriter
from shared.paths import DataHome
from shared.report_time import zone_of
from shared.retention import PurgeResult, cutoff_shown, purge_diagnostics, purge_events
from shared.settings_store import load

__all__ = ["ConsoleJobs", "start_jobs", "purge_old_events", "PURGE_AT", "FIRST_RUN_SECONDS"]

log = logging.getLogger("mailmoat.console.jobs")

PURGE_AT = (2, 30)          # 02:30 local: after the quarantine purge at 01:00 (SPEC §3)
FIRST_RUN_SECONDS = 60


def purge_old_events(home: DataHome, events: EventWriter, clock: WallClock) -> PurgeResult:
    """Delete events, saved report CSVs and diagnostics files past `logging.retention_days`
    (0 = keep for ever) and record an `events_purged` event saying what was done. Raises
    what the event purge raised, after recording the failure."""
    conn = db.connect(home.db)
    try:
        settings = load(conn)
        days = settings["logging.retention_days"]
        result = purge_events(conn, clock.now(), days)
    except Exception as exc:
        events.record(Action.EVENTS_PURGED, result="failed", rule="logging.retention_days",
                      info=f"the event purge failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        conn.close()
    if result.cutoff is not None:
        # after the events are gone, on its own: a file that cannot be deleted does not
        # make a purge that happened read as failed
        try:
            files, not_purged = purge_saved_csv(home.logs, result.cutoff), ""
        except OSError as exc:
            files, not_purged = 0, f"; saved report CSVs not purged: {exc}"
        diagnostics, problem = purge_diagnostics(home.diagnostics, result.cutoff)
        if problem:
            not_purged += f"; diagnostics files not all purged: {problem}"
        deleted = [f"{result.deleted} event(s)"]
        if files:
            deleted.append(f"{files} saved report CSV file(s)")
        if diagnostics:
            deleted.append(f"{diagnostics} diagnostics file(s)")
        listed = ", ".join(deleted[:-1]) + " and " + deleted[-1] if len(deleted) > 1 \
            else deleted[0]
        events.record(Action.EVENTS_PURGED, result="succeeded", rule="logging.retention_days",
                      info=f"{listed} older than {days} days deleted{not_purged}",
                      data={"deleted": result.deleted, "csv_files_deleted": files,
                            "diagnostics_files_deleted": diagnostics,
                            "cutoff": cutoff_shown(result.cutoff, settings["timezone"]),
                            "batches": result.batches, "seconds": round(result.seconds, 3),
                            "longest_batch_seconds": round(result.longest_batch_seconds, 4)})
    return result


@dataclass
class ConsoleJobs:
    scheduler: BackgroundScheduler

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)


def start_jobs(home: DataHome, events: EventWriter, clock: WallClock) -> ConsoleJobs:
    """Start the process's scheduler with every job; call once per console process."""
    conn = db.connect(home.db)
    try:
        zone = zone_of(load(conn)["timezone"])
    finally:
        conn.close()
    scheduler = BackgroundScheduler(timezone=dt.timezone.utc, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600})

    def purge() -> None:
        try:
            purge_old_events(home, events, clock)
        except Exception:   # recorded as an event; the scheduler keeps the daily schedule
            log.exception("event purge failed")

    scheduler.add_job(purge, CronTrigger(hour=PURGE_AT[0], minute=PURGE_AT[1], timezone=zone),
                      id="purge_old_events", name="purge events past logging.retention_days",
                      next_run_time=dt.datetime.now(dt.timezone.utc)
                      + dt.timedelta(seconds=FIRST_RUN_SECONDS))
    scheduler.start()
    return ConsoleJobs(scheduler)
