"""WorkerBatcher lanes (core/pipeline/workers.py rule 7), with real worker processes: large
(solo) jobs run in at most slots - 1 slots, so a small job never waits behind large ones
for a worker, and a large job still starts however much small work keeps coming.

Large jobs hold their worker until the test releases them (files in tmp_path), so every
assertion is about which jobs run, never about how long anything took."""

from __future__ import annotations

import os
import time

import pytest
import trio
import trio_parallel

from core.pipeline.workers import WorkerBatcher

MAX_WAIT_SECONDS = 30        # a gate not released by then lets its job go (no worker left)


def gated(item: str, gates: str) -> str:
    """In the worker: mark `item` started; a large one then waits for its release."""
    open(os.path.join(gates, item + ".started"), "wb").close()
    if item.startswith("large"):
        release = os.path.join(gates, item + ".release")
        for _ in range(MAX_WAIT_SECONDS * 50):
            if os.path.exists(release):
                break
            time.sleep(0.02)
    return item + " done"


def _started(gates, item) -> bool:
    return (gates / (item + ".started")).exists()


def _release(gates, item) -> None:
    (gates / (item + ".release")).touch()


async def _batcher(nursery, slots: int) -> WorkerBatcher:
    # one worker process per slot, however many cores this machine has (the core's
    # batcher has one slot per core, as trio_parallel's default limiter has)
    limiter = trio_parallel.current_default_worker_limiter()
    limiter.total_tokens = max(limiter.total_tokens, slots)
    batcher = WorkerBatcher(gated, slots=slots, timeout_seconds=MAX_WAIT_SECONDS + 20)
    await nursery.start(batcher.run)
    return batcher


class Calls:
    """Calls in tasks of their own; `results` fills as they end."""

    def __init__(self, nursery, batcher, gates):
        self.nursery, self.batcher, self.shared = nursery, batcher, (str(gates),)
        self.results: dict[str, str] = {}

    def start(self, item: str) -> None:
        async def call():
            self.results[item] = await self.batcher.call((item,), self.shared,
                                                         solo=item.startswith("large"))
        self.nursery.start_soon(call)


@pytest.mark.parametrize("slots", [2, 3])
async def test_small_mail_passes_large_jobs_that_hold_all_slots_but_one(tmp_path, nursery,
                                                                        slots):
    batcher = await _batcher(nursery, slots)
    calls = Calls(nursery, batcher, tmp_path)
    large = [f"large-{i}" for i in range(slots)]      # one more than their lane takes
    for item in large:
        calls.start(item)
        await trio.sleep(0)                           # queued in this order
    calls.start("small")
    # Which comes first: the small job done, or every large job started (the FIFO of
    # before, where they took every slot and the small one waited for a release)
    with trio.fail_after(MAX_WAIT_SECONDS):
        while "small" not in calls.results and not all(_started(tmp_path, i) for i in large):
            await trio.sleep(0.01)
    assert calls.results == {"small": "small done"}
    # the large ones given a slot may not have begun in their worker yet (a worker process
    # starting on a loaded machine): wait for them, then the last must still be waiting
    with trio.fail_after(MAX_WAIT_SECONDS):
        while not all(_started(tmp_path, item) for item in large[:-1]):
            await trio.sleep(0.01)
    assert not _started(tmp_path, large[-1])
    assert batcher.large_running == slots - 1
    _release(tmp_path, large[0])                      # a large one ends: the next starts
    with trio.fail_after(MAX_WAIT_SECONDS):
        while not _started(tmp_path, large[-1]):
            await trio.sleep(0.01)
    for item in large:
        _release(tmp_path, item)
    with trio.fail_after(MAX_WAIT_SECONDS):
        while len(calls.results) < slots + 1:
            await trio.sleep(0.01)
    assert calls.results == {item: item + " done" for item in large + ["small"]}


async def test_a_stream_of_small_jobs_does_not_keep_a_large_one_from_starting(tmp_path,
                                                                              nursery):
    batcher = await _batcher(nursery, 2)
    calls = Calls(nursery, batcher, tmp_path)
    calls.start("large-first")                        # takes the large lane
    with trio.fail_after(MAX_WAIT_SECONDS):
        while not _started(tmp_path, "large-first"):
            await trio.sleep(0.01)
    calls.start("large-waiting")                      # waits for the lane
    sent = 0

    async def keep_small_jobs_queued(count: int) -> None:
        # always more small jobs waiting than the free slot takes at once (a batch)
        nonlocal sent
        target = sent + count
        while sent < target:
            if sent - sum(1 for k in calls.results if k.startswith("small")) < 12:
                calls.start(f"small-{sent}")
                sent += 1
            await trio.sleep(0.001)

    await keep_small_jobs_queued(40)                  # small mail flows past both
    assert not _started(tmp_path, "large-waiting")
    _release(tmp_path, "large-first")
    async with trio.open_nursery() as stream:
        stream.start_soon(keep_small_jobs_queued, 1_000_000)
        with trio.fail_after(MAX_WAIT_SECONDS):         # a starved one never starts
            while not _started(tmp_path, "large-waiting"):
                await trio.sleep(0.01)
        stream.cancel_scope.cancel()              # it started with the stream still on
    _release(tmp_path, "large-waiting")
    with trio.fail_after(MAX_WAIT_SECONDS):
        while len(calls.results) < sent + 2:
            await trio.sleep(0.01)
    assert calls.results["large-waiting"] == "large-waiting done"
