"""CLI commands of the core: `mailmoat core` and `mailmoat run` (SPEC §2; `mailmoat queue` is
core/queue_commands.py).

`run` supervises two child processes (`mailmoat core`, `mailmoat console`): a child that dies
is restarted with backoff (1 s doubling to 60 s) and a `service_start_improper` event is
written; SIGTERM or Ctrl-C stops both cleanly and exits 0. The children never outlive it:
each watches a lifeline to it and stops cleanly when it goes, kill -9 included
(shared.parent_watch). A core or console it did not start, found on the data home at start,
is named in one line and `run` exits 1.
"""

from __future__ import annotations

import datetime
import signal
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from core.restart import RESTART_INITIAL_SECONDS, RestartBackoff
from shared.cli import CommandFailed, register
from shared.paths import resolve_home

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


register("core", "start the core (SMTP, pipeline, delivery)", lambda p: None, serve_core)
register("run", "start core and console, supervised", lambda p: None, supervise)
