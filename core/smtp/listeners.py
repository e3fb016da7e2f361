"""SMTP listener processes: several processes share the SMTP port (SO_REUSEPORT) so that
receiving mail uses every CPU core while the core process schedules and delivers.

Each listener process runs the same `SmtpServer` as the in-process mode, with its own
settings watcher, group committer and event writer, writing into the shared spool exactly
as the core would (250 only after the group commit). It tells the core process what it did
over a socketpair, one JSON object per line:

    {"ready": [[host, port], ...]}          listening
    {"failed": "cannot listen … (reason)",  cannot bind at start (`errno`: bind(2)'s, which
     "errno": N}                            says the setting to blame); the process exits
    {"accepted": QUEUE_ID, "envelope": {…}} a message is durable in fast/
    {"counters": {name: delta, …}}          counter increments since the last report
    {"not_listening": [{…}, …]}             process 0's addresses of smtp.listen left out,
                                            when they change (SmtpServer.not_listening)
    {"space_refused": true}                 it refused mail for the spool's space (at most
                                            once a second: SmtpServer.refused_for_space)

and the core tells it, the same way, at a change of the listener processes (`Listeners`):

    {"stop_accepting": true}                close the listening sockets, let the open
                                            sessions finish, report, exit 0

Rules:
- The spool is the truth: a lost line only delays a message until the next rescan of fast/,
  never loses one. Lines are lost when a process dies between its commit and its report:
  when a listener process has ended, the pool asks the queue manager to rescan fast/ at
  once (`on_ended`); the manager also rescans every RESCAN_SECONDS (core/spool/manager.py
  rule 1), for a report the core itself lost.
- A listener process exits when the core goes away (end of file on its socket), so a killed
  core never leaves listeners answering 250 on its behalf for long.
- The core restarts a listener that dies, with the backoff of `mailmoat run`
  (core/restart.py: 1 s doubling to 60 s, afresh after a healthy while), and writes an
  event. One that cannot bind at start ends the core's start with ListenFailed (`mailmoat
  core` prints why); a later rebind that fails keeps each process where it was
  (SmtpServer.serve), and only process 0 writes the event.
- `smtp.max_incoming` is shared out: of N processes, process i serves max_incoming // N
  sessions at once, one more when i < max_incoming % N (at least 1), so the parts add up to
  the setting when N ≤ max_incoming. The kernel spreads connections over the processes by a
  hash, not by load: a client may wait at a full process while another has a free slot.
- Listener processes run LISTENER_NICE steps below the core's CPU priority once they
  listen (they start at the core's, so a restart stays short). The core is one
  process that routes and delivers everything every listener accepts; when the CPUs are
  short, it keeps its pace and acceptance slows instead: backpressure at SMTP (clients wait
  a little for their replies, as with Postfix's in_flow_delay) instead of a spool that fills
  faster than it drains. With equal priorities the listeners took most of the CPU under
  load and the core got about a third of one, so mail piled up in fast/ and was delivered
  late (bench/throughput.py: end-to-end 0.36-0.65 of Postfix at 2 KB, 0.71 with the nice).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Callable

import trio

from core.restart import RestartBackoff
from core.smtp.listen_sockets import ListenFailed, refuse_if_listened_on
from shared.events import Action
from shared.spool import Envelope

__all__ = ["ListenerPool", "Listeners", "listener_count", "COUNTER_REPORT_SECONDS",
           "LISTENER_NICE", "RESHAPE_DRAIN_SECONDS", "SESSIONS_FILES"]

COUNTER_REPORT_SECONDS = 0.5
LISTENER_NICE = 10      # CFS weight 110 against the core's 1024: see the rules above
LISTENER_EXIT_SECONDS = 5  # at a stop: time a listener has to finish by itself before SIGTERM
MAX_LINE_OCTETS = 16 << 20  # an envelope with 1000 recipients fits easily
# A change of the listener processes: how long the old listeners' open sessions have to
# finish (Listeners). A minute, as `mailmoat run` gives a stopping core: a message of
# 50 MB at 10 Mbit/s takes 40 s.
RESHAPE_DRAIN_SECONDS = 60.0
# in run/: the per-client session counts (core/smtp/client_sessions.py rule 3) of a pool,
# and of the next one, which counts apart while the old one drains (Listeners)
SESSIONS_FILES = ("smtp-client-sessions", "smtp-client-sessions-next")


def listener_count(setting: int, max_incoming: int) -> int:
    count = setting or (os.cpu_count() or 1)
    return max(1, min(count, max_incoming))


class ListenerPool:
    """Starts and watches the listener processes (in the core process)."""

    def __init__(self, home, count: int, *, on_accepted: Callable[[str, Envelope], None],
                 counters, events, on_ended: Callable[[], None] = lambda: None,
                 backoff: Callable[[], RestartBackoff] = RestartBackoff,
                 sessions_file: str = SESSIONS_FILES[0],
                 on_space_refused: Callable[[], None] = lambda: None):
        """`on_ended()` after a listener process has ended (the queue manager's rescan);
        `backoff` makes each process's RestartBackoff; `sessions_file` (one of
        SESSIONS_FILES) is where its processes count each client's sessions;
        `on_space_refused()` when a process refused mail for the spool's space (the
        resource monitor's check_soon, core/notify.py)."""
        self.home = home
        self.count = count
        self.sessions_file = sessions_file
        self._streams: dict[int, trio.SocketStream] = {}    # to each process, by index
        self._stopping = trio.Event()                       # stop_accepting asked
        self.on_accepted = on_accepted
        self.on_ended = on_ended
        self.on_space_refused = on_space_refused
        self.backoff = backoff
        self.counters = counters
        self.events = events
        self.addresses: list = []
        self._not_listening: list[dict] = []     # process 0's report, as its events are

    def not_listening(self) -> list[dict]:
        """The status snapshot's `smtp_not_listening`, as listener process 0 last said."""
        return self._not_listening

    async def stop_accepting(self) -> None:
        """Ask every process to stop accepting and end once its sessions have (the
        protocol above); `run` returns when they all have. A process that ends now is not
        started again."""
        self._stopping.set()
        for stream in list(self._streams.values()):
            await self._tell_stop(stream)

    @staticmethod
    async def _tell_stop(stream: trio.SocketStream) -> None:
        try:
            await stream.send_all(b'{"stop_accepting": true}\n')
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass            # that one has ended: nothing to stop

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run the processes until cancelled, or until they have ended after
        stop_accepting."""
        async with trio.open_nursery() as nursery:
            ready = []
            for index in range(self.count):
                ready.append(await nursery.start(self._keep_running, index))
            self.addresses = ready[0]
            task_status.started(self.addresses)

    async def _keep_running(self, index: int, *, task_status=trio.TASK_STATUS_IGNORED):
        backoff = self.backoff()
        not_ready = task_status  # until the first process says it listens
        while not self._stopping.is_set():
            started = trio.current_time()
            ours, theirs = socket.socketpair()
            command = [sys.executable, "-P", "-m", "core.smtp.listener_main", "--home",
                       str(self.home.root), "--fd", str(theirs.fileno()), "--share",
                       str(self.count), "--index", str(index), "--sessions-file",
                       self.sessions_file]
            # A process group of its own: a terminal's Ctrl-C goes to the core (which stops
            # the listeners) and not to a listener still importing, where it printed a
            # KeyboardInterrupt traceback. A listener still ends with the core, kill -9
            # too: it stops when the socket pair closes.
            process = await trio.lowlevel.open_process(command, pass_fds=(theirs.fileno(),),
                                                       process_group=0)
            theirs.close()
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
            self._streams[index] = stream
            try:
                # (Re)started while stop_accepting ran (open_process waits in a thread):
                # not among the streams it told, so told here; the process reads it once
                # it listens (review19 r5 R1: it kept accepting until the drain's end cut
                # its sessions with 421). No checkpoint since the stream was registered,
                # so exactly one of the two sends the line.
                if self._stopping.is_set():
                    await self._tell_stop(stream)
                not_ready = await self._read(stream, not_ready, index)
            finally:
                del self._streams[index]
                if index == 0:
                    self._not_listening = []        # until the next process says
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                    # At the end of its socket a listener stops by itself: its sessions
                    # told 421, its events written. A signal only when it does not.
                    with trio.move_on_after(LISTENER_EXIT_SECONDS):
                        await process.wait()
                    if process.returncode is None:
                        process.terminate()
                        with trio.move_on_after(10):
                            await process.wait()
                        if process.returncode is None:
                            process.kill()
                            await process.wait()
                    # what it committed and did not report is in fast/ unannounced
                    self.on_ended()
            if not_ready is not None:
                raise RuntimeError(f"SMTP listener {index} exited before it was ready "
                                   f"(status {process.returncode})")
            if self._stopping.is_set():
                return          # asked to (stop_accepting), or dead then: not restarted
            delay = backoff.after_exit(trio.current_time() - started)
            self.events.record(Action.SERVICE_START_IMPROPER,
                               info=f"SMTP listener process {index} exited with status "
                                    f"{process.returncode}; restarting in {delay} s")
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _read(self, stream: trio.SocketStream, task_status, index: int):
        """Handle the lines of process `index` until it closes; returns task_status, or
        None once it was used to say "ready"."""
        buffer = bytearray()
        while True:
            data = await stream.receive_some(1 << 16)
            if not data:
                return task_status
            buffer += data
            if len(buffer) > MAX_LINE_OCTETS and b"\n" not in buffer:
                raise RuntimeError("SMTP listener sent an overlong line")
            *lines, rest = buffer.split(b"\n")
            buffer = bytearray(rest)
            for line in lines:
                message = json.loads(line)
                if "accepted" in message:
                    self.on_accepted(message["accepted"],
                                     Envelope.from_dict(message["envelope"]))
                elif "counters" in message:
                    for name, delta in message["counters"].items():
                        self.counters.incr(name, delta)
                elif "space_refused" in message:
                    self.on_space_refused()
                elif "not_listening" in message and index == 0:
                    self._not_listening = message["not_listening"]
                elif "failed" in message and task_status is not None:
                    raise ListenFailed(message["failed"], message.get("errno"))
                elif "ready" in message and task_status is not None:
                    task_status.started([tuple(a) for a in message["ready"]])
                    task_status = None


class Listeners:
    """The core's SMTP listening, in whichever mode `smtp.listener_processes` asks for: the
    in-process `SmtpServer` (count 1) or a `ListenerPool`. The count is `listener_count`:
    never more processes than smtp.max_incoming, as each serves at least one session, so a
    change of max_incoming across the CPU count (or smtp.listener_processes) changes the
    count too. Kept so on purpose, and documented on the setting (docs/settings.md,
    operations.md): a process with no share of the sessions would still take the
    connections the kernel hashes to it, which would wait for a slot it never has
    (smtp18 B2).

    A change of the count applies live, without a refused connection or a cut session
    (life19 C1: the old listeners closed before the new ones opened, which refused the
    connections of that half second, and open sessions got 421, a message in DATA too):
    1. The new listeners open beside the old ones (SO_REUSEPORT, in the core's own
       listener too): for that moment the kernel spreads new connections over both.
    2. Then the old ones stop accepting (`stop_accepting`: what their accept queues hold
       is served, core/smtp/listen_sockets.py) and their open sessions go on, for
       RESHAPE_DRAIN_SECONDS at most; one still open then ends as at a stop (421 4.3.2;
       a message already queued still gets its 250). A listener process tells the core
       what it accepted before it ends, and the core rescans fast/ when it has ended, as
       for any that ends.
    3. While the old listeners drain, their sessions do not count against the new ones'
       smtp.max_incoming, nor a client's sessions there against its share: for that while
       the sessions served at once may reach the old setting plus the new. Only sessions
       open at the change go on there; every new one counts in the new listeners.
    4. One change at a time: one that comes while the listeners of the one before still
       drain waits until they have ended (the current ones serve meanwhile), so the
       in-process server, and a pool's file of SESSIONS_FILES, serve one shape at a time.
    5. New listeners that cannot start (a process that cannot bind) leave the current ones
       serving, with a service_start_failed event of rule smtp.listener_processes, until
       the count changes again.
    6. The port is this core's alone: at the start, before any listener binds, a socket of
       another program listening where smtp.listen and smtp.port say (another Mailmoat
       core's, SO_REUSEPORT or not) fails the start as "in use" (listen_sockets.py)."""

    def __init__(self, settings, in_process_server,
                 make_pool: Callable[[int, str], ListenerPool], events):
        """`make_pool(count, sessions_file)`: a ListenerPool of `count` processes counting
        client sessions in `sessions_file` (one of SESSIONS_FILES)."""
        self.settings = settings
        self.in_process_server = in_process_server
        self.make_pool = make_pool
        self.events = events
        self.current = None

    def not_listening(self) -> list[dict]:
        """The status snapshot's `smtp_not_listening` (SmtpServer.not_listening)."""
        return self.current.not_listening() if self.current is not None else []

    def _count(self) -> int:
        s = self.settings()
        return listener_count(s["smtp.listener_processes"], s["smtp.max_incoming"])

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from core.control import POLL_SECONDS
        s = self.settings()
        refuse_if_listened_on(s["smtp.listen"], s["smtp.port"])     # another core's (rule 6)
        async with trio.open_nursery() as nursery:
            count = self._count()
            current, addresses = await self._open(nursery, count)
            task_status.started(addresses)
            draining: _Shape | None = None
            failed = None           # a count whose listeners could not start (rule 5)
            while True:
                while self._count() in (count, failed):
                    await trio.sleep(POLL_SECONDS)
                if draining is not None:        # rule 4
                    await draining.ended.wait()
                    draining = None
                    continue                    # the count may have changed meanwhile
                wanted = self._count()
                opened = await self._open_or_keep(nursery, wanted, count)
                if opened is None:
                    failed = wanted
                    continue
                failed = None
                draining, (current, _) = current, opened
                count = wanted
                nursery.start_soon(draining.drain)

    async def _open(self, nursery: trio.Nursery, count: int):
        """The listeners of `count` (rule 1): (_Shape, addresses) once they listen."""
        if count == 1:
            runner, serve = self.in_process_server, self.in_process_server.serve
        else:
            # the file the current pool does not use (rule 4)
            in_use = self.current.sessions_file if isinstance(self.current, ListenerPool) \
                else None
            runner = self.make_pool(count, SESSIONS_FILES[in_use == SESSIONS_FILES[0]])
            serve = runner.run
        shape = _Shape(runner)
        addresses = await nursery.start(shape.run, serve)
        self.current = runner
        return shape, addresses

    async def _open_or_keep(self, nursery: trio.Nursery, count: int, serving: int):
        """`_open(count)`, or None when those listeners cannot start (rule 5)."""
        try:
            return await self._open(nursery, count)
        except* (ListenFailed, RuntimeError) as failed:
            why = failed.exceptions[0]
            while isinstance(why, BaseExceptionGroup):
                why = why.exceptions[0]
            self.events.record(
                Action.SERVICE_START_FAILED, rule="smtp.listener_processes",
                info=f"cannot start {_shape_words(count)}: {why}; still listening with "
                     f"{_shape_words(serving)} until the count changes again")
        return None


def _shape_words(count: int) -> str:
    return "the listener in the core process" if count == 1 \
        else f"{count} SMTP listener processes"


class _Shape:
    """One set of listeners (`runner`: the SmtpServer or a ListenerPool) in the Listeners'
    nursery, in a cancel scope of its own."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.scope = trio.CancelScope()
        self.ended = trio.Event()

    async def run(self, serve, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                await serve(task_status=task_status)
        finally:
            self.ended.set()

    async def drain(self) -> None:
        """Stop accepting and end once the open sessions have, or at RESHAPE_DRAIN_SECONDS
        as at a stop (Listeners rule 2)."""
        await self.runner.stop_accepting()
        with trio.move_on_after(RESHAPE_DRAIN_SECONDS):
            await self.ended.wait()
        self.scope.cancel()
        await self.ended.wait()
