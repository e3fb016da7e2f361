"""WorkerBatcher lanes (core/pipeline/workers.py rule 7), with real worker processes: while
small jobs wait, large (solo) jobs run in at most slots - 1 slots, so a small job never
waits behind large ones for more than one job's end; while none waits, large jobs take
every slot (work-conserving, review2 R5); and a large job still starts however much small
work keeps coming after it.

Jobs named large-* or held-* hold their worker until the test releases them (files in
tmp_path), so every assertion is about which jobs run, never about how long anything took."""

from __future__ import annotations

import os
import time

import pytest
import trio
import trio.testing

from core.pipeline.workers import WorkerBatcher
from tests.support.waiting import until

MAX_WAIT_SECONDS = 30        # a gate not released by then lets its job go (no worker left)


def gated(item: str, gates: str) -> str:
    """In the worker: mark `item` started; a large or held one then waits for its release."""
    open(os.path.join(gates, item + ".started"), "wb").close()
    if item.startswith(("large", "held")):
        release = os.path.join(gates, item + ".release")
        for _ in range(MAX_WAIT_SECONDS * 50):
            if os.path.exists(release):
                break
            time.sleep(0.02)
    return item + " done"


def _started(gates, item) -> bool:
    return (gates / (item + ".started")).exists()


def _release(gates, *items) -> None:
    for item in items:
        (gates / (item + ".release")).touch()


async def _first_started(gates, *items) -> str:
    """Which of `items` begins first in a worker (each may be the one a free slot takes)."""
    return next(i for i in await until(lambda: [i for i in items if _started(gates, i)],
                                       timeout=MAX_WAIT_SECONDS))


def _batcher(slots: int) -> WorkerBatcher:
    # one worker process per slot, however many cores this machine has (workers.py rule 8)
    return WorkerBatcher(gated, slots=slots, timeout_seconds=MAX_WAIT_SECONDS + 20)


class Calls:
    """Calls in tasks of their own, queued in the order given; `results` fills as they
    end."""

    def __init__(self, nursery, batcher, gates):
        self.nursery, self.batcher, self.shared = nursery, batcher, (str(gates),)
        self.results: dict[str, str] = {}

    async def queue(self, *items: str) -> None:
        for item in items:
            async def call(item=item):
                self.results[item] = await self.batcher.call((item,), self.shared,
                                                             solo=item.startswith("large"))
            self.nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()     # queued before the next one

    async def all_done(self, *items: str) -> None:
        await until(lambda: all(i in self.results for i in items), timeout=MAX_WAIT_SECONDS)
        assert {i: self.results[i] for i in items} == {i: i + " done" for i in items}


@pytest.mark.parametrize("slots", [2, 3])
async def test_a_small_job_queued_before_the_last_slot_is_taken_gets_it(tmp_path, nursery,
                                                                         slots):
    batcher = _batcher(slots)
    calls = Calls(nursery, batcher, tmp_path)
    large = [f"large-{i}" for i in range(slots)]      # one more than their lane takes
    await calls.queue(*large, "held-small")           # all queued before any slot is free
    await nursery.start(batcher.run)
    # the FIFO of before gave every slot to a large job, the small one waiting for a release
    assert await _first_started(tmp_path, "held-small", large[-1]) == "held-small"
    await until(lambda: all(_started(tmp_path, item) for item in large[:-1]),
                timeout=MAX_WAIT_SECONDS)
    assert batcher.large_running == slots - 1 and not _started(tmp_path, large[-1])
    _release(tmp_path, "held-small")
    # no small job waits: the last large one takes the free slot, with its lane full (27ed2c9
    # kept that slot idle until a large job ended)
    await until(lambda: _started(tmp_path, large[-1]), timeout=MAX_WAIT_SECONDS)
    assert batcher.large_running == slots
    _release(tmp_path, *large)
    await calls.all_done(*large, "held-small")


@pytest.mark.parametrize("slots", [2, 3])
async def test_large_jobs_with_no_small_mail_take_every_slot_and_a_small_one_the_next(
        tmp_path, nursery, slots):
    batcher = _batcher(slots)
    await nursery.start(batcher.run)
    calls = Calls(nursery, batcher, tmp_path)
    large = [f"large-{i}" for i in range(slots + 1)]  # one more than there are slots
    await calls.queue(*large)
    # every slot runs a large job (27ed2c9: slots - 1, one slot idle with work waiting)
    await until(lambda: all(_started(tmp_path, item) for item in large[:-1]),
                timeout=MAX_WAIT_SECONDS)
    assert batcher.large_running == slots and not _started(tmp_path, large[-1])
    # a small job arriving now waits for the first job to end, and that slot is its,
    # though the last large job came earlier
    await calls.queue("held-small")
    _release(tmp_path, large[0])
    assert await _first_started(tmp_path, "held-small", large[-1]) == "held-small"
    assert batcher.large_running == slots - 1
    _release(tmp_path, "held-small")                  # no small job waits: the last goes
    await until(lambda: _started(tmp_path, large[-1]), timeout=MAX_WAIT_SECONDS)
    _release(tmp_path, *large)
    await calls.all_done(*large, "held-small")


async def test_small_jobs_pass_a_waiting_large_one_but_later_ones_do_not_keep_it_waiting(
        tmp_path, nursery):
    batcher = _batcher(2)
    await nursery.start(batcher.run)
    calls = Calls(nursery, batcher, tmp_path)
    await calls.queue("large-first", "held-small-0")  # a slot each
    await until(lambda: _started(tmp_path, "large-first") and _started(tmp_path, "held-small-0"),
                timeout=MAX_WAIT_SECONDS)
    passing = [f"small-{i}" for i in range(1, 6)] + ["held-small-6"]   # one batch
    await calls.queue("large-waiting", *passing)
    # small mail that came after it flows past the waiting large one (its lane is full)
    _release(tmp_path, "held-small-0")
    assert await _first_started(tmp_path, "held-small-6", "large-waiting") == "held-small-6"
    assert all(_started(tmp_path, item) for item in passing)
    # more small mail keeps coming, but when the large lane frees, the older large job
    # takes it: no stream of later small jobs starves it
    later = [f"small-{i}" for i in range(7, 11)]
    await calls.queue(*later)
    _release(tmp_path, "large-first")
    assert await _first_started(tmp_path, "large-waiting", later[0]) == "large-waiting"
    _release(tmp_path, "large-waiting", "held-small-6")
    await calls.all_done("large-first", "held-small-0", "large-waiting", *passing, *later)
