"""WorkerBatcher (core/pipeline/workers.py rule 4): items that queue up share a worker round
trip, failures stay with their item, and a batch that kills its worker is split so that only
the item that fails alone is charged."""

from __future__ import annotations

import os
import time

import pytest
import trio

from core.pipeline.workers import MAX_BATCH, WorkerBatcher, WorkerCrashed, WorkerTimeout


def tag(item: str, suffix: str) -> str:
    """The function the workers run: its own result, a failure, a crash or a hang."""
    if item == "raise":
        raise ValueError("bad item")
    if item == "crash":
        os._exit(70)                 # the worker process dies with the whole batch
    if item == "hang":
        time.sleep(3600)
    time.sleep(0.01)
    return f"{item}{suffix}"


async def _call_all(batcher, items, shared=("!",), solo=()):
    results: dict[str, object] = {}

    async def one(item):
        try:
            results[item] = await batcher.call((item,), shared, solo=item in solo)
        except Exception as exc:
            results[item] = exc

    async with trio.open_nursery() as nursery:
        for item in items:
            nursery.start_soon(one, item)
    return results


async def test_items_that_queue_up_share_round_trips(nursery):
    batcher = WorkerBatcher(tag, inline=True, slots=1)
    await nursery.start(batcher.run)
    items = [f"m{i}" for i in range(20)]
    results = await _call_all(batcher, items)
    assert results == {item: f"{item}!" for item in items}
    # batches of at most MAX_BATCH, far fewer round trips than items
    assert -(-len(items) // MAX_BATCH) <= batcher.batches < len(items) / 2


async def test_a_lone_item_goes_at_once_and_solo_items_go_alone(nursery):
    batcher = WorkerBatcher(tag, inline=True, slots=1)
    await nursery.start(batcher.run)
    assert await batcher.call(("a",), ("!",)) == "a!" and batcher.batches == 1
    results = await _call_all(batcher, ["b", "c", "d"], solo={"b", "c", "d"})
    assert results == {"b": "b!", "c": "c!", "d": "d!"} and batcher.batches == 4


async def test_items_with_other_shared_arguments_are_not_mixed(nursery):
    batcher = WorkerBatcher(tag, inline=True, slots=1)
    await nursery.start(batcher.run)
    first, second = ("!",), ("?",)
    async with trio.open_nursery() as calls:
        results = {}

        async def one(item, shared):
            results[item] = await batcher.call((item,), shared)
        for i in range(6):
            calls.start_soon(one, f"x{i}", first if i % 2 else second)
    assert results == {f"x{i}": f"x{i}{'!' if i % 2 else '?'}" for i in range(6)}


async def test_an_exception_is_its_items_alone(nursery):
    batcher = WorkerBatcher(tag, inline=True, slots=1)
    await nursery.start(batcher.run)
    results = await _call_all(batcher, ["a", "raise", "b", "c"])
    assert isinstance(results["raise"], ValueError)
    assert (results["a"], results["b"], results["c"]) == ("a!", "b!", "c!")


async def test_a_cancelled_caller_is_skipped(nursery):
    batcher = WorkerBatcher(tag, inline=True, slots=1)
    await nursery.start(batcher.run)
    with trio.move_on_after(0):
        await batcher.call(("gone",), ("!",))
    assert await batcher.call(("here",), ("!",)) == "here!"


async def test_a_crash_in_a_batch_is_charged_to_the_crashing_item_only(nursery):
    batcher = WorkerBatcher(tag, slots=1)            # real worker processes
    await nursery.start(batcher.run)
    await batcher.call(("warm",), ("!",))           # a worker is up: the rest queue behind
    items = ["a", "b", "crash", "c", "d"]
    results = await _call_all(batcher, items)
    assert isinstance(results["crash"], WorkerCrashed)
    assert {k: v for k, v in results.items() if k != "crash"} == {
        "a": "a!", "b": "b!", "c": "c!", "d": "d!"}


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
async def test_a_hang_in_a_batch_times_out_the_hanging_item_only(nursery):
    batcher = WorkerBatcher(tag, slots=1, timeout_seconds=2)
    await nursery.start(batcher.run)
    await batcher.call(("warm",), ("!",))
    results = await _call_all(batcher, ["a", "hang", "b"])
    assert isinstance(results["hang"], WorkerTimeout)
    assert (results["a"], results["b"]) == ("a!", "b!")
