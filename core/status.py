"""Counters since start and the status snapshot the core writes every second (guide Table 7-1).

`Counters` is plain in-memory state touched only from the trio thread; `StatusReporter`
writes it to SQLite once a second through a worker thread so the event loop never waits on
SQLite. A second whose write meets a full disk or a database locked past the busy timeout
(shared/busy.py) is skipped: the next one writes the counters then, and the Status page
shows the core as not running meanwhile.

`ClamdHealth` is the snapshot's `clamd`: whether clamd answers, from the scans' own
exchanges (core/scan/clamd.py rule 6), as a hook of the FilteringPipeline that reads each
outcome; it never asks clamd anything itself. It is None while the settings scan without
clamd (av.enabled off, av.engine builtin), else {"address", "answering": True | False |
None (not asked yet at this address since the core started), "since": when the first
exchange with the current answer ended (wall-clock time), "problem": why it does not answer
("" when it does)}. The Status page turns it into its Virus scanning row (guide45 finding 3).
Outcomes arrive in the order the workers finish, not the order they asked clamd, so each
exchange carries its own time and one older than the latest already counted is ignored: a
message scanned before clamd came back must not turn the row back to "not answering" after
a later one found it answering (review14 B6).
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Mapping

import trio

from shared import db
from shared.busy import BusyNotice, is_busy
from shared.clock import WallClock
from shared.disk import is_out_of_space
from shared.home import gateway_name
from shared.ports import may_bind_privileged_ports
from shared.status import COUNTERS, new_snapshot, write_snapshot

__all__ = ["Counters", "ClamdHealth", "StatusReporter", "SNAPSHOT_INTERVAL_SECONDS"]

SNAPSHOT_INTERVAL_SECONDS = 1.0


class Counters:
    def __init__(self) -> None:
        self.values = {name: 0 for name in COUNTERS}

    def incr(self, name: str, amount: int = 1) -> None:
        if name not in self.values:
            raise KeyError(f"unknown counter {name!r}")  # a bug: names live in shared.status
        self.values[name] += amount

    def as_dict(self) -> dict[str, int]:
        return dict(self.values)


class ClamdHealth:
    """Whether clamd answers (module header); touched only from the trio thread."""

    def __init__(self) -> None:
        self.last: dict | None = None       # the snapshot's `clamd`, for the address asked
        self.last_at: float | None = None   # when the latest exchange counted ended

    def worker_settings(self) -> dict:
        return {}

    async def after_scan(self, envelope, outcome, message_path, settings) -> None:
        contact = outcome.clamd
        if contact is None:                 # clamd not asked about this message
            return
        if self.last_at is not None and contact.at < self.last_at:
            return                          # overtaken by a later exchange (module header)
        self.last_at = contact.at
        last = self.last
        if last is None or last["address"] != contact.address or \
                last["answering"] != contact.answered:
            self.last = {"address": contact.address, "answering": contact.answered,
                         "since": contact.at, "problem": contact.problem}
        else:
            last["problem"] = contact.problem          # the latest words for the same state

    def status(self, settings: Mapping) -> dict | None:
        if not settings["av.enabled"] or settings["av.engine"] not in ("clamd", "both"):
            return None
        address = settings["av.clamd.address"]
        if self.last is None or self.last["address"] != address:
            return {"address": address, "answering": None, "since": None, "problem": ""}
        return dict(self.last)


class StatusReporter:
    def __init__(self, db_path, counters: Counters, clock: WallClock,
                 settings: Callable[[], Mapping], queue_sizes: Callable[[], dict],
                 version: str, improper_shutdown: bool,
                 not_listening: Callable[[], list[dict]] = list,
                 attempts: Callable[[], dict[str, int]] = dict):
        """`not_listening()`: the addresses of smtp.listen the SMTP listener leaves out
        (core/smtp/listeners.py Listeners.not_listening); `attempts()`: the delivery
        attempts in progress, queue id -> since (QueueManager.attempts_in_progress)."""
        self.db_path = db_path
        self.counters = counters
        self.clock = clock
        self.settings = settings
        self.queue_sizes = queue_sizes
        self.version = version
        self.improper_shutdown = improper_shutdown
        self.not_listening = not_listening
        self.attempts = attempts
        self.started_at = clock.now()
        # what `config set` and the console ask before they move a listener below 1024
        # (shared.ports); a process's rights do not change while it runs
        self.may_bind_privileged_ports = may_bind_privileged_ports()
        self.clamd = ClamdHealth()          # a pipeline hook (core/app.py)
        self.extra: dict = {}
        self.busy = BusyNotice("writing the status snapshot")

    def snapshot(self) -> dict:
        s = self.settings()
        central = s["av.central_quarantine"]
        return new_snapshot(
            version=self.version,
            hostname=gateway_name(s),           # the banner's name (shared.home)
            smtp_port=s["smtp.port"],
            smtp_not_listening=self.not_listening(),
            started_at=self.started_at,
            improper_shutdown=self.improper_shutdown,
            delivery_mode="pause" if s["delivery.paused"] else "delivery",
            incoming="reject" if s["delivery.reject_incoming"] else "accept",
            virus_scanning=bool(s["av.enabled"]),
            clamd=self.clamd.status(s),
            central_quarantine=("disabled" if not central else
                                {"all": "all files", "unrepaired": "unrepairable files"}.get(
                                    s["av.quarantine"], "disabled")),
            counters=self.counters.as_dict(),
            queues=self.queue_sizes(),
            attempts=self.attempts(),
            may_bind_privileged_ports=self.may_bind_privileged_ports,
            **self.extra,
        )

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        conn = await trio.to_thread.run_sync(db.connect, self.db_path)
        try:
            await self._write(conn)
            task_status.started()
            while True:
                await trio.sleep(SNAPSHOT_INTERVAL_SECONDS)
                await self._write(conn)
        finally:
            with trio.CancelScope(shield=True):
                await self._write(conn)
                await trio.to_thread.run_sync(conn.close)

    async def _write(self, conn) -> None:
        snap, now = self.snapshot(), self.clock.now()
        try:
            await trio.to_thread.run_sync(write_snapshot, conn, snap, now)
        except sqlite3.Error as exc:
            if is_busy(exc):
                # Locked past the busy timeout by another program: the next second's
                # snapshot tries again (module header), never a stop of the core.
                self.busy.locked(exc)
                return
            if not is_out_of_space(exc):
                raise
            # A full disk: the next second's snapshot tries again; the Status page shows
            # the core as not running meanwhile, and the low_disk alert says why.
            return
        self.busy.done()
