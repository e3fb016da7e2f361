"""The antivirus service in the core (SPEC §3 Antivirus, §5 step 4; guide §4): everything
antivirus does around a scan, on the trio side, as a hook of the FilteringPipeline.

What it owns
    Definitions watcher   reads `definitions/virus/current` (and spam) every
                          WATCH_SECONDS and loads a changed set with the core's loader
                          (shared/definitions.py `in_force`); a set that loads becomes the
                          one workers scan with from the next message on
                          (core/scan/engines.py); one that does not leaves the shipped set
                          in force. Either way it writes definitions_updated (result
                          "failed" with the problem when the installed set cannot be used)
                          and puts what is really in force, and the problem, into the
                          status snapshot's `definitions`. No restart; a message in flight
                          finishes with the engine it started with (version directories are
                          immutable).
    worker_settings()     what the pipeline adds to the settings copy a worker gets: the
                          virus definitions directory in force, and the installed spam
                          definitions directory when that is in force (the heuristic engine
                          uses its packaged set otherwise).
    after_scan(...)       after each scan, before the rewritten message replaces the
                          original: Status counters (infections repaired/deleted/logged,
                          mass mailers deleted); a copy of the ORIGINAL message into the
                          virus quarantine (av.quarantine all | unrepaired: the guide's
                          "What to quarantine"), its `quarantined` event naming the
                          viruses and the infected files (guide Table 7-8), marked for the
                          central quarantine when
                          av.central_quarantine is set (one copy per message, listing
                          every virus found); outbreak
                          counting (outbreak.count infected messages within outbreak.minutes
                          -> outbreak event + alert mail to outbreak.emails and its
                          alert_sent; with none, the event only — the Outbreak Alert tab
                          says so), see rule 6.
    Central forwarder     core/scan/central_forwarder.py, run in this service's nursery:
                          delivers marked copies to av.central_quarantine (host, port) with
                          the core's deliverer: a copy goes at once, is retried with backoff
                          while the host answers 4xx or cannot be reached, and ends at the
                          host's 5xx or after delivery.retry_days (the local copy stays
                          either way), until an administrator has it sent again (its
                          `resend_command`, registered by core/app.py); rules 5, 9.
    claim(...)            the pipeline asks before each scan: a central quarantine copy
                          from a gateway that shares this installation's key is filed in the
                          virus quarantine instead of being scanned and delivered (rule 7).
    Retention             at start and every RETENTION_PASS_SECONDS, deletes the copies
                          quarantined more than `logging.retention_days` ago (0 = keep for
                          ever) and says how many in an `events_purged` event, as the
                          console's event purge does (console/jobs.py; the console cannot
                          do it, rule 3).
    delete_command(...)   the Command.VIRUS_QUARANTINE_DELETE command: deletes the copies an
                          administrator selected on Antivirus Policy › Virus Quarantine.

Rules
    1. The virus quarantine holds copies; the message itself is handled by the findings'
       verdict (SPEC §3 av.quarantine). A copy is one spool entry in quarantine/virus,
       written through shared/spool.Spool.copy_to (durable, atomic).
    2. Nothing here blocks the event loop: file work goes through trio.to_thread.
    3. This service (with its central forwarder) is the only writer of quarantine/virus
       (ARCHITECTURE invariant 4: the console reads it and asks for deletions as commands),
       so a copy that vanishes while it is being sent to the central quarantine was
       deleted here, on purpose. (A received copy is moved in by the queue manager at the
       disposition this service chose, rule 7: an entry added, none changed or removed.)
    4. No copy is kept while the spool's file system is low (shared/disk.py
       LOW_DISK_FRACTION, as the console's saved CSV reports): copies must not take the
       space SMTP needs to accept mail at all (452 under 5 % free, SPEC §3 size). A `quarantined`
       event with result "skipped_low_disk" (shared/events.py COPY_NOT_KEPT) says which copy
       was not kept.
    5. A copy's sending to the central quarantine ends as mail's does (SPEC §4):
       core/scan/central_forwarder.py rule 1.
    6. One outbreak per outbreak.minutes: after an outbreak event (and its mail) the next
       comes only once that many minutes have passed (as the setting is now: shortening it
       shortens the pause that is running), when the infected messages of the
       last outbreak.minutes reach outbreak.count again; its count says how many there
       were, the ones that came meanwhile included. A worm's 10,000 messages are one alert
       an hour, not one per outbreak.count of them.
    7. A received copy is filed only when core/scan/central.py `verified_copy` says so
       (null sender, whole block, signature good under this installation's key); it goes to
       the virus quarantine through the pipeline's "quarantine" disposition (the queue
       manager moves it, writes `quarantined` and counts it), with the original envelope
       and the block's facts in its envelope, and is never sent on to a central quarantine
       of this one's. Anything else is ordinary mail.
    8. The Status page's Quarantined counts every copy kept (guide Table 7-1), as the
       summary's Messages Quarantined counts their `quarantined` events; a copy not kept
       (rule 4) counts in neither.
    9. The signed copy as sent is written to the data home's tmp/ for each attempt and
       removed when it ends: core/scan/central_forwarder.py rule 2.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from core.control import CommandRefused
from core.pipeline import PipelineResult
from core.scan import central as wire
from core.scan.antispam import definitions as spam_definitions
from core.scan.central_forwarder import (CENTRAL_RETRY_SECONDS, VIRUS_QUEUE, CentralForwarder,
                                         central_mark, quarantined_at)
from core.scan.engines import RUNTIME_DEFINITIONS
from shared import definitions as defs
from shared.disk import LOW_DISK_FRACTION
from shared.events import COPY_NOT_KEPT, FAILED, SUCCEEDED, Action
from shared.retention import cutoff_for, cutoff_shown
from shared.shown_text import visible_bidi
from shared.spool import EnvelopeError, Recipient, new_queue_id

__all__ = ["AntivirusService", "COUNTER_OF", "VIRUS_QUEUE",
           "RETENTION_PASS_SECONDS"]

WATCH_SECONDS = 0.5
# A copy outlives the retention by at most this much; an hourly pass of a folder the
# retention bounds costs little, and writes at most 24 purge events a day.
RETENTION_PASS_SECONDS = 3600.0
# The Status counters each infection finding adds to. A mass-mailer cleanup deletes the
# infected file with its message: an infection deleted (guide Table 7-1 "files that had
# viruses deleted", Table 7-4 the same), as the summary report counts it
# (shared.report.INFECTION_ITEMS), and a message in "Mass mailers deleted" besides. It was
# only the latter, so the two pages disagreed after a cleanup (events finding C7).
COUNTER_OF = {"file_repaired": ("infections_repaired",),
              "file_deleted": ("infections_deleted",),
              "virus_logged": ("infections_logged",),
              "mass_mailer_cleanup": ("infections_deleted", "mass_mailers_deleted")}


class AntivirusService:
    def __init__(self, home, events, counters, settings: Callable[[], Mapping], spool, *,
                 submit: Callable | None = None, deliverer=None,
                 hostname: Callable[[], str] = lambda: "localhost",
                 status_extra: dict | None = None, clock=time.time,
                 central_tick_seconds: float = CENTRAL_RETRY_SECONDS):
        """`clock`: wall-clock unix seconds, a callable (copies' times and schedules);
        `deliverer` and `central_tick_seconds`: the central forwarder's (CentralForwarder
        `deliverer` and `tick_seconds`)."""
        self.home = home
        self.events = events
        self.counters = counters
        self.settings = settings
        self.spool = spool
        self.submit = submit
        self.hostname = hostname
        self.status_extra = status_extra if status_extra is not None else {}
        self.clock = clock
        self.current: dict[str, defs.Definitions | None] = {"virus": None, "spam": None}
        # why the installed current set is not the one in self.current ("" when it is)
        self.problems: dict[str, str] = {"virus": "", "spam": ""}
        self.infected_times: collections.deque[float] = collections.deque()
        self.outbreak_at = -math.inf        # clock time of the last outbreak (rule 6)
        self.outbreaks = 0
        self.quarantined = 0
        self.central = CentralForwarder(home, events, counters, settings, spool,
                                        deliverer=deliverer, hostname=hostname, clock=clock,
                                        tick_seconds=central_tick_seconds)
        self.refresh()

    # --- definitions ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Look at the installed definitions; True when the virus set in force changed.
        Only a set the loader accepts is put in force or reported (shared/definitions.py
        rule 5): the snapshot and the events name what the workers really use."""
        changed = False
        for kind in defs.TYPES:
            now, problem = defs.in_force(self.home.definitions, kind)
            before, known = self.current.get(kind), self.problems.get(kind, "")
            self.current[kind], self.problems[kind] = now, problem
            if now != before and before is not None:
                changed = changed or kind == "virus"
            if problem and problem != known:
                self.events.record(Action.DEFINITIONS_UPDATED, result=FAILED,
                                   rule=f"definitions.{kind}",
                                   info=f"{kind} definitions: {problem}; "
                                        f"{_in_use(now)} in use"
                                        + (f" (was {before.label})" if before and now != before
                                           else ""),
                                   data={"type": kind, "problem": problem,
                                         **(now.as_status() if now else {})})
            elif now != before and before is not None and now is not None:
                self.events.record(Action.DEFINITIONS_UPDATED, result=SUCCEEDED,
                                   rule=f"definitions.{kind}",
                                   info=f"{kind} definitions {now.label} in use "
                                        f"(was {before.label})",
                                   data={"type": kind, "version": now.version,
                                         "revision": now.revision, "source": now.source})
        self.status_extra["definitions"] = {
            kind: self._status_of(kind) for kind in self.current}
        return changed

    def _status_of(self, kind: str) -> dict | None:
        """The snapshot's `definitions.<kind>`: what is in force, the installed previous
        version and the problem, as shared/definitions.py `describe` reads them (the CLI's
        `definitions status` prints the same facts)."""
        value, problem = self.current.get(kind), self.problems.get(kind, "")
        if value is None and not problem:
            return None
        out = (value.as_status() | {"date": value.version} if value
               else {"version": None, "revision": None, "source": None})
        try:
            previous = defs.previous_facts(self.home.definitions, kind)
        except OSError:
            previous = {}
        return out | previous | ({"problem": problem} if problem else {})

    def worker_settings(self) -> dict:
        out = {}
        virus, spam = self.current.get("virus"), self.current.get("spam")
        if virus:
            out[RUNTIME_DEFINITIONS] = str(virus.path)
        if spam and spam.source == "installed":
            out[spam_definitions.RUNTIME_DIR] = str(spam.path)
        return out

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.central.run)
            nursery.start_soon(self._watch)
            nursery.start_soon(self._retention_loop)
            task_status.started()

    async def _watch(self) -> None:
        while True:
            await trio.sleep(WATCH_SECONDS)
            await trio.to_thread.run_sync(self.refresh)

    # --- after each scan --------------------------------------------------------------------
    async def after_scan(self, envelope, outcome, message_path: Path, settings: Mapping) -> None:
        infected = [f for f in outcome.findings if f.data.get("virus") and f.event]
        if not infected:
            return
        for finding in infected:
            for name in COUNTER_OF.get(finding.event, ()):
                if self.counters is not None:
                    self.counters.incr(name)
        mode = settings["av.quarantine"]
        unrepaired = any(not f.data.get("repaired") for f in infected)
        central = settings["av.central_quarantine"]
        if mode == "all" or (mode == "unrepaired" and unrepaired):   # guide: "What to quarantine"
            await self._quarantine(envelope, infected, settings, central)
        await self._count_outbreak(envelope, infected, settings)

    async def _quarantine(self, envelope, infected, settings, central) -> None:
        names = sorted({f.data["virus"] for f in infected})
        files = sorted({str(f.data.get("file")) for f in infected})[:wire.FILES_MAX]
        found = f"{', '.join(names)}; {_files_text(files)}"
        message = envelope.event_fields()
        free = await trio.to_thread.run_sync(self.spool.disk_free_fraction)
        if free < LOW_DISK_FRACTION:                                    # rule 4
            self.events.record(Action.QUARANTINED, rule="av.quarantine",
                               result=COPY_NOT_KEPT,
                               info=f"no copy kept in the virus quarantine ({found})"
                                    f": the spool's file system has {free:.1%} free, under "
                                    f"{LOW_DISK_FRACTION:.0%}",
                               data={"folder": "virus", "virus": names[0],
                                     "disk_free": round(free, 4)}, **message)
            return
        copy = envelope.copy()
        copy.meta = {**copy.meta, "kind": "virus_quarantine", "virus": names,
                     "original_queue_id": envelope.queue_id,
                     "actions": sorted({f.action for f in infected}),
                     "files": files,
                     "quarantined_at": self.clock()}
        if central:
            copy.meta["central"] = central_mark(central)
        new_id = new_queue_id()
        await trio.to_thread.run_sync(self.spool.copy_to, envelope.queue_id, "fast",
                                      VIRUS_QUEUE, new_id, copy)
        self.quarantined += 1
        if self.counters is not None:                                   # rule 8
            self.counters.incr("quarantined")
        self.events.record(Action.QUARANTINED, rule="av.quarantine", result="quarantined",
                           info=f"copy kept in the virus quarantine ({found})",
                           data={"folder": "virus", "copy_id": new_id, "virus": names[0],
                                 "central": bool(central)}, **message)
        if central:
            self.central.copy_kept(new_id, copy)

    async def _count_outbreak(self, envelope, infected, settings) -> None:
        now = self.clock()
        window = settings["outbreak.minutes"] * 60
        self.infected_times.append(now)
        while self.infected_times and self.infected_times[0] <= now - window:
            self.infected_times.popleft()
        if not settings["outbreak.enabled"] or len(self.infected_times) < settings["outbreak.count"]:
            return
        if now < self.outbreak_at + window:     # rule 6: the window as it is set now
            return
        self.outbreak_at = now
        count = len(self.infected_times)
        self.outbreaks += 1
        names = sorted({f.data["virus"] for f in infected})
        self.events.record(Action.OUTBREAK, rule="outbreak.count", result="alert",
                           info=f"{count} infected messages within {settings['outbreak.minutes']}"
                                f" minutes (latest: {', '.join(names)})",
                           data={"count": count, "minutes": settings["outbreak.minutes"],
                                 "virus": names[0]})
        recipients = list(settings["outbreak.emails"])   # guide: required on the Outbreak tab
        if not recipients or self.submit is None:
            return
        from core.notify import compose_mail, fill_metatags
        tags = {"COUNT": str(count), "MINUTES": str(settings["outbreak.minutes"]),
                "VIRUSINFO": "Virus scan results follow\n" + "\n".join(
                    visible_bidi(f.reason) for f in infected)}
        subject = fill_metatags(settings["outbreak.subject"], tags)
        body = fill_metatags(settings["outbreak.body"], tags)
        message = compose_mail(settings, self.hostname(), recipients, subject, body, "alert")
        queue_id = await self.submit("", recipients, message, kind="alert")
        self.events.record(Action.ALERT_SENT, rule="outbreak.enabled", info=subject,
                           recipients=recipients, queue_id=queue_id,
                           data={"alert": "outbreak", "events": 1, "generated": True})

    # --- received copies (rule 7) -----------------------------------------------------------
    async def claim(self, envelope, message_path: Path, settings: Mapping
                    ) -> PipelineResult | None:
        """The pipeline's question before a scan (core/pipeline/service.py): is this a
        central quarantine copy to file rather than scan? Then the envelope is made the
        original's, with what the copy says in its meta, and the result files it in the
        virus quarantine; else None."""
        if envelope.sender or envelope.is_generated or not settings["quarantine.reinsertion_key"]:
            return None                 # every bounce is null-sender: no file read for them
        facts = await trio.to_thread.run_sync(
            wire.verified_copy, message_path, envelope.sender,
            settings["quarantine.reinsertion_key"])
        if facts is None:
            return None
        received_as = {"sender": envelope.sender,
                       "recipients": [r.address for r in envelope.recipients],
                       "client_ip": envelope.client_ip}
        envelope.meta = {**envelope.meta, "kind": "virus_quarantine",
                         "virus": list(facts.viruses), "files": list(facts.files),
                         "actions": list(facts.actions), "original_queue_id": facts.queue_id,
                         "quarantined_at": self.clock(),
                         "received": {"gateway": facts.gateway, "date": facts.date,
                                      **received_as}}
        envelope.sender = facts.sender
        if facts.recipients:
            envelope.recipients = [Recipient(address) for address in facts.recipients]
        viruses = ", ".join(facts.viruses) or "no virus named"
        return PipelineResult(
            "quarantine", quarantine="virus", rule="quarantine.reinsertion_key",
            reason=f"central quarantine copy of {facts.queue_id} from {facts.gateway} "
                   f"({viruses}), signed with the shared key: filed in the virus "
                   f"quarantine, not scanned")

    # --- retention and deletion (rule 3) -----------------------------------------------------
    async def _retention_loop(self) -> None:
        while True:
            await self.purge_expired()
            await trio.sleep(RETENTION_PASS_SECONDS)

    async def purge_expired(self) -> int:
        """Delete the copies quarantined more than `logging.retention_days` ago; returns how
        many. An `events_purged` event says how many, when there were any, and which could
        not be deleted; a copy that cannot be deleted does not stop the others."""
        settings = self.settings()
        days = settings["logging.retention_days"]
        cutoff = cutoff_for(self.clock(), days)
        if cutoff is None:
            return 0
        deleted, problem = await trio.to_thread.run_sync(self._delete_older, cutoff)
        if deleted or problem:
            copies = f"{deleted} virus quarantine cop{'y' if deleted == 1 else 'ies'}"
            self.events.record(Action.EVENTS_PURGED, result="succeeded",
                               rule="logging.retention_days",
                               info=f"{copies} older than {days} days deleted"
                                    + (f"; not deleted: {problem}" if problem else ""),
                               data={"virus_quarantine_deleted": deleted,
                                     "cutoff": cutoff_shown(cutoff, settings["timezone"])})
        return deleted

    def _delete_older(self, cutoff: float) -> tuple[int, str]:
        """(copies deleted, the first error met or "")."""
        try:
            queue_ids = list(self.spool.list(VIRUS_QUEUE))
        except OSError as exc:
            return 0, f"{VIRUS_QUEUE}: {exc.strerror or exc}"
        deleted, problem = 0, ""
        for queue_id in queue_ids:
            try:
                envelope = self.spool.read_envelope(VIRUS_QUEUE, queue_id)
                if quarantined_at(envelope) < cutoff:
                    self.spool.delete(VIRUS_QUEUE, queue_id)
                    deleted += 1
            except FileNotFoundError:   # deleted meanwhile by an administrator
                continue
            except EnvelopeError:       # the next start's recovery moves it to corrupt/
                continue
            except OSError as exc:
                problem = problem or f"{queue_id}: {exc.strerror or exc}"
        return deleted, problem

    async def delete_command(self, args: dict) -> str:
        """The Command.VIRUS_QUARANTINE_DELETE command, {"ids": [...]}: delete these copies.
        Says which were not in the virus quarantine (deleted meanwhile); CommandRefused when
        none was."""
        ids = [i for i in args.get("ids") or () if isinstance(i, str)]
        deleted, missing = await trio.to_thread.run_sync(self._delete_ids, ids)
        if missing and not deleted:
            raise CommandRefused("not in the virus quarantine: " + ", ".join(missing))
        return (f"{deleted} virus quarantine cop{'y' if deleted == 1 else 'ies'} deleted"
                + ("; not in the virus quarantine: " + ", ".join(missing) if missing else ""))

    def _delete_ids(self, ids: list[str]) -> tuple[int, list[str]]:
        deleted, missing = 0, []
        for queue_id in ids:
            try:
                self.spool.delete(VIRUS_QUEUE, queue_id)
                deleted += 1
            except (FileNotFoundError, ValueError):     # ValueError: not a queue id at all
                missing.append(queue_id)
        return deleted, missing


def _files_text(files: list[str]) -> str:
    """The infected files for an event's info: at most as long as a value of a copy's
    block (core/scan/central.py), the count of them when they do not fit."""
    text = ("file: " if len(files) == 1 else "files: ") + ", ".join(files)
    if len(text) <= wire.VALUE_MAX_CHARS:
        return text
    tail = f"… ({len(files)} files)"
    return text[:wire.VALUE_MAX_CHARS - len(tail)] + tail


def _in_use(value: defs.Definitions | None) -> str:
    if value is None:
        return "no set"
    return value.label + (" (shipped)" if value.source == "package" else "")


def virus_quarantine_entries(spool) -> list[tuple[str, object]]:
    """(queue id, envelope) of every virus quarantine copy, newest first (console uses
    shared/spool directly; this is for the core and tests)."""
    out = []
    for queue_id in spool.list(VIRUS_QUEUE):
        try:
            out.append((queue_id, spool.read_envelope(VIRUS_QUEUE, queue_id)))
        except Exception:
            continue
    return sorted(out, key=lambda item: item[0], reverse=True)

