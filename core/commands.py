"""CLI commands of the core: `mailmoat core`, `mailmoat run` and `mailmoat queue` (SPEC §2).

`run` supervises two child processes (`mailmoat core`, `mailmoat console`): a child that dies
is restarted with backoff (1 s doubling to 60 s) and a `service_start_improper` event is
written; SIGTERM or Ctrl-C stops both cleanly and exits 0. The children never outlive it:
each watches a lifeline to it and stops cleanly when it goes, kill -9 included
(shared.parent_watch). A core or console it did not start, found on the data home at start,
is named in one line and `run` exits 1.

`queue list` reads the spool (read-only); `queue reprocess|drop|forward --hold` and
`queue retry --slow` are requests the core carries out through the commands table, as
Postfix's postsuper and `postqueue -f` ask its queue manager.
"""

from __future__ import annotations

import datetime
import json
import math
import signal
import sqlite3
import sys
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import trio

from core.restart import RESTART_INITIAL_SECONDS, RestartBackoff
from shared.busy import is_held_by_another
from shared.cli import CommandFailed, record_change, register
from shared.commands import HOLD_ACTIONS, SLOW_ACTIONS, WITHDRAWN
from shared.known_failures import LOCKED_REASON
from shared.paths import resolve_home
from shared.status import STALE_AFTER_SECONDS, read_snapshot

__all__ = ["serve_core", "supervise", "smtp_port_line", "LOGON_LINE"]

# how long `run` waits for a child to stop before it kills it: more than the core needs for
# a clean stop (delivery attempts get 30 s, dropped messages 10 s for their events)
STOP_GRACE_SECONDS = 60


@asynccontextmanager
async def _stopped_by_signal():
    """A nursery that the first SIGTERM or SIGINT cancels. Later ones are taken in and
    ignored until it has stopped: Ctrl-C reaches every process of the group, and `run` then
    sends its children SIGTERM too — with the default action back in place, that killed the
    core halfway through its clean stop (no service_stopped, an improper start next time)."""
    # What the receiver restores when it closes, and then re-raises any signal it took in but
    # nobody read: ignored, not the default action — `run`'s SIGTERM after a Ctrl-C arriving
    # during the clean stop killed the finished process before it could say so, exit status
    # -15. (The receiver's own handler is in place while children are started, so they get
    # the default action back at exec.)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def first_signal():
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return
            nursery.start_soon(first_signal)
            yield nursery


def serve_core(args) -> int:
    """Raises CommandFailed (one line, status 1) when another core holds the data home,
    SMTP cannot listen where the settings say, or the disk is too full to open the
    database even with the space reserve released (shared.home)."""
    from core.app import CoreAlreadyRunning, run_core
    from core.pipeline.workers import configure_workers
    from core.smtp.listen_sockets import ListenFailed
    from shared.cli import sole_exception
    from shared.parent_watch import watch_supervisor

    home = resolve_home(args.home)
    # clear message for a missing home, a schema mismatch or a full disk
    _opened_at_start(home, "core").close()

    configure_workers()

    async def main():
        async with _stopped_by_signal() as nursery:
            watch_supervisor("core")
            handle = await nursery.start(run_core, home)
            print("Mailmoat core: SMTP on " + handle.listening, flush=True)

    try:
        trio.run(main)
    except Exception as exc:
        failure = sole_exception(exc)
        if isinstance(failure, (CoreAlreadyRunning, ListenFailed)):
            raise CommandFailed(str(failure)) from None
        raise
    print("Mailmoat core stopped.", flush=True)     # as the console says it
    return 0


def _opened_at_start(home, process: str, opener=None):
    """The database opened for a start, the space reserve released if the disk is full
    (shared.home.open_db_at_start), with the low_disk event that says so; CommandFailed (one
    line) when even that cannot open it."""
    from shared.events import Action, EventWriter
    from shared.home import DiskFull, open_db_at_start

    try:
        conn, released = open_db_at_start(home, opener)
    except DiskFull as exc:
        raise CommandFailed(str(exc)) from None
    if released:
        writer = EventWriter(home.db, process)
        writer.record(Action.LOW_DISK, rule="disk.space_reserve", result="released",
                      info=released, data={"directory": "data home", "path": str(home.root)})
        writer.close()
    return conn


def _migrated(home):
    """`mailmoat run` applies migrations itself (issue 2), as `mailmoat migrate` does."""
    from shared import db
    from shared.home import migrate_stopped
    conn = db.connect(home.db)
    try:
        migrate_stopped(home, conn)
    except BaseException:
        conn.close()
        raise
    return conn


def supervise(args) -> int:
    from shared.home import (CONSOLE_LOCK, CORE_LOCK, RUN_LOCK, AlreadyRunning, hold_lock,
                             lock_holder, open_db)
    from shared.settings_store import load

    home = resolve_home(args.home)
    if not home.exists():
        raise CommandFailed(f"no Mailmoat data home at {home.root}; run `mailmoat init` first")
    # first: on a full disk nothing below could write a byte until the space reserve goes
    # (migrating before the lock is harmless: a second `run` migrates nothing and stops there)
    _opened_at_start(home, "run", _migrated).close()
    home.create()
    try:
        # held until this process ends: a second `run` would restart its core and console
        # for ever against the first one's, an improper-start alert each time
        hold_lock(home, *RUN_LOCK)
    except AlreadyRunning as exc:
        raise CommandFailed(str(exc)) from None
    for lock in (CORE_LOCK, CONSOLE_LOCK):
        # Started by hand, or left by a `mailmoat run` of a release whose children outlived
        # it: ours would fail against it and be restarted for ever, each time "after an
        # improper shutdown", while stopping this run would leave that one serving.
        pid = lock_holder(home, lock.name)
        if pid is not None:
            raise CommandFailed(f"a {lock.what} not started by this `mailmoat run` is "
                                f"running on this data home (pid {pid}); stop it "
                                f"(kill {pid}), then start `mailmoat run` again")
    conn = open_db(home)
    try:
        settings = load(conn)
    finally:
        conn.close()
    from shared.ports import may_bind_privileged_ports, privileged_port_start
    from shared.tls import load_server_pair

    print(f"Mailmoat: data home {home.root}")
    # tls/ loaded once for both: loaded for each, a pair copied in between gave an https://
    # Console line above a Certificate line saying HTTPS is off (review20b D1)
    pair = load_server_pair(home)
    print(console_line(home, settings, pair))
    for line in certificate_lines(home, datetime.datetime.now(datetime.timezone.utc), pair):
        print(f"Certificate: {line}.")
    print(LOGON_LINE)
    print(smtp_port_line(settings["smtp.port"], may_bind_privileged_ports()
                         or settings["smtp.port"] >= privileged_port_start()), flush=True)

    async def main():
        async with _stopped_by_signal() as nursery:
            for part in ("core", "console"):
                nursery.start_soon(_keep_running, part, str(home.root))

    trio.run(main)
    print("Mailmoat stopped.", flush=True)
    return 0


# True whether init made the first password (and printed it) or was given it with
# --admin-password (and printed none), and after a change since (certs17 C10).
LOGON_LINE = ("Log on as 'admin' with its password: the one `mailmoat init` printed, or the "
              "one given to it with --admin-password, unless changed since "
              "(`mailmoat init --reset-admin-password` sets a new one).")


def smtp_port_line(port: int, may_bind: bool) -> str:
    """What the start banner says of SMTP: the port, and when this user may not bind it
    (`may_bind` false: below 1024 without root or CAP_NET_BIND_SERVICE) that the core will
    not start and what to do. A home that `mailmoat init` made keeps its default, 25, when
    `make run` later runs it as the `mailmoat` user (dayone17 finding 6)."""
    if may_bind:
        return f"SMTP: port {port}. Ctrl-C stops Mailmoat."
    return (f"SMTP: port {port}, which this user may not listen on (it needs root or "
            f"CAP_NET_BIND_SERVICE): the core will not start until smtp.port is one it may "
            f"(`mailmoat config set smtp.port 2525`, and a firewall redirect from port 25) or "
            f"it has that capability (docs/operations.md: Starting and stopping). Ctrl-C "
            f"stops Mailmoat.")


def console_line(home, settings, pair=None) -> str:
    """The banner's Console line: the console's addresses, the HTTPS one only when HTTPS
    will be served — with neither key.pem + cert.pem nor the previous pair loading, the
    console serves HTTP alone (opsdocs20 C5: the line gave an https:// address that refused
    connections, two lines above the Certificate line saying HTTPS is off). `pair`: tls/ as
    shared.tls.load_server_pair gave it for the whole banner (loaded here when not given)."""
    from shared.tls import PAIR_DOES_NOT_LOAD, load_server_pair

    pair = pair if pair is not None else load_server_pair(home)
    http = f"Console: http://localhost:{settings['http.port']}/"
    if pair.context is None:
        return (f"{http}  (HTTPS, port {settings['https.port']}, is off: "
                f"{PAIR_DOES_NOT_LOAD}; see Certificate below)")
    return (f"{http}  and  https://localhost:{settings['https.port']}/"
            f"{_certificate_note(home, pair)}")


def _certificate_note(home, pair) -> str:
    """What the banner says after the HTTPS address about the certificate in tls/ when it
    loads (`pair`, as load_server_pair gave it; `certificate_lines` say what is wrong)."""
    from shared.tls import is_self_signed, served_certificate

    served = served_certificate(home, pair) if pair.problem is None else None
    if served is None:      # replaced since it loaded: the banner says nothing
        return ""
    return " (self-signed certificate until you install one)" if is_self_signed(served[0]) \
        else ""


def certificate_lines(home, now: datetime.datetime, pair=None) -> list[str]:
    """The banner's lines on what is wrong, at `now`, with the pair the servers start with
    (certs18 4): that it does not load, and what they serve meanwhile; that the certificate
    served (or one of its chain) is out of its dates, or expires within
    shared.tls.EXPIRY_WARNING_DAYS. In the words of the core's events and of the console's
    pages (shared.tls), one line each; none when all is well. `pair`: as `console_line`'s."""
    from shared.tls import (expiry_message, load_server_pair, out_of_dates_message,
                            served_certificate, unusable_message)

    pair = pair if pair is not None else load_server_pair(home)
    lines = []
    if pair.problem is not None:
        lines.append(unusable_message("each of HTTPS and STARTTLS", pair,
                                      off="HTTPS is off and SMTP offers no STARTTLS"))
    served = served_certificate(home, pair)
    if served is not None:
        cert, which, chain = served
        dates = (out_of_dates_message(cert, now, which, chain)
                 or expiry_message(cert, now, which, chain))
        if dates is not None:
            lines.append(dates)
    return lines


def _core_failed_to_start(home, since: float) -> bool:
    """The core run that began at `since` (wall clock) wrote service_start_failed and no
    service_started: it never started, so its exit was no improper shutdown."""
    from shared import db
    from shared.events import Action

    try:
        conn = db.connect(home.db)
    except Exception:                   # no database to tell: say what it always said
        return False
    try:
        actions = {row[0] for row in conn.execute(
            "SELECT DISTINCT action FROM events WHERE time >= ? AND action IN (?, ?)",
            (since - 1, str(Action.SERVICE_START_FAILED), str(Action.SERVICE_STARTED)))}
    except Exception:
        return False
    finally:
        conn.close()
    return actions == {str(Action.SERVICE_START_FAILED)}


async def _keep_running(part: str, home: str) -> None:
    from shared.events import Action, EventWriter
    from shared.parent_watch import lifeline
    from shared.paths import DataHome

    backoff = RestartBackoff()
    # -P: not the current directory first on sys.path (a console.py there would be imported)
    command = [sys.executable, "-P", "-m", "shared.cli", part, "--home", home]
    while True:
        started, started_at = time.monotonic(), time.time()
        with lifeline() as spawn_options:  # the child stops when this process goes
            process = await trio.lowlevel.open_process(command, **spawn_options)
            try:
                status = await process.wait()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    process.send_signal(signal.SIGTERM)
                    with trio.move_on_after(STOP_GRACE_SECONDS):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                raise
        delay = backoff.after_exit(time.monotonic() - started)
        print(f"mailmoat run: {part} exited with status {status}; restarting in {delay} s",
              file=sys.stderr, flush=True)
        data_home = DataHome(Path(home))
        if part == "core":
            # this event says the core stopped improperly; its own marker would make the
            # restarted core say it again (two alerts for one kill -9)
            (data_home.run / "core.running").unlink(missing_ok=True)
        if part == "core" and await trio.to_thread.run_sync(
                _core_failed_to_start, data_home, started_at):
            # Its service_start_failed says why; "started after an improper shutdown" would
            # say the opposite of the truth (alerts finding B5).
            pass
        elif delay == RESTART_INITIAL_SECONDS:
            # the first exit of a run of them: one that keeps failing to start mails the
            # alert once, not at every restart (1,440 a day at the longest backoff)
            writer = EventWriter(data_home.db, "supervisor")
            writer.record(Action.SERVICE_START_IMPROPER, info=f"{part} exited with status "
                          f"{status}; restarted by mailmoat run")
            await trio.to_thread.run_sync(writer.close)
        await trio.sleep(delay)


def queue_command(args) -> int:
    """`queue list`, or a hold or slow-queue request: checked whole before it is written
    (exit 2, nothing requested), then carried out by the core; its result on stdout (exit
    0), or on stderr when the core could not carry it out or did not take it up (exit 1)."""
    from shared.home import open_db

    home = resolve_home(args.home)
    conn = open_db(home, writing=args.action != "list")
    try:
        if args.action == "list":
            return _queue_list(home, conn, args.queue or None)
        kind = {**HOLD_ACTIONS, **SLOW_ACTIONS}[args.action]
        request = {}
        if args.action == "forward":
            from shared.settings import FORWARD_SUBJECT
            from shared.settings_addresses import Email
            from shared.settings_types import RuleError
            try:
                address = Email().check(args.address)   # an IDN domain as its A-labels
            except RuleError as exc:
                raise CommandFailed(f"ADDRESS: {exc.rule}", 2) from None
            try:        # header text, as the console's and the settings' forward subjects
                subject = None if args.subject is None else FORWARD_SUBJECT.check(args.subject)
            except RuleError as exc:
                raise CommandFailed(f"--subject: {exc.rule}", 2) from None
            request = {"address": address, "subject": subject}
        if args.ids:
            _check_queued(home, args.acted_on, args.ids)
            request["ids"] = args.ids
        # from the request's writing on, Ctrl-C (or a kill) withdraws it or leaves it to the
        # core (the wait below): never a request written with no word of it
        with _stop_noted(active=not args.no_wait) as stopped:
            conn.execute("INSERT INTO commands (created_at, kind, args, requested_by) "
                         "VALUES (?, ?, ?, 'cli')", (time.time(), kind, json.dumps(request)))
            command_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            try:
                # who asked, as the console's hold buttons record it: the core's forwarded
                # and dropped rows say what was done, not by whom
                asked = {"command": kind, "args": request, "command_id": command_id}
                record_change(home, {}, f"queue {args.action} --{args.acted_on}", **asked)
                if args.no_wait:
                    print(f"request {command_id} queued for the core")
                    return 0
                return _await_result(home, conn, command_id, args, asked, stopped)
            except sqlite3.OperationalError as exc:
                if not is_held_by_another(exc):
                    raise
                # not "nothing was changed" (the boundary's words): the request is saved,
                # and given again it would be done twice (review20b R1)
                raise CommandFailed(
                    f"request {command_id} is saved but could not be followed or withdrawn: "
                    f"{LOCKED_REASON}; the core carries it out once the lock goes, so do not "
                    "give it again: its events say what was done") from None
    finally:
        conn.close()


def _await_result(home, conn, command_id: int, args, asked: dict, stopped: list) -> int:
    """Print the core's result of request `command_id` when it comes. A request the core has
    not taken up by the deadline, or when the wait is stopped (`_stop_noted`), is withdrawn
    (`_withdraw`); one it has taken up is seen through to the deadline, or left to the core
    when the wait is stopped. One taken up and then pending again (the core stopped before
    it began: a hold action waits for the core's look at hold/ after its start,
    core/control.py) is withdrawn as one not taken up, said so."""
    started = time.monotonic()
    taken_up = False
    while True:
        row = conn.execute("SELECT state, result FROM commands WHERE id = ?",
                           (command_id,)).fetchone()
        if row["state"] == "done":
            print(row["result"])
            return 0
        if row["state"] == "failed":
            raise CommandFailed(row["result"])
        taken_up = taken_up or row["state"] == "running"
        waited = time.monotonic() - started
        if (stopped or waited >= args.wait) and _withdraw(
                conn, command_id, round(waited, 1) if stopped or taken_up else args.wait):
            why = _withdrawn_because(args.wait, stopped, taken_up) + "; nothing was changed"
            # the audit trail's request above did not happen (clispec19 B4)
            record_change(home, {}, f"queue {args.action} --{args.acted_on} (request {command_id} "
                          f"withdrawn: {why})", result=WITHDRAWN, **asked)
            raise CommandFailed(f"request {command_id} withdrawn: {why}")
        if stopped:
            raise CommandFailed(f"request {command_id} is being carried out by the core; only "
                                f"the wait for its result was {_STOPPED_BY[stopped[0]]}")
        time.sleep(0.2)     # pending, or past the deadline but running: see it through


def _withdrawn_because(wait: float, stopped: list, taken_up: bool) -> str:
    """Why `_await_result` withdrew its request: the core had not taken it up by the end
    of the wait, or had and then stopped before carrying it out (review24a C1: that was
    said as "the core did not take it up within 1 s", after a wait of many seconds)."""
    if taken_up:
        return "the core took it up but stopped before carrying it out"
    if stopped:
        return f"the wait was {_STOPPED_BY[stopped[0]]} before the core took it up"
    return f"the core did not take it up within {wait:g} s (is `mailmoat core` running?)"


# The signals that end a wait (`_stop_noted`), and the words for it.
_STOPPED_BY = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped (SIGTERM)",
               signal.SIGHUP: "stopped (SIGHUP: the terminal went away)"}


@contextmanager
def _stop_noted(*, active: bool = True):
    """A list to which Ctrl-C (SIGINT), a kill (SIGTERM) or a lost terminal (SIGHUP) adds
    the signal, instead of ending the process: KeyboardInterrupt was taken for a clean stop
    (exit 0: the request looked done), and the others ended it with no word, the request
    left for a core started later to act on whatever was held by then. A signal the process
    was started ignoring (a background job's Ctrl-C) stays ignored; off the main thread,
    where no handler can be set, and when not `active`, nothing changes."""
    stopped: list[signal.Signals] = []
    previous = {}
    if active and threading.current_thread() is threading.main_thread():
        for signum in _STOPPED_BY:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(
                    signum, lambda number, _frame: stopped.append(signal.Signals(number)))
    try:
        yield stopped
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _check_queued(home, queue: str, ids: list[str]) -> None:
    """CommandFailed (exit 2) unless every one of `ids` is in `queue` now. A list naming one
    that is not (a typing error, or a message gone since it was listed) asks for nothing,
    not for the rest: the command can be given again, corrected (docs/operations.md,
    Queues). One that leaves the queue before the core acts is named in its result."""
    from shared.spool import Spool

    if any(not queue_id for queue_id in ids):
        raise CommandFailed("--id: must not be empty", 2)
    queued = set(Spool(home.spool).list(queue))
    missing = [queue_id for queue_id in dict.fromkeys(ids) if queue_id not in queued]
    if missing:
        raise CommandFailed(f"not in the {queue} queue: " + ", ".join(missing)
                            + "; nothing was requested", 2)


def _withdraw(conn, command_id: int, waited: float) -> bool:
    """Withdraw a request the core has not taken up, so that exit status 1 means "not done"
    and a core started later does not act on what is in hold by then. False when the core
    took it up meanwhile (it is running: the caller waits for its result)."""
    withdrawn = conn.execute(
        "UPDATE commands SET state = 'failed', result = ?, done_at = ? "
        "WHERE id = ? AND state = 'pending'",
        (f"withdrawn by the requester after {waited} s", time.time(), command_id)).rowcount
    return withdrawn == 1


# A message to 50 recipients made one row of 800 characters (interop tester): the first few
# and how many more.
LISTED_RECIPIENTS = 3
# LAST ERROR of a corrupt/ entry that reads whole now: the reason noted when it was set
# aside, as the past reason it is (a damage noted then may have been repaired in corrupt/
# since: shown as if current, the repair looked as if it had not worked, review20b R2),
# else that its event says why (set aside by an older release, or the note not written)
NOTHING_WRONG_NOW = "nothing wrong found now"
SET_ASIDE_BECAUSE = f"{NOTHING_WRONG_NOW}; set aside because: "
SET_ASIDE_UNKNOWN = f"{NOTHING_WRONG_NOW}; its spool.corrupt event says why it was set aside"


def _queue_list(home, conn, only: str | None) -> int:
    from core.delivery import with_note
    from shared.report_format import display_width, padded
    from shared.shown_text import one_line
    from shared.spool import CORRUPT, DELIVERY_NOTE, Spool

    spool = Spool(home.spool)
    now = time.time()
    trying = _attempts_in_progress(conn, now)
    rows = []
    # corrupt/: entries the core set aside (an event and a Suspect Message alert said so);
    # FROM is the queue one came from ("?" when not known), LAST ERROR why it is there: what
    # is wrong with it as far as it can be read now, else that nothing is and what the core
    # noted when it set it aside (a second copy of a message kept in another queue, say; a
    # damage repaired since) — never the hold reason or delivery error its envelope still
    # carries, which would read as the fault
    listing_corrupt = only == CORRUPT
    for queue in (only,) if only else ("fast", "slow", "hold"):
        for queue_id in spool.list(queue):
            problem = (spool.problem(queue, queue_id) or _set_aside_why(spool, queue_id)
                       ) if listing_corrupt else None
            origin = (spool.set_aside_from(queue_id) or "?",) if listing_corrupt else ()
            try:
                env = spool.read_envelope(queue, queue_id)
            except (OSError, ValueError):
                if listing_corrupt:
                    rows.append((queue, queue_id, *origin, "", "", "", "", "", "", problem))
                continue  # moved or being written right now
            # what the message still waits for: its pending and deferred recipients and
            # their error, not those already delivered or bounced
            waiting = [r for r in env.recipients if r.status in ("pending", "deferred")]
            done = len(env.recipients) - len(waiting)
            shown = waiting[:LISTED_RECIPIENTS]
            recipients = ",".join(r.address for r in shown) + (
                f" (+{len(waiting) - len(shown)} more)" if len(waiting) > len(shown) else ""
            ) + (f" (+{done} done)" if done else "")
            # the error as events and DSNs show it: with a backup MX's refusal after it
            last = next((r for r in waiting if r.last_error), None)
            last_error = with_note(last.last_error, last.extra.get(DELIVERY_NOTE)) \
                if last else None
            rows.append((queue, queue_id, *origin, _age(now - env.received_at),
                         env.sender or "<>", recipients, env.size, env.attempts,
                         _next_attempt(queue, env.next_attempt_at, now,
                                       trying.get(queue_id)),
                         problem or env.hold_reason or last_error or ""))
    header = ("QUEUE", "ID", *(("FROM",) if listing_corrupt else ()), "AGE", "SENDER",
              "RECIPIENTS", "SIZE", "ATTEMPTS", "NEXT", "LAST ERROR")
    # a sender's addresses, a file name in a hold reason, a next hop's reply: a terminal must
    # not run their escape sequences nor show a right-to-left override's disguise, as
    # `mailmoat report` shows them (security21 B1)
    rows = [tuple(one_line(str(v)) for v in row) for row in rows]
    # padded by terminal columns: an SMTPUTF8 sender or a CJK reply is wider than its length
    widths = [max(display_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(padded(v, w) for v, w in zip(row, widths)).rstrip())
    return 0


def _attempts_in_progress(conn, now: float) -> dict[str, float]:
    """The running core's delivery attempts in progress, queue id -> since when, from its
    status snapshot; none when no core has written one lately (shared/status.py) or the
    snapshot cannot be read now: the listing is of the spool, and does without."""
    try:
        found = read_snapshot(conn)
    except sqlite3.OperationalError:
        return {}
    if found is None or now - found[1] > STALE_AFTER_SECONDS:
        return {}
    attempts = found[0].get("attempts")
    return attempts if isinstance(attempts, dict) else {}


def _next_attempt(queue: str, next_attempt_at: float | None, now: float,
                  trying_since: float | None = None) -> str:
    """NEXT: for a message the running core is trying to deliver now, for how long ("trying
    (5m02s)": a silent next hop holds an attempt up to its timeouts, tester28c C3); else for
    a slow entry when its next attempt is due as its envelope has it ("in 9m58s", or "due"
    when the time has come and the core has not tried it yet); nothing for the other
    queues (tester28c C2: nothing said when mail waiting after a failure would be tried
    again). A next hop that takes mail again moves its entries up before then
    (reordering), which only the core knows."""
    if trying_since is not None and queue != "hold":
        return f"trying ({_age(now - trying_since)})"
    if queue != "slow" or next_attempt_at is None:
        return ""
    return f"in {_age(next_attempt_at - now)}" if next_attempt_at > now else "due"


def _set_aside_why(spool, queue_id: str) -> str:
    """LAST ERROR of the corrupt/ entry `queue_id` in which nothing is wrong now."""
    noted = spool.set_aside_reason(queue_id)
    return SET_ASIDE_BECAUSE + noted if noted else SET_ASIDE_UNKNOWN


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _queue_setup(parser) -> None:
    parser.add_argument("action", choices=("list", *HOLD_ACTIONS, *SLOW_ACTIONS))
    parser.add_argument("queue", nargs="?", help="list: fast | slow | hold (default: these "
                        "three) | corrupt (entries set aside); forward: the ADDRESS")
    parser.add_argument("--hold", action="store_true", help="act on the hold queue "
                        "(reprocess, drop, forward)")
    parser.add_argument("--slow", action="store_true", help="act on the slow queue (retry: "
                        "try its messages now)")
    parser.add_argument("--subject", help="forward: subject of the copies")
    parser.add_argument("--id", dest="ids", action="append", help="only this message "
                        "(repeatable; default: every message in the queue acted on)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the core (default 30)")
    parser.add_argument("--no-wait", action="store_true", help="queue the request and return")


def _queue_run(args) -> int:
    """Bad input (exit 2) before anything is requested: an option or argument that says
    something else than the action (clispec19 B3: `queue list fast --hold` listed the fast
    queue, `reprocess slow --hold` acted on hold, `--wait -1` wrote a request and withdrew
    it at once)."""
    if args.action == "forward":
        args.address = args.queue
        if not args.address:
            raise CommandFailed("forward needs an ADDRESS", 2)
    elif args.action == "list":
        if args.queue not in (None, "fast", "slow", "hold", "corrupt"):
            raise CommandFailed("queue: must be one of fast, slow, hold, corrupt", 2)
        flags = [queue for queue in ("hold", "slow") if getattr(args, queue)]
        if len(flags) > 1:
            raise CommandFailed("--hold, --slow: `queue list` lists one queue or all", 2)
        if flags and args.queue not in (None, flags[0]):
            raise CommandFailed(f"--{flags[0]}: `queue list` lists the queue it is given, here "
                                f"{args.queue}; for the {flags[0]} queue: queue list {flags[0]}",
                                2)
        if flags:
            args.queue = flags[0]
    elif args.queue is not None:
        acted_on = "slow" if args.action in SLOW_ACTIONS else "hold"
        raise CommandFailed(f"{args.queue}: `queue {args.action}` takes no queue: it acts on "
                            f"the {acted_on} queue (--{acted_on})", 2)
    if args.slow and args.action not in ("list", *SLOW_ACTIONS):
        raise CommandFailed(f"--slow: the slow queue takes only retry, not {args.action}", 2)
    if args.action in SLOW_ACTIONS:
        if args.hold:
            raise CommandFailed(f"--hold: the hold queue takes reprocess, drop and forward, "
                                f"not {args.action}", 2)
        if not args.slow:
            raise CommandFailed(f"{args.action} acts on the slow queue: add --slow", 2)
        args.acted_on = "slow"
    elif args.action != "list":
        if not args.hold:
            raise CommandFailed("only the hold queue takes actions: add --hold", 2)
        args.acted_on = "hold"
    if args.action != "list":
        if not (0 < args.wait < math.inf):
            raise CommandFailed("--wait: must be a number of seconds above 0", 2)
    return queue_command(args)


register("core", "start the core (SMTP, pipeline, delivery)", lambda p: None, serve_core)
register("run", "start core and console, supervised", lambda p: None, supervise)
register("queue", "list and act on queued messages", _queue_setup, _queue_run)
