"""The core's main: one root nursery with the listener, queue manager, writers and pollers.

Start order (each service reports ready through `task_status.started()`):
settings watcher → spool recovery → group committer → queue manager → SMTP listener →
status reporter → command runner (the recovery of slow/ and hold/ entries, one by one, is
the queue manager's after it reported ready: core/spool/manager.py rule 15); then
`service_started`, stamped with the status reporter's start (the Status page's "Last
started", before SMTP answers). A clean stop (cancellation of the root scope, e.g.
SIGTERM) closes the listener, lets a session whose message is queued send its 250
(SmtpServer.serve), writes `service_stopped`, mails the alerts of the events until then
(Service Stop) while the delivery side still runs — it is
shielded from the stop until then (`_ShieldedServices`, at most STOP_ALERT_SECONDS) — and
closes the event writer: on a full disk it writes what it holds into the space reserve as
far as the next start allows, and says on standard error how many events were lost
(shared/events.py, shared/home.py `room_for_events_at_close`).

Improper shutdown: a marker file in `run/` exists while the core runs; finding it at start
means the previous run did not stop cleanly (kill -9, power cut) → `service_start_improper`.

Events are written in batches (shared/events.py), so a kill -9 or a power cut loses those of
its last moments. At start, every message in fast/, slow/ or hold/ without an `accepted`
event gets one, stamped with its reception and marked `recovered` in its data: the reports
count every message the spool holds. Which have none is looked up before SMTP answers
(`_unrecorded`); the fast/ ones' envelopes are read then (`_recover_accepted`), the slow/
and hold/ ones' as the queue manager reads them after SMTP answers, once each
(`_recover_accepted_when_read`; review22b R4: every bounce waiting in slow/ was read
before the 220). Other lost events (delivered, completed, …) cannot be told from the spool
and stay lost (docs/operations.md).

One core per data home: the core holds an flock on `run/core.lock` for its lifetime, taken
before it touches the spool or the marker (shared.home.hold_lock; `mailmoat run` holds
`run/run.lock` the same way). A second core raises CoreAlreadyRunning. No child is forked
without exec, so no child keeps the lock.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import trio

from core.control import CommandRefused, CommandRunner, SettingsWatcher
from core.spool import files
from core.smtp.listeners import ListenerPool, Listeners
from core.delivery.routing import host_port
from core.smtp.group_commit import GroupCommitter
from core.smtp.listen_sockets import ListenFailed
from core.smtp.policy import refused_entry_notice, refused_local_entries
from core.smtp.server import SmtpServer
from core.smtp.tls import TlsFiles
from core.status import Counters, StatusReporter
from shared import db
from shared.clock import SYSTEM_CLOCK, WallClock
from shared.commands import Command
from shared.disk import is_out_of_space
from shared.events import Action, Event, EventWriter
from shared.home import (CORE_LOCK, AlreadyRunning, gateway_name, hold_lock, hostname_notice,
                         room_for_events_at_close)
from shared.paths import DataHome
from shared.retention import cutoff_for, local_storage_filter
from shared.settings import OPEN_RELAY_WARNING
from shared.spool import MESSAGE_QUEUES, Envelope, EnvelopeError, Spool

__all__ = ["run_core", "CoreHandle", "CoreAlreadyRunning", "VERSION"]

try:
    from importlib.metadata import version as _version
    VERSION = _version("mailmoat")
except Exception:  # running from a tree that is not installed
    VERSION = "0.0.0"


CoreAlreadyRunning = AlreadyRunning     # another core holds run/core.lock


STOP_ALERT_SECONDS = 15.0   # a clean stop waits this long at most for its alert's delivery
LOOKUP_IDS = 500            # queue ids per query for their accepted events (_unrecorded)


@dataclass
class CoreHandle:
    """What a started core exposes to its caller (tests and the CLI)."""

    smtp_addresses: list
    server: SmtpServer               # the in-process listener (smtp.listener_processes = 1)
    queue: object
    counters: Counters
    events: EventWriter
    settings: SettingsWatcher
    cancel_scope: trio.CancelScope

    @property
    def listening(self) -> str:
        """Where SMTP listens, as the start line and the service_started event say it."""
        return _listening(self.smtp_addresses)


def _listening(addresses) -> str:
    # the listener's own way of writing an address: an IPv6 one in brackets ([::1]:25)
    return ", ".join(host_port(host, port) for host, port in addresses)


async def run_core(home: DataHome, *, clock: WallClock = SYSTEM_CLOCK,
                   pipeline_options: dict | None = None,
                   task_status=trio.TASK_STATUS_IGNORED) -> None:
    """`pipeline_options`: FilteringPipeline keywords (tests: timeout_seconds, fault).
    Raises CoreAlreadyRunning, or ListenFailed when SMTP cannot listen, before it is ready."""
    conn = db.connect(home.db)
    try:
        db.check_schema(conn)
    finally:
        conn.close()
    home.create()
    lock = hold_lock(home, *CORE_LOCK)
    try:
        await _run_locked(home, clock, pipeline_options, task_status)
    finally:
        os.close(lock)


async def _run_locked(home: DataHome, clock: WallClock, pipeline_options: dict | None,
                      task_status) -> None:
    from core.delivery import Deliverer, Resolver
    from core.notify import AlertServices, first_start_cursor
    from core.pipeline.service import FilteringPipeline
    from core.scan.antispam.autowhitelist import AutoWhitelist, AutoWhitelistPipeline
    from core.scan.service import AntivirusService
    from core.spool import QueueManager
    from core.spool.manager import CHECKED_AFTER_START, record_copies, record_set_aside
    from core.spool.queue_file_save import QueueFileSave

    marker = home.run / "core.running"
    improper = marker.exists()
    try:
        marker.write_text(str(os.getpid()))
    except OSError as exc:
        if not is_out_of_space(exc):
            raise
        # Start anyway: delivering the spool is what frees the disk (an empty marker
        # still tells the next start about an improper end).

    settings = SettingsWatcher(home.db)
    # logging.local off: store only what other parts read (shared.retention)
    # A stop on a full disk writes what it holds into the space reserve, as far as it may
    # (shared.home): its service_stopped among them.
    events = EventWriter(home.db, "core", clock, keep=local_storage_filter(settings),
                         room_at_close=room_for_events_at_close(home))
    counters = Counters()
    spool = Spool(home.spool)
    hostname: Callable[[], str] = lambda: gateway_name(settings())
    clean = started = False
    try:
        # before this start writes any: what its recovery finds is alerted on a first start
        alerts_from = await trio.to_thread.run_sync(first_start_cursor, home.db, home.run)
        report = await trio.to_thread.run_sync(functools.partial(
            spool.recover, checked=[q for q in MESSAGE_QUEUES if q not in CHECKED_AFTER_START]))
        for queue, name, reason in report.corrupt:
            record_set_aside(events, queue, name, reason)
        for queue_id, kept, done in report.copies:
            record_copies(events, queue_id, kept, done)
        cutoff = cutoff_for(clock.now(), settings()["logging.retention_days"])
        unrecorded = await trio.to_thread.run_sync(_unrecorded, home, report.found)
        for event in await trio.to_thread.run_sync(
                _recover_accepted, spool, unrecorded.pop("fast"), cutoff):
            events.emit(event)
        resolver = Resolver(settings)
        deliverer = Deliverer(settings=settings, events=events, clock=clock,
                              resolver=resolver, hostname=hostname,
                              diagnostics_dir=home.diagnostics)
        temp_dir = settings()["scan.temp_dir"]          # read at start only (_scratch_dir)
        scratch, fell_back = _scratch_dir(home, temp_dir, events)
        pipeline = FilteringPipeline(events, counters, scratch_dir=scratch,
                                     **(pipeline_options or {}))
        auto_whitelist = AutoWhitelist(home.db, settings, clock)
        queue_files = QueueFileSave(home.diagnostics, spool, events)
        await trio.to_thread.run_sync(queue_files.recover)
        queue = QueueManager(spool=spool, settings=settings, events=events, counters=counters,
                             clock=clock, pipeline=AutoWhitelistPipeline(pipeline, auto_whitelist),
                             deliverer=deliverer, queue_files=queue_files)
        # the slow/ and hold/ ones as the queue manager reads them, after SMTP answers
        queue.load_hooks.append(_recover_accepted_when_read(
            events, {queue_id for ids in unrecorded.values() for queue_id in ids}, cutoff))
        alerts = AlertServices(home, settings, events, queue, hostname, pipeline, scratch,
                               first_cursor=alerts_from)
        committer = GroupCommitter(spool)
        # looked at once a second, sessions or not (core/smtp/tls.py), while the listener
        # processes serve too: the one the in-process server uses is then current
        tls = TlsFiles(home, events)
        server = SmtpServer(settings=settings, spool=spool, committer=committer,
                            events=events, counters=counters, clock=clock,
                            on_accepted=lambda queue_id, envelope, _json:
                            queue.message_accepted(queue_id, envelope),
                            ssl_context=tls,
                            diagnostics_dir=home.diagnostics, resolver=resolver,
                            hostname=hostname, auto_whitelisted=auto_whitelist.contains,
                            reuse_port=True,    # beside listener processes (Listeners)
                            # SMTP's refusals for space: a low_disk look at once (notify.py)
                            on_space_refused=alerts.monitor.check_soon)
        settings.on_change(server.settings_changed)
        listeners = Listeners(settings, server, lambda count, sessions_file: ListenerPool(
            home, count, on_accepted=queue.message_accepted, on_ended=queue.rescan,
            counters=counters, events=events, sessions_file=sessions_file,
            on_space_refused=alerts.monitor.check_soon), events)
        status = StatusReporter(home.db, counters, clock, settings, queue.queue_sizes,
                                VERSION, improper, not_listening=listeners.not_listening,
                                attempts=queue.attempts_in_progress)
        antivirus = AntivirusService(home, events, counters, settings, spool,
                                     submit=queue.submit_generated, deliverer=deliverer,
                                     hostname=hostname, status_extra=status.extra)
        pipeline.hooks.append(antivirus)
        pipeline.hooks.append(queue_files)      # a scan error finding keeps on_error copies
        pipeline.hooks.append(status.clamd)     # whether clamd answers, for the snapshot
        queue.delivery_hooks.append(auto_whitelist.note_delivered)
        # what the Setup page compares with the stored value (a change waits for a restart)
        status.extra["scan_temp_dir"] = {"read_at_start": temp_dir or "", "in_use": str(scratch),
                                         "fell_back": fell_back}
        status.extra["auto_whitelist_entries"] = 0
        auto_whitelist.on_change = lambda n: status.extra.__setitem__("auto_whitelist_entries", n)
        commands = CommandRunner(home.db, settings)
        _register_commands(commands, queue)
        commands.register(Command.WHITELIST_AUTO_DELETE, auto_whitelist.delete_command)
        commands.register(Command.VIRUS_QUARANTINE_DELETE, antivirus.delete_command)
        commands.register(Command.VIRUS_QUARANTINE_CENTRAL_RESEND,
                          antivirus.central.resend_command)

        delivery_side = _ShieldedServices((settings.run, committer.run, auto_whitelist.run,
                                           antivirus.run, pipeline.run, queue.run, alerts.run))
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery_side.run)
            await nursery.start(tls.watch)
            try:
                try:
                    addresses = await nursery.start(listeners.run)
                except* ListenFailed as failed:
                    why = _first_leaf(failed)
                    events.record(Action.SERVICE_START_FAILED, rule=why.rule, info=str(why))
                    raise
                # From here a stop is a clean one, even before the start is announced: a
                # SIGTERM as soon as the port answers (a supervisor's quick restart) is no
                # improper shutdown for the next start to report.
                started = True
                try:
                    await nursery.start(status.run)
                    await nursery.start(commands.run)
                    if improper:
                        events.record(Action.SERVICE_START_IMPROPER, at=status.started_at,
                                      info="the previous run did not stop cleanly")
                    # An older release's open-relay entry: said once at start, as a listen
                    # address left out is (core/smtp/server.py); the Status page lists it.
                    for match in refused_local_entries(settings()):
                        notice = refused_entry_notice(match)
                        print(f"mailmoat core: {notice}", file=sys.stderr, flush=True)
                        events.record(Action.SERVICE_START_FAILED, rule="routing.local",
                                      info=notice)
                    # Settings that work as set but that an administrator must hear of
                    # (dayone17 findings 1, 2): said once at start; the Status page shows
                    # them while they hold.
                    for notice in (OPEN_RELAY_WARNING if settings()["relay.mode"] == "allow"
                                   else None, hostname_notice(settings())):
                        if notice:
                            print(f"mailmoat core: {notice}", file=sys.stderr, flush=True)
                    # Written now, once the start succeeded, but stamped with the start
                    # the Status page shows ("Last started"), taken before the alert
                    # engine or SMTP did anything: every listener process is ready by now,
                    # seconds after the first answered 250, and the alert of a supervisor's
                    # service_start_improper read before the start it reports (life19 C2).
                    events.record(Action.SERVICE_STARTED, at=status.started_at,
                                  info=f"Mailmoat {VERSION}, SMTP on " + _listening(addresses))
                    task_status.started(CoreHandle(addresses, server, queue, counters, events,
                                                   settings, nursery.cancel_scope))
                    await trio.sleep_forever()
                finally:
                    clean = True
                    events.record(Action.SERVICE_STOPPED)
                    if delivery_side.running:
                        with trio.CancelScope(shield=True):
                            await _mail_stop_alert(events, alerts, queue)
            finally:
                delivery_side.scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(events.close)
            # a start that failed (its port taken) is no improper shutdown of this run
            if clean or not (started or improper):
                marker.unlink(missing_ok=True)


def _unrecorded(home: DataHome, found: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ids of fast/, slow/ and hold/ (`found`, as recover() left them) that have no
    `accepted` event, per queue: the process that accepted one was killed before its
    batch of events was written, or Mailmoat made it, or the retention purge took its
    event (`_lost_accepted` tells them apart, from the envelope)."""
    queued = [(queue, queue_id) for queue in ("fast", "slow", "hold")
              for queue_id in found.get(queue, ())]
    recorded: set[str] = set()
    conn = db.connect(home.db, readonly=True)
    try:
        for start in range(0, len(queued), LOOKUP_IDS):
            ids = [queue_id for _, queue_id in queued[start:start + LOOKUP_IDS]]
            recorded.update(row[0] for row in conn.execute(
                f"SELECT DISTINCT queue_id FROM events WHERE action = ? AND queue_id IN "
                f"({','.join('?' * len(ids))})", (str(Action.ACCEPTED), *ids)))
    finally:
        conn.close()
    unrecorded: dict[str, list[str]] = {"fast": [], "slow": [], "hold": []}
    for queue, queue_id in queued:
        if queue_id not in recorded:
            unrecorded[queue].append(queue_id)
    return unrecorded


def _lost_accepted(envelope: Envelope, cutoff: float | None) -> Event | None:
    """The `accepted` event lost for a message that has none (`_unrecorded`); None for
    mail Mailmoat made (never accepted), and for a message received before `cutoff` (the
    retention purge took its event; writing it again would count it twice)."""
    if envelope.is_generated or (cutoff is not None and envelope.received_at < cutoff):
        return None
    fields = envelope.event_fields()
    return Event(Action.ACCEPTED, time=envelope.received_at,
                 **{**fields, "recipients": tuple(fields["recipients"])},
                 info="recorded at start: the event written when it was accepted "
                      "was lost with the process that accepted it",
                 data={"recovered": True})


def _recover_accepted(spool: Spool, fast_ids: list[str], cutoff: float | None
                      ) -> list[Event]:
    """The `accepted` events lost for the fast/ messages *fast_ids* (`_unrecorded`), read
    before SMTP answers as recover() left them."""
    lost = []
    for queue_id in fast_ids:
        try:
            envelope: Envelope = spool.read_envelope("fast", queue_id)
        except (OSError, EnvelopeError):
            continue                        # taken up and gone since, or set aside then
        if (event := _lost_accepted(envelope, cutoff)) is not None:
            lost.append(event)
    return lost


def _recover_accepted_when_read(events: EventWriter, ids: set[str], cutoff: float | None
                                ) -> Callable[[Envelope], None]:
    """A QueueManager load hook: the `accepted` events lost for the slow/ and hold/
    messages *ids* (`_unrecorded`), written as the queue manager reads each envelope after
    SMTP answers (core/spool/manager.py rule 15) — reading them before made a start over a
    slow queue of bounces wait for every one (review22b R4). One set aside then gets none,
    as one recover() sets aside does; one not read before a stop gets its event at the
    next start, a held one the look left out when a hold action reads it
    (core/spool/hold.py rule 5): each id is noted once."""
    def note(envelope: Envelope) -> None:
        if envelope.queue_id in ids:
            ids.discard(envelope.queue_id)
            if (event := _lost_accepted(envelope, cutoff)) is not None:
                events.emit(event)
    return note


def _scratch_dir(home: DataHome, configured: str | None,
                 events: EventWriter) -> tuple[Path, bool]:
    """`scan.temp_dir` (read at start: it takes effect at restart), created 0700 if need be;
    tmp/ in the data home when it is not set, or cannot be written (said by an event, and by
    the second value: True when the one set could not be used)."""
    if configured:
        path = Path(configured)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
            return path, False
        except OSError as exc:
            events.record(Action.SCAN_ERROR, rule="scan.temp_dir",
                          info=f"cannot use {path} ({exc.strerror or exc}); scanning uses "
                               f"{home.tmp} instead")
            return home.tmp, True
    return home.tmp, False


class _ShieldedServices:
    """Services that a stop of the core does not cancel until `scope` is cancelled: the
    delivery side (queue manager, alerts and what they need), which must outlive the
    listeners to mail the Service Stop alert (_mail_stop_alert)."""

    def __init__(self, services):
        self.services = services
        self.scope = trio.CancelScope(shield=True)
        self.running = False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            async with trio.open_nursery() as nursery:
                for service in self.services:
                    await nursery.start(service)
                self.running = True
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    self.running = False


async def _mail_stop_alert(events: EventWriter, alerts, queue) -> None:
    """At a clean stop, with the listeners closed: mail the alerts of the events written
    until now (Service Stop, when enabled) and those held back by the alert engine's
    throttle (core/notify.py rule 2), and give their delivery STOP_ALERT_SECONDS.
    What does not make it in time stays in the spool for the next start; an error here
    leaves the events to the next start's alert engine, as before."""
    queue.deliver_alerts_only()
    with trio.move_on_after(STOP_ALERT_SECONDS):
        try:
            await events.committed()
            await queue.settled(await alerts.engine.poll_once(flush=True))
        except Exception as exc:     # boundary: the stop goes on
            events.record(Action.SCAN_ERROR, rule="alerts.error",
                          info=f"alerts not mailed at stop: {type(exc).__name__}: {exc}")


# A hold request names up to 50,000 messages (the console's "all"): its result, which the
# Hold Queue page shows, names the first few it could not find and counts the rest
# (review28d R3)
NAMED_IN_RESULT = 10


def _some(queue_ids: list[str]) -> str:
    shown = ", ".join(queue_ids[:NAMED_IN_RESULT])
    rest = len(queue_ids) - NAMED_IN_RESULT
    return shown + (f" and {rest} more" if rest > 0 else "")


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _register_commands(commands: CommandRunner, queue) -> None:
    """Console/CLI requests the core carries out (commands table kinds). A request naming
    messages says which of them are not in its queue (hold, or slow for a retry); naming
    only such messages, it fails."""

    def not_in(queue_name: str, ids, found) -> str:
        """The ids asked for that are not in `found`: a refusal when none is, else the
        result's words for them."""
        missing = [queue_id for queue_id in dict.fromkeys(ids or ()) if queue_id not in found]
        if missing and len(missing) == len(set(ids)):
            raise CommandRefused(f"not in the {queue_name} queue: " + _some(missing))
        return f"; not in the {queue_name} queue: " + _some(missing) if missing else ""

    async def not_in_hold(args) -> str:
        ids = args.get("ids")
        if not ids:
            return ""
        present = await trio.to_thread.run_sync(files.list_ids, queue.spool, "hold", ids)
        return not_in("hold", ids, set(present))

    async def reprocess(args):
        missing = await not_in_hold(args)
        count = await queue.hold_reprocess(args.get("ids"))
        return f"{count} message(s) moved to the fast queue{missing}"

    async def drop(args):
        missing = await not_in_hold(args)
        count = await queue.hold_drop(args.get("ids"))
        return f"{count} message(s) dropped{missing}"

    async def forward(args):
        missing = await not_in_hold(args)
        count = await queue.hold_forward(args["address"], args.get("subject"), args.get("ids"))
        return f"{count} copy(ies) forwarded to {args['address']}{missing}"

    async def retry(args):
        done = await queue.slow_retry(args.get("ids"))
        missing = not_in("slow", args.get("ids"), set(done.due).union(done.taken))
        result = f"{len(done.due)} message(s) of the slow queue to be tried now"
        if done.taken:
            result += f"; {len(done.taken)} taken up for an attempt already"
        if done.due and queue.settings().get("delivery.paused"):
            result += "; delivery is paused (delivery.paused): they go when it is turned off"
        if done.error:
            result += (f"; not written in every envelope ({done.error}): a restart before "
                       f"their attempt has those wait for their backoff")
        return result + missing

    # hold/ and slow/ looked at first (core/spool/manager.py rule 15), other requests meanwhile
    for kind, handler in ((Command.HOLD_REPROCESS, reprocess), (Command.HOLD_DROP, drop),
                          (Command.HOLD_FORWARD, forward), (Command.SLOW_RETRY, retry)):
        commands.register(kind, handler, waits_for=queue.loaded)
