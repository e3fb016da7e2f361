"""Main of one SMTP listener process (see core/smtp/listeners.py for the protocol and rules).

    python -m core.smtp.listener_main --home DIR --fd N --share COUNT --index I
                                      [--sessions-file NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys

import trio

from core.control import SettingsWatcher
from core.scan.antispam.autowhitelist import AutoWhitelistMirror
from core.smtp.client_sessions import AloneClientSessions, SharedClientSessions
from core.smtp.group_commit import GroupCommitter
from core.smtp.listen_sockets import ListenFailed
from core.smtp.listeners import COUNTER_REPORT_SECONDS, LISTENER_NICE, SESSIONS_FILES
from core.smtp.server import SmtpServer
from core.smtp.tls import TlsFiles
from core.status import Counters
from shared.events import EventWriter
from shared.home import gateway_name, room_for_events_at_close
from shared.paths import DataHome
from shared.spool import Spool

REPORT_BUFFER = 10_000
FLUSH = object()        # not a line: the report task sets `flushed` when it comes to it
SPACE_REFUSED_LINE = b'{"space_refused": true}\n'     # core/smtp/listeners.py


def _line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def said_as(index: int) -> str:
    """How this process's lines on standard error name it: "mailmoat core (SMTP listener
    1): …" (the core's own say "mailmoat core: …")."""
    return f"core (SMTP listener {index})"


def client_sessions(home: DataHome, sessions_file: str, share: int,
                    index: int) -> SharedClientSessions | AloneClientSessions:
    """Each client's sessions counted with the other listener processes, in
    run/`sessions_file`; when that file cannot be made (the disk is full: review21a R4,
    where the process died of SIGBUS and the core's start with it), counted in this process
    alone, a client having its part of the per-client limit here, and the file tried again
    every minute (client_sessions.py rule 6), both said on standard error. Called in the
    trio thread."""
    path = home.run / sessions_file

    def shared() -> SharedClientSessions:
        return SharedClientSessions(path, share, index)

    def together_again() -> None:
        print(f"mailmoat {said_as(index)}: counts each client's SMTP sessions with the other "
              f"listener processes again ({path})", file=sys.stderr, flush=True)

    try:
        return shared()
    except OSError as exc:
        print(f"mailmoat {said_as(index)}: cannot count each client's SMTP sessions with "
              f"the other listener processes ({path}: {exc.strerror or exc}): this process "
              f"counts the sessions it serves alone, a client having its part of the "
              f"per-client limit here, and tries again every minute", file=sys.stderr,
              flush=True)
        return AloneClientSessions(shared, together_again)


async def listen(home: DataHome, fd: int, share: int, index: int,
                 sessions_file: str = SESSIONS_FILES[0]) -> int:
    """Serve until the core goes away or a signal comes, or the core asked it to stop
    accepting and its last session has ended: 0; 1 when the listener cannot bind at start
    (after telling the core why in a "failed" line)."""
    from core.delivery import Resolver

    sock = socket.socket(fileno=fd)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    # as the core's (core/app.py): a stop on a full disk writes into the space reserve;
    # what it says on stderr names this process, not "core" alone (review21a C1)
    events = EventWriter(home.db, "core", room_at_close=room_for_events_at_close(home),
                         said_as=said_as(index))
    settings = SettingsWatcher(home.db, said_as=said_as(index))
    counters = Counters()
    spool = Spool(home.spool)
    send_line, receive_line = trio.open_memory_channel(REPORT_BUFFER)

    def on_accepted(queue_id, envelope, envelope_json):
        # The envelope's JSON as the spool has it (one line) goes into the report as it is.
        line = b'{"accepted":' + json.dumps(queue_id).encode() + b',"envelope":' \
            + envelope_json + b"}\n"
        try:
            send_line.send_nowait(line)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # full or stopping: the core finds it in fast/ at its next rescan or start

    def on_space_refused():
        # the core's resource monitor looks at the disk at once (core/notify.py)
        try:
            send_line.send_nowait(SPACE_REFUSED_LINE)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # full or stopping: the monitor's next look finds the disk as it is

    committer = GroupCommitter(spool)
    auto_whitelist = AutoWhitelistMirror(home.db, settings, events.clock)
    tls = TlsFiles(home, events)
    server = SmtpServer(settings=settings, spool=spool, committer=committer, events=events,
                        counters=counters, clock=events.clock, on_accepted=on_accepted,
                        ssl_context=tls, diagnostics_dir=home.diagnostics,
                        resolver=Resolver(settings),
                        hostname=lambda: gateway_name(settings()),
                        reuse_port=True, share=share, share_index=index,
                        auto_whitelisted=auto_whitelist.contains,
                        client_sessions=client_sessions(home, sessions_file, share, index),
                        on_space_refused=on_space_refused)
    settings.on_change(server.settings_changed)

    flushed = trio.Event()      # the report task has written every line sent before FLUSH

    async def report():
        core_gone = False
        async with receive_line:
            async for line in receive_line:
                lines = [line]      # what else is waiting goes in the same write
                while len(lines) < 100:
                    try:
                        lines.append(receive_line.receive_nowait())
                    except trio.WouldBlock:
                        break
                flushing = FLUSH in lines
                lines = [line for line in lines if line is not FLUSH]
                # once the core is gone: drained, so that no sender waits on a full channel
                if lines and not core_gone:
                    try:
                        await stream.send_all(b"".join(lines))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        # The core stopped first (a stop that waits for its scan workers):
                        # until_core_goes_away stops this listener; what it did not hear
                        # of, it finds in fast/ at its next start. Not a traceback on every
                        # stop.
                        core_gone = True
                if flushing:
                    flushed.set()

    def counters_line() -> bytes | None:
        deltas = {k: v for k, v in counters.as_dict().items() if v}
        for name in deltas:
            counters.values[name] = 0
        return _line({"counters": deltas}) if deltas else None

    async def report_counters():
        while True:
            await trio.sleep(COUNTER_REPORT_SECONDS)
            if line := counters_line():
                await send_line.send(line)

    async def report_not_listening():
        sent: list[dict] = []
        while True:
            now = server.not_listening()
            if now != sent:
                await send_line.send(_line({"not_listening": now}))
                sent = now
            await trio.sleep(COUNTER_REPORT_SECONDS)

    async def until_core_goes_away(cancel_scope):
        buffer = b""
        while data := await stream.receive_some(1024):
            *lines, buffer = (buffer + data).split(b"\n")
            if any(json.loads(line).get("stop_accepting") for line in lines):
                await server.stop_accepting()
        cancel_scope.cancel()

    async def serve(cancel_scope, *, task_status=trio.TASK_STATUS_IGNORED):
        await server.serve(task_status=task_status)
        # Returned: the core asked it to stop accepting and its last session has ended.
        # What it accepted and its counters reach the core before it ends (its rescan
        # when this process has ended is for what a process could not tell).
        if line := counters_line():
            await send_line.send(line)
        await send_line.send(FLUSH)
        await flushed.wait()
        cancel_scope.cancel()

    try:
        # The receiver stays in place until every session has stopped: Ctrl-C reaches the
        # whole process group and the core's SIGTERM follows; with the default action back,
        # that killed the listener between a commit and its 250.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(settings.run)
                await nursery.start(committer.run)
                await nursery.start(auto_whitelist.run)
                await nursery.start(tls.watch)     # sessions or not (core/smtp/tls.py)
                nursery.start_soon(report)
                nursery.start_soon(report_counters)
                try:
                    addresses = await nursery.start(serve, nursery.cancel_scope)
                except ListenFailed as exc:
                    # Nothing else writes to the core yet (no session, no counter moved).
                    await stream.send_all(_line({"failed": str(exc), "errno": exc.errno}))
                    nursery.cancel_scope.cancel()
                    return 1
                await send_line.send(_line({"ready": [list(a) for a in addresses]}))
                if server.reports_listen_errors:    # process 0 only, as for the events
                    nursery.start_soon(report_not_listening)
                # Only now: starting (imports, binding) at the core's priority keeps a
                # restart short while the core and its worker processes start too.
                os.nice(LISTENER_NICE)
                nursery.start_soon(until_core_goes_away, nursery.cancel_scope)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
        return 0
    finally:
        # Stopping anyway: a signal now (the core's SIGTERM after closing the socket) must
        # not kill the process before its last events are written.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(events.close)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--share", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--sessions-file", choices=SESSIONS_FILES, default=SESSIONS_FILES[0])
    args = parser.parse_args()
    from pathlib import Path

    return trio.run(listen, DataHome(Path(args.home)), args.fd, args.share, args.index,
                    args.sessions_file)


if __name__ == "__main__":
    raise SystemExit(main())
