"""Worker processes for the CPU-bound steps (ARCHITECTURE invariant 2; SPEC §4).

`run_in_worker(fn, *args, timeout_seconds)` runs a picklable function in a trio-parallel
worker process and returns its result. The event loop only waits: SMTP sessions stay
responsive however long a message takes.

`WorkerBatcher` hands the same function several items per round trip when items queue up
faster than the workers take them: under load a round trip cost the core more than the
work it carried (pickling, pipes, wake-ups); a lone item still goes at once.

Rules
    1. Past `timeout_seconds` (SPEC §4: 60) the worker is killed (kill_on_cancel) and
       `WorkerTimeout` is raised; a worker that dies (segfault, os._exit, OOM kill) raises
       `WorkerCrashed`. The queue manager counts either as a crash of that message; the
       third holds it with the suspect_message alert (core/spool/dispositions.py).
    2. Exceptions raised by `fn` itself come back as they are (also crashes, for the
       manager); the pool replaces dead workers by itself.
    3. `inline=True` runs `fn` in a thread instead (for unit tests that need no processes);
       the kill guarantee of rule 1 holds only for processes.
    4. Batches: at most MAX_BATCH items, only items given the same `shared` arguments (the
       settings snapshot), never a `solo` item (a large message). An exception raised for
       one item is that item's alone. When a batch of several crashes or times out, each
       of its items runs again alone, so only the item that fails alone is charged with it:
       a bad message delays the others of its batch, never counts against them.
    5. Workers ignore SIGINT and SIGTERM (`configure_workers`, called by `mailmoat core`
       before any work): the core stops them when it stops. A signal sent to the whole
       process group (Ctrl-C in a terminal, systemd's KillMode=control-group) killed them
       first, and every clean stop printed trio_parallel's "Graceful shutdown failed"
       traceback. A worker still ends with the core: its job pipe closes.
    6. Memory per message (ARCHITECTURE invariant 3): `limited_memory(octets)` lets the
       worker's private data (Linux RLIMIT_DATA: heap and anonymous mappings, not shared
       libraries or reserved address space) grow by at most `octets` over what it holds
       when the job starts; past it an allocation fails with MemoryError in the job
       instead of the machine's OOM killer picking a worker (three kills made a suspect
       message). The limit is lowered per job and put back after it, so it never applies
       to work between jobs (receiving, pickling the result); the process stays usable.
       run.py derives `octets` from the message and the settings, at most this worker's
       share of the memory available at the job's start (`memory_share_octets`: divided
       by the batcher's slots, which the worker's settings copy carries as
       RUNTIME_WORKER_SLOTS) but never under run.py's headroom, and turns the MemoryError
       into a finding. A lower limit the administrator set (`ulimit -d`) stays.
       RLIMIT_AS was measured too: it counts every mapped library and each thread's
       reserved arena, about 130 MB more at start, and grows with the core count.
       Where there is no RLIMIT_DATA or /proc (Windows, macOS), there is no limit. The
       limit is process-wide, so only a job on its process's main thread (a worker
       process's) sets it: inline (rule 3) it would bound the core, or a test, and race
       with the jobs of other threads.
    7. Lanes: a `solo` item (a large message, rule 4) is a large job; small and large jobs
       wait in a queue each, in arrival order. While a small job waits, at most
       `large_slots` = slots - 1 large jobs run at once when there are 2 or more slots (1
       with one slot), as Postfix limits the processes of a transport; while none waits,
       large jobs may take every slot (work-conserving: on 2 cores a queue of attachment
       mail with no small mail is scanned two at a time, not one, review2 R5). A free slot
       takes the oldest job it may take: the oldest one, or, when large jobs already fill
       their slots and a small one waits, the oldest small one. So small mail never waits
       behind large mail for more than one job's end (nine queued 49 MB messages held
       small mail up to 52 s between its 250 and delivery, hostile18 B2): when it arrives
       with every slot running a large job, the first slot freed is its. A large job never
       waits for a job that came after it, only for the earlier ones and, while small mail
       waits, for a large job to end: no stream of small mail keeps it from starting. With
       one slot the order is the arrival order. An item run again alone after its batch
       failed (rule 4) keeps its lane. "Large" is the batching threshold (service.py
       BATCH_MESSAGE_OCTETS, 256 KB), not a lane threshold of its own: with the lanes
       work-conserving the reservation costs nothing while no small mail waits, and while
       some does, a message of a few hundred KB is exactly the mail it should not wait
       behind; one size for an administrator to know.
    8. Each slot has a worker process of its own (`_SlotWorker`: a trio-parallel worker
       context of one worker that is never ended for idling), started outside any job's
       time limit: before the slot's first job, and again before a job whenever the slot
       has no live worker — after a job that timed out or killed its worker, a worker that
       died while idle (the OOM killer, an administrator), or one retired for its memory —
       it has its worker start and import what the jobs run (`_worker_started`, given
       `fn`), with no job's limit running. A start counted in the limit charged the next
       message — the one retried after a hung one, an ordinary one behind it — for
       seconds of process start and imports on a loaded host, and three such charges held
       innocent mail as suspect (flake20 F1). With trio-parallel's one shared cache the
       started worker could go to another slot, whose own worker sat idle, and idle
       workers ended after 10 minutes, each leaving a start to the next job's limit
       (review20g R2, R3). A worker that cannot start (a job module that does not import)
       is left to the job, which meets it as a crash (rule 1).
    9. Memory a batch leaves behind is given back: the allocator keeps a large message's
       peak as free memory of the process (+39 MB after a 20 MB text attachment, review21a
       D1), and with workers kept however long no mail comes it would stay for the core's
       whole life, out of rule 6's shares. A worker whose own RAM (RssAnon) is
       TRIM_AT_OCTETS past what it held after its first batch (its definitions, lists and
       caches loaded; trimmed first) hands the free memory back to the system (glibc's
       malloc_trim, a few milliseconds; `_settle`). One still RETIRE_GROWTH_OCTETS past it says so with its batch's results
       (`run_batch`), and its slot closes its context, so the worker ends, and opens a new
       one with a new worker started (rule 8). Measured from the first batch, not from the
       start: the first message's loads (+42 MB with the default settings, more with long
       lists) retired workers on ordinary mail (review21d R1), and a first batch can never
       retire its worker, so no slot retires in a loop.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import signal
import threading
from collections import deque
from contextlib import asynccontextmanager, contextmanager

try:
    import resource
except ImportError:                     # Windows: rule 6 has no limit there
    resource = None

import trio
import trio_parallel

__all__ = ["run_in_worker", "WorkerBatcher", "WorkerCrashed", "WorkerTimeout",
           "configure_workers", "limited_memory", "data_octets", "memory_share_octets",
           "PROCESS_TIMEOUT_SECONDS", "MAX_BATCH", "RUNTIME_WORKER_SLOTS"]

PROCESS_TIMEOUT_SECONDS = 60.0
# A worker's start and imports (rule 8): not a job's limit, a backstop for a broken host,
# past which the next job starts one itself (and its limit tells).
WORKER_START_SECONDS = 120.0
# A slot's idle worker told to end at the core's stop exits at once; past this it is killed.
WORKER_STOP_SECONDS = 5.0
# rule 9
TRIM_AT_OCTETS = 16 << 20
RETIRE_GROWTH_OCTETS = 64 << 20
MAX_BATCH = 8
# not a setting: the core adds its batcher's `slots` to the worker's settings copy
# (core/pipeline/service.py), the count of workers that share the memory (rule 6)
RUNTIME_WORKER_SLOTS = "runtime.worker.slots"


class WorkerCrashed(RuntimeError):
    """The worker process died while handling the message."""


class WorkerTimeout(RuntimeError):
    """The worker took longer than allowed and was stopped."""


def configure_workers() -> None:
    """Rule 5. Once, in the main thread, before the first `run_in_worker`."""
    trio_parallel.configure_default_context(init=_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def data_octets() -> int | None:
    """This process's private data as RLIMIT_DATA counts it (Linux VmData), or None where
    /proc cannot say."""
    return _status_octets(b"VmData:")


def _status_octets(field: bytes) -> int | None:
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_share_octets(slots: int, *where) -> int | None:
    """Rule 6: what one worker's work on a message may take of the memory available now
    (core/notify.py `memory_available_octets`: the host's, or its control group's when
    that is tighter): an equal share for each of the `slots` workers. None where it cannot
    be read. Read for each job (a few small files), so that it follows what the other
    workers and processes hold: measured once, a worker started during a spike kept a
    small share for hours, and one started on an idle host a share the host no longer
    had. `where`: the /proc and cgroup directories to read instead (tests)."""
    from core.notify import memory_available_octets
    available = memory_available_octets(*where)
    return None if available is None else available // max(1, slots)


@contextmanager
def limited_memory(octets: int):
    """Rule 6: within the block, private data may grow by at most `octets`; yields the
    limit set (total octets), or None where none can be set. Raises nothing of its own."""
    current = None
    if resource is not None and threading.current_thread() is threading.main_thread():
        current = data_octets()
    if current is None:
        yield None
        return
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    soft = current + octets
    for bound in previous:                # an administrator's ulimit -d stays (soft or hard)
        if bound != resource.RLIM_INFINITY:
            soft = min(soft, bound)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, previous[1]))
    try:
        yield soft
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, previous)


async def run_in_worker(fn, *args, timeout_seconds: float = PROCESS_TIMEOUT_SECONDS,
                        inline: bool = False, worker: _SlotWorker | None = None):
    """fn(*args) in `worker`, a slot's own (rule 8), or else any of trio-parallel's."""
    try:
        with trio.fail_after(timeout_seconds):
            if inline:
                return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
            if worker is not None:
                return await worker.run_sync(fn, *args)
            return await trio_parallel.run_sync(fn, *args, kill_on_cancel=True)
    except trio.TooSlowError:
        raise WorkerTimeout(f"worker stopped after {timeout_seconds:g} s") from None
    except trio_parallel.BrokenWorkerError as exc:
        raise WorkerCrashed(f"worker process died: {exc}") from None


def _worker_started(fn) -> None:
    """In a new worker: nothing but be started, `fn`'s module imported (rule 8)."""
    del fn


_settled: list[int] = []            # in a worker: its memory after its first batch (rule 9)


def _settle() -> bool:
    """Rule 9, in the worker after each batch: True when it should be retired. Memory here
    is what the worker holds in RAM of its own (Linux RssAnon): what a trim gives back
    shows there, where VmData (rule 6's measure) keeps the address space a fragmented heap
    still spans (review21e R2)."""
    now = _status_octets(b"RssAnon:")
    if now is None:
        return False
    if not _settled:
        # trimmed first: a large first batch (a message run again alone in a new worker
        # after a crash) would otherwise set the mark at its peak (review21e R1)
        _trim()
        _settled.append(_status_octets(b"RssAnon:") or now)
        return False
    if now - _settled[0] <= TRIM_AT_OCTETS:
        return False
    _trim()
    now = _status_octets(b"RssAnon:") or now
    return now - _settled[0] > RETIRE_GROWTH_OCTETS


def _trim() -> None:
    """The allocator's free memory back to the system, where glibc is the allocator."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _SlotWorker:
    """A slot's worker process of its own (rule 8): a worker context that holds the one
    worker, with a limiter of its own, since a slot runs one job at a time whatever
    trio-parallel's default limiter (the core count) allows all callers together."""

    def __init__(self, context):
        self.context = context
        self.limiter = trio.CapacityLimiter(1)

    async def run_sync(self, fn, *args):
        return await self.context.run_sync(fn, *args, kill_on_cancel=True,
                                           limiter=self.limiter)

    def has_worker(self) -> bool:
        """Whether the slot has a live idle worker (dead ones are dropped on asking)."""
        return self.context.statistics().idle_workers > 0


@asynccontextmanager
async def _slot_worker():
    """Rules 8 and 9; the worker ends with the block (the core's stop), ignoring the stop
    signals as every worker does (rule 5)."""
    opened = trio_parallel.open_worker_context(
        idle_timeout=math.inf, init=_ignore_stop_signals, grace_period=WORKER_STOP_SECONDS)
    context = await opened.__aenter__()
    try:
        yield _SlotWorker(context)
    finally:
        # closed as after a normal end, whatever ended the block, which goes on as it was
        try:
            await opened.__aexit__(None, None, None)
        except trio_parallel.BrokenWorkerError:
            # a worker that did not end when told to was killed, or one had died: the stop
            # goes on, without trio-parallel's "Graceful shutdown failed" (rule 5)
            pass


def run_batch(fn, items: list[tuple], shared: tuple) -> tuple[list[tuple[bool, object]], bool]:
    """In the worker: fn(*item, *shared) for each item -> (True, result) | (False, error),
    and whether the worker should be retired for its memory (rule 9)."""
    results = []
    for item in items:
        try:
            results.append((True, fn(*item, *shared)))
        except Exception as exc:          # rule 4: this item's own failure
            results.append((False, exc))
    return results, _settle()


class _Job:
    __slots__ = ("item", "shared", "solo", "large", "order", "done", "outcome", "abandoned")

    def __init__(self, item: tuple, shared: tuple, solo: bool, order: int):
        self.item, self.shared, self.solo = item, shared, solo
        self.order = order                  # rule 7: arrival, compared across the lanes
        self.large = solo                   # rule 7: its lane, kept when run again alone
        self.done = trio.Event()
        self.outcome: tuple[bool, object] | None = None
        self.abandoned = False

    def finish(self, ok: bool, value) -> None:
        self.outcome = (ok, value)
        self.done.set()


def _head(queue: deque[_Job]) -> _Job | None:
    """The first job of `queue` still wanted; abandoned ones before it leave the queue."""
    while queue and queue[0].abandoned:
        queue.popleft()
    return queue[0] if queue else None


class WorkerBatcher:
    """`await call(item, shared, solo=...)` = fn(*item, *shared) in a worker process, with
    the batching of rule 4 and the lanes of rule 7. `run` (in a nursery) keeps one
    dispatcher per worker slot."""

    def __init__(self, fn, *, timeout_seconds: float = PROCESS_TIMEOUT_SECONDS,
                 inline: bool = False, slots: int | None = None):
        self.fn = fn
        self.timeout_seconds = timeout_seconds
        self.inline = inline
        self.slots = slots or os.cpu_count() or 1
        self.running = False
        self.batches = 0            # round trips made (tests and benchmarks read it)
        self.retired = 0            # workers retired for their memory (rule 9; tests read it)
        self.large_slots = max(1, self.slots - 1)   # rule 7, while small mail waits
        self.large_running = 0
        self._small: deque[_Job] = deque()  # rule 7: one queue per lane, each in arrival
        self._large: deque[_Job] = deque()  # order; abandoned jobs dropped at their heads
        self._arrivals = itertools.count()
        self._ready = trio.Event()

    @property
    def small_waiting(self) -> int:
        """Small jobs queued for a slot (rule 7; tests read it)."""
        return sum(1 for job in self._small if not job.abandoned)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.slots):
                    nursery.start_soon(self._dispatch)
                self.running = True
                task_status.started()
        finally:
            self.running = False

    async def call(self, item: tuple, shared: tuple, *, solo: bool = False):
        job = _Job(item, shared, solo, next(self._arrivals))
        (self._large if job.large else self._small).append(job)
        self._ready.set()
        try:
            await job.done.wait()
        except BaseException:
            job.abandoned = True    # still queued: skipped; already running: result dropped
            raise
        ok, value = job.outcome
        if not ok:
            raise value
        return value

    def _next_batch(self) -> list[_Job]:
        """The oldest job this slot may take (rule 7), with the small jobs of the same
        shared arguments queued after it (rule 4). Only the heads of the two queues are
        looked at, and only the jobs taken (or abandoned) leave them."""
        small, large = _head(self._small), _head(self._large)
        if large is not None and (small is None or (
                large.order < small.order and self.large_running < self.large_slots)):
            return [self._large.popleft()]
        if small is None:
            return []
        batch = [self._small.popleft()]
        while not small.solo and len(batch) < MAX_BATCH:
            job = _head(self._small)
            if job is None or job.solo or job.shared is not small.shared:
                break
            batch.append(self._small.popleft())
        return batch

    async def _start_worker(self, worker: _SlotWorker | None) -> None:
        """Have this slot's worker process started, outside any job's limit (rule 8).
        A host that cannot start one in WORKER_START_SECONDS leaves it to the next job."""
        if worker is None:
            return
        with trio.move_on_after(WORKER_START_SECONDS):
            try:
                await worker.run_sync(_worker_started, self.fn)
            except Exception:
                # a worker that dies or cannot import: the next job meets it and is charged
                # as before (a crash, rule 1); never this slot's end, nor the core's
                pass

    async def _dispatch(self) -> None:
        if self.inline:
            await self._serve(None)
            return
        while True:                         # a new context for each worker retired (rule 9)
            async with _slot_worker() as worker:
                await self._serve(worker)

    async def _serve(self, worker: _SlotWorker | None) -> None:
        """Run jobs until the worker is to be retired (rule 9)."""
        while True:
            if worker is not None and not worker.has_worker():
                # rule 8, before the job is taken: not inside _run, where a large job's
                # slot would count as running one (rule 7) through the start
                await self._start_worker(worker)
            batch = self._next_batch()
            if batch:
                if await self._run(batch, worker) and worker is not None:
                    self.retired += 1
                    return
                continue
            # both queues are empty (rule 7: a waiting job always fits a free slot), so
            # only a call() or a batch given back (rule 4) brings work: each sets _ready
            if self._ready.is_set():        # consumed: the next call() sets a fresh one,
                self._ready = trio.Event()  # and every idle dispatcher waits on the same
            await self._ready.wait()

    async def _run(self, batch: list[_Job], worker: _SlotWorker | None) -> bool:
        """True when the worker is to be retired (rule 9)."""
        self.batches += 1
        if not batch[0].large:
            return await self._round_trip(batch, worker)
        self.large_running += 1             # rule 7
        try:
            return await self._round_trip(batch, worker)
        finally:
            self.large_running -= 1

    async def _round_trip(self, batch: list[_Job], worker: _SlotWorker | None) -> bool:
        try:
            results, grown = await run_in_worker(run_batch, self.fn, [job.item for job in batch],
                                          batch[0].shared, timeout_seconds=self.timeout_seconds,
                                          inline=self.inline, worker=worker)
        except Exception as exc:            # the worker died, timed out or could not be fed
            if len(batch) == 1:
                batch[0].finish(False, exc)
            else:
                for job in reversed(batch):     # rule 4: each again alone, first in line
                    job.solo = True
                    (self._large if job.large else self._small).appendleft(job)
                self._ready.set()
            return False
        for job, (ok, value) in zip(batch, results):
            job.finish(ok, value)
        return grown
