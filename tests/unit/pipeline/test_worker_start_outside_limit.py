"""A slot's worker process is started outside any job's time limit (core/pipeline/workers.py
rule 8; flake20 F1).

A new worker — the first of a slot, or the one after a job that timed out and was killed —
was started inside the next job's limit, so its process start and imports were charged to
that message: on a loaded host an ordinary message timed out three times and was held as
suspect. Here the job's module takes IMPORT_SECONDS to import, longer than the limit, and the
job itself takes no time: only a worker started outside the limit lets it through. Real
worker processes (trio-parallel).
"""

from __future__ import annotations

import os
import signal
import warnings

import pytest
import trio
import trio_parallel

from core.pipeline.workers import RETIRE_GROWTH_OCTETS, WorkerBatcher, WorkerTimeout
from tests.support.slow_import_job import HOARD_OCTETS, IMPORT_SECONDS, LITTER_OCTETS, job

# Under IMPORT_SECONDS: a worker started inside it times out whatever the host's speed; well
# over what the jobs themselves take (busy 0.5 s, a litter or hoard 0.2 s on a loaded host)
LIMIT = 1.5
assert LIMIT < IMPORT_SECONDS


@pytest.fixture(autouse=True)
def fresh_default_workers():
    """trio-parallel's default context afresh for each test: workers an earlier test left
    warm in it, the job's module imported, would hide a start inside a limit (review21a T1;
    the batcher's slots do not use it since a6f06f2, the code before did)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trio_parallel.configure_default_context()


def _pid(result: str) -> int:
    return int(result.rsplit(" in ", 1)[1])


async def test_the_first_job_of_a_slot_is_not_charged_for_its_workers_start(nursery):
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    assert (await batcher.call(("first",), ())).startswith("first in ")


async def test_the_job_after_a_hung_one_is_not_charged_for_the_new_workers_start(nursery):
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    await batcher.call(("first",), ())
    with pytest.raises(WorkerTimeout):
        await batcher.call(("hang",), ())
    with trio.fail_after(60):                   # a backstop
        assert (await batcher.call(("next",), ())).startswith("next in ")


async def test_a_slots_new_worker_stays_its_own(nursery):
    # With one worker cache for every slot, the worker started after the hung job's kill
    # was the other slot's idle one taken over, and two jobs at once then needed a start
    # inside one of their limits (review20g R2)
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=2)
    await nursery.start(batcher.run)
    with trio.fail_after(60):                   # a backstop
        await _both(batcher, "busy-1", "busy-2")
    with pytest.raises(WorkerTimeout):
        await batcher.call(("hang",), ())
    # time for the new worker's start (not asserted: later, the second job waits for the
    # first slot free, and passes all the same)
    await trio.sleep(IMPORT_SECONDS + 1)
    with trio.fail_after(60):
        done = await _both(batcher, "busy-3", "busy-4")
    assert [result.split(" in ")[0] for result in done] == ["busy-3", "busy-4"]


async def test_a_worker_that_died_idle_is_replaced_before_the_next_job(nursery):
    # the OOM killer or an administrator ends an idle worker: the next job must not start
    # one inside its limit (review21a R2)
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    first = _pid(await batcher.call(("first",), ()))
    os.kill(first, signal.SIGKILL)
    with trio.fail_after(60):                   # a backstop
        while _alive(first):
            await trio.sleep(0.05)
        assert _pid(await batcher.call(("next",), ())) != first


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_worker_that_kept_a_large_peak_is_replaced(nursery):
    # review21a D1: a worker keeps what it once held, for the core's whole life; one still
    # RETIRE_GROWTH_OCTETS past its first batch once its free memory is given back (a live
    # hoard is not free) ends, and its slot starts another outside the limit
    assert HOARD_OCTETS > RETIRE_GROWTH_OCTETS
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    with trio.fail_after(60):
        small = _pid(await batcher.call(("small",), ()))
        assert _pid(await batcher.call(("again",), ())) == small    # kept while it is small
        assert _pid(await batcher.call(("hoard",), ())) == small
        assert _pid(await batcher.call(("after",), ())) != small
    assert batcher.retired == 1


async def test_a_large_first_batchs_free_memory_is_handed_back(nursery):
    # review21e R1, R2: the mark set at a large first batch's peak (a message run again
    # alone in a new worker) kept it for good; the heap's free memory is handed back first
    batcher = WorkerBatcher(job, timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    with trio.fail_after(60):
        before = int((await batcher.call(("litter",), ())).split(" in ")[0])
        now = int((await batcher.call(("rss",), ())).split(" in ")[0])
        assert now - before < LITTER_OCTETS / 2, (before, now)
        # and again later, with the mark set: trimmed, not retired
        await batcher.call(("litter-again",), ())
        now = int((await batcher.call(("rss",), ())).split(" in ")[0])
        assert now - before < LITTER_OCTETS / 2, (before, now)
    assert batcher.retired == 0


async def _both(batcher, *items) -> list[str]:
    """The results of `items` called at once (each in a task of its own; solo: never
    batched into one round trip, workers.py rule 4)."""
    results: dict[str, str] = {}

    async def one(item):
        results[item] = await batcher.call((item,), (), solo=True)

    async with trio.open_nursery() as calls:
        for item in items:
            calls.start_soon(one, item)
    return [results[item] for item in items]


async def test_a_worker_that_cannot_start_ends_no_slot(nursery):
    # the start outside the limit must not turn an import error into the slot's (and the
    # core's) end: the job meets it, as it did before, and is charged with it
    batcher = WorkerBatcher(_unimportable_job(), timeout_seconds=LIMIT, slots=1)
    await nursery.start(batcher.run)
    with pytest.raises(Exception) as failed:
        await batcher.call(("first",), ())
    assert not isinstance(failed.value, trio.Cancelled)
    assert batcher.running


def _unimportable_job():
    """The job function under a module name no process can import: it cannot be sent to a
    worker (pickle looks it up by that name), as a job whose module is broken cannot."""
    fn = job.__class__(job.__code__, {"__name__": "tests.support.no_such_module"}, "job")
    fn.__module__ = "tests.support.no_such_module"
    fn.__qualname__ = "job"
    return fn
