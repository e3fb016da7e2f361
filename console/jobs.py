"""The console process's scheduled jobs: ONE APScheduler BackgroundScheduler per process.

Rules (STYLE §1 "Console"):
- `start_jobs` is called once, by `console.serve.run` — the `mailmoat console` process — never
  by `create_app`, so tests and any future multi-worker server never run a job twice.
- Jobs are plain service functions that are idempotent and record their outcome as an event
  through the console's one event writer; the scheduler only decides when.
- `coalesce` and `max_instances=1`: a job missed while the machine slept runs once, and never
  overlaps itself.

Jobs:
- `purge_old_events` (shared.retention): daily at PURGE_AT local time, and once a minute
  after the console starts (a job of its own), so a console that is restarted daily still
  purges. "Local" follows the `timezone` setting live (SPEC §3: within 2 seconds):
  `ConsoleJobs.follow_timezone` reads its one row every FOLLOW_SECONDS, in a thread of its
  own (as an APScheduler job it would log two lines a second), and reschedules the daily run
  when it changed (reports18 B3: the zone read at start stayed until a restart). A stored
  name that makes no zone (a tz directory such as "Europe", a hand-edited value) is UTC, as
  `zone_of` reads an unknown name, with one warning per value stored, not one a second. The two runs never
  overlap (a run that finds the other one going leaves the work to it). The same retention applies to the copies Write to CSV saved
  in logs/ (console.reporting.service.purge_saved_csv) and to the files of the diagnostics
  directory: conversation logs and saved queue files (shared.retention.purge_diagnostics).
- `end_timed_out_sessions` (console.auth.service.end_timed_out, what a logon does first):
  every SESSIONS_CHECK_SECONDS, ends the console sessions idle past `admin.timeout_minutes`
  and writes each one's `logoff` (reason timeout, stamped when it timed out), so the
  reports show it within about a minute of the timeout and not at the next logon
  (fixer19 F3). The sessions are the console app's (console.context), passed to
  `start_jobs`; a session that a request or a logon ends at the same moment gets one
  logoff (console.sessions hands it to one of them).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from console.auth.service import end_timed_out
from console.reporting.service import purge_saved_csv
from console.sessions import Sessions
from shared import db
from shared.clock import WallClock
from shared.events import Action, EventWriter
from shared.paths import DataHome
from shared.report_time import zone_of
from shared.retention import (PurgeResult, cutoff_shown, give_space_back, purge_diagnostics,
                              purge_events)
from shared.settings_store import load, load_one

__all__ = ["ConsoleJobs", "start_jobs", "purge_old_events", "stored_timezone", "schedule_jobs",
           "end_timed_out_sessions", "PURGE_AT", "FIRST_RUN_SECONDS", "PURGE_JOB",
           "FOLLOW_SECONDS", "SESSIONS_JOB", "SESSIONS_CHECK_SECONDS"]

log = logging.getLogger("mailmoat.console.jobs")

PURGE_AT = (2, 30)          # 02:30 local: after the quarantine purge at 01:00 (SPEC §3)
FIRST_RUN_SECONDS = 60
FOLLOW_SECONDS = 1.0        # how often `timezone` is read: a change applies within 2 s (SPEC §3)
PURGE_JOB = "purge_old_events"          # the daily run's job id
SESSIONS_JOB = "end_timed_out_sessions"
SESSIONS_CHECK_SECONDS = 60     # a timed-out session's logoff is written within a minute


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
        conn.close()
        events.record(Action.EVENTS_PURGED, result="failed", rule="logging.retention_days",
                      info=f"the event purge failed: {type(exc).__name__}: {exc}")
        raise
    # after the events are gone, on its own: space that cannot be released, or a file that
    # cannot be deleted, does not make a purge that happened read as failed
    released, not_purged = 0, ""
    try:
        if result.cutoff is not None:
            released = give_space_back(conn)
    except sqlite3.Error as exc:
        not_purged = f"; the freed space not given back to the disk: {exc}"
    finally:
        conn.close()
    if result.cutoff is not None:
        try:
            files = purge_saved_csv(home.logs, result.cutoff)
        except OSError as exc:
            files, not_purged = 0, not_purged + f"; saved report CSVs not purged: {exc}"
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
        if released:
            not_purged = f"; {released / 1e6:.1f} MB of the database given back to the " \
                         "disk" + not_purged
        events.record(Action.EVENTS_PURGED, result="succeeded", rule="logging.retention_days",
                      info=f"{listed} older than {days} days deleted{not_purged}",
                      data={"deleted": result.deleted, "csv_files_deleted": files,
                            "diagnostics_files_deleted": diagnostics,
                            "db_octets_released": released,
                            "cutoff": cutoff_shown(result.cutoff, settings["timezone"]),
                            "batches": result.batches, "seconds": round(result.seconds, 3),
                            "longest_batch_seconds": round(result.longest_batch_seconds, 4)})
    return result


def end_timed_out_sessions(home: DataHome, sessions: Sessions, events: EventWriter,
                           clock: WallClock) -> int:
    """End the console sessions idle past `admin.timeout_minutes` (read now: a change
    applies at the next run) and write their `logoff` events; returns how many ended.
    Idempotent: a session is ended, and its logoff written, once. Raises sqlite3.Error when
    the setting cannot be read (nothing ended: the next run tries again)."""
    conn = db.connect(home.db)
    try:
        minutes = load_one(conn, "admin.timeout_minutes")
    finally:
        conn.close()
    return len(end_timed_out(sessions, events, clock.now(), minutes * 60))


def _daily(zone: zoneinfo.ZoneInfo) -> CronTrigger:
    return CronTrigger(hour=PURGE_AT[0], minute=PURGE_AT[1], timezone=zone)


def stored_timezone(conn: sqlite3.Connection) -> Any:
    """The `timezone` setting as stored, else its default: its one row, where `load` would
    read and decode the whole settings table once a second (review18 D7)."""
    return load_one(conn, "timezone")


def _zone(name: Any) -> zoneinfo.ZoneInfo:
    """`zone_of(name)` (UTC for a name that is no zone: a tz directory such as "Europe", a
    value that is not text), with a warning when it is UTC for such a name."""
    zone = zone_of(name)
    if name and zone.key != name:
        log.warning("the timezone setting %r names no time zone: the daily event purge runs "
                    "in UTC", name)
    return zone


@dataclass
class ConsoleJobs:
    scheduler: BackgroundScheduler
    conn: sqlite3.Connection        # the settings reads of follow_timezone (one at a time)
    zone: zoneinfo.ZoneInfo         # the daily purge's, from `timezone`
    name: Any                       # `timezone` as stored when `zone` was made from it
    purging: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    follower: threading.Thread | None = None

    def follow(self) -> None:
        """Start the thread that runs follow_timezone every FOLLOW_SECONDS until shutdown."""
        def loop() -> None:
            while not self.stopping.wait(FOLLOW_SECONDS):
                try:
                    self.follow_timezone()
                except Exception:       # the next second tries again
                    log.exception("cannot follow the timezone setting")
        self.follower = threading.Thread(target=loop, name="follow-timezone", daemon=True)
        self.follower.start()

    def follow_timezone(self) -> bool:
        """Reschedule the daily purge to PURGE_AT in the zone `timezone` names now, when it
        changed; True when it did. A setting that cannot be read is tried at the next run;
        an unchanged one is not looked up again (so a bad name is warned about once)."""
        try:
            name = stored_timezone(self.conn)
        except sqlite3.Error as exc:    # a busy or damaged database must not stop the jobs
            log.warning("cannot read the timezone setting: %s", exc)
            return False
        if name == self.name:
            return False
        zone = _zone(name)
        if zone.key == self.zone.key:
            self.name = name
            return False
        # reschedule_job: a new trigger, and the next run from it (APScheduler 3 docs)
        job = self.scheduler.reschedule_job(PURGE_JOB, trigger=_daily(zone))
        log.info("timezone %s -> %s: the daily event purge next runs at %s", self.zone.key,
                 zone.key, job.next_run_time)
        self.zone, self.name = zone, name
        return True

    def shutdown(self) -> None:
        self.stopping.set()
        if self.follower is not None:
            self.follower.join()
        self.scheduler.shutdown(wait=False)
        self.conn.close()


def start_jobs(home: DataHome, events: EventWriter, clock: WallClock,
               sessions: Sessions) -> ConsoleJobs:
    """Start the process's scheduler with every job, and the thread that follows `timezone`;
    call once per console process, with the console app's `sessions` (console.context)."""
    jobs = schedule_jobs(home, events, clock, sessions)
    jobs.follow()
    return jobs


def schedule_jobs(home: DataHome, events: EventWriter, clock: WallClock,
                  sessions: Sessions) -> ConsoleJobs:
    """Start the scheduler with every job, without the thread that runs follow_timezone
    (`start_jobs` starts it; a test calls follow_timezone itself). `sessions`: the console
    app's (console.context), whose timed-out sessions SESSIONS_JOB ends."""
    conn = db.connect(home.db)
    try:
        name = stored_timezone(conn)
    except BaseException:
        conn.close()
        raise
    zone = _zone(name)
    # APScheduler writes INFO lines at every start ("Adding job tentatively", "Added job",
    # "Scheduler started") and two for every run ("Running job", "executed successfully"):
    # 2,880 a day with the once-a-minute session job (review19 R2, firstday20 C6). Its
    # warnings (a missed run) and errors still show. The one place it is quieted: before
    # the scheduler is made, for every console (console.serve quiets other libraries).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BackgroundScheduler(timezone=dt.timezone.utc, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600})
    jobs = ConsoleJobs(scheduler, conn, zone, name)

    def purge() -> None:
        if not jobs.purging.acquire(blocking=False):
            return          # the other run (at start, daily) is purging: it does this one's work
        try:
            purge_old_events(home, events, clock)
        except Exception:   # recorded as an event; the scheduler keeps the daily schedule
            log.exception("event purge failed")
        finally:
            jobs.purging.release()

    job_name = "purge events past logging.retention_days"
    scheduler.add_job(purge, _daily(zone), id=PURGE_JOB, name=job_name)
    scheduler.add_job(purge, DateTrigger(dt.datetime.now(dt.timezone.utc)
                                         + dt.timedelta(seconds=FIRST_RUN_SECONDS)),
                      id=PURGE_JOB + "_at_start", name=job_name + " (at start)")

    def end_sessions() -> None:
        try:
            end_timed_out_sessions(home, sessions, events, clock)
        except Exception:   # a busy database: the next run tries again
            log.exception("cannot end the timed-out console sessions")

    scheduler.add_job(end_sessions, IntervalTrigger(seconds=SESSIONS_CHECK_SECONDS),
                      id=SESSIONS_JOB, name="end console sessions idle past admin.timeout_minutes")
    scheduler.start()
    return jobs
