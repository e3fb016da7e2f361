"""Memory per message (ARCHITECTURE invariant 3; core/pipeline/run.py rule 5, workers.py
rule 6), with real worker processes and the real limit (RLIMIT_DATA).

Regression, hostile18 B1: nothing bounded a worker's memory. A 49 MB message took a worker
to 1.2 GB; where the OOM killer then picks the worker, the message crashed it three times
and was held as a suspect message, with no event naming memory.

No real message can exceed the derived limit (it is made from the worst growth measured),
so the work that needs more is the test hook of run.py rule 2 (`hoard_if_marked`: 1.5 GB,
where the default settings allow a small message about 256 MB more than the worker holds).

Review18 R5b/T2: the allowance was sized by size.max_mb, so every message got 2,656 MB with
the defaults and the limit could not fire before the OOM killer on ordinary hosts; the tests
reached it only with size.max_mb 1 and container.max_total_mb 1. Now it is sized by the
message, capped by the worker's share of the memory available, and fires with the defaults.
R5c: an administrator's lower soft `ulimit -d` was raised for the job.
Review2 R3/D3: the share was measured once per worker and could fall below the headroom;
it was divided by os.cpu_count() whatever the batcher's slots.
"""

from __future__ import annotations

import os
import re
import resource

import pytest
import trio
import trio_parallel

from core.app import run_core
from core.notify import memory_available_octets
from core.pipeline import run, workers
from core.pipeline.run import (MEMORY_LIMIT_RULE, memory_allowance_octets, memory_limit_octets,
                               process_message)
from core.pipeline.service import FilteringPipeline
from core.pipeline.workers import RUNTIME_WORKER_SLOTS
from shared.events import Action
from tests.integration.test_pipeline_e2e import FAULTS, _held, _mail, _send, _until
from tests.support.core import routed_home
from tests.support.waiting import events_of
from tests.unit.pipeline.support import message, settings
from tests.unit.test_memory_available import _group, _proc

HOARD = FAULTS + ":hoard_if_marked"
MIB = 1 << 20


def test_the_allowance_follows_the_message_and_what_it_may_extract():
    defaults = settings()
    # a small message: the headroom, whatever size.max_mb says (it was 2,656 MB)
    assert 256 * MIB < memory_allowance_octets(defaults, 10_000) < 261 * MIB
    assert memory_allowance_octets(settings(size__max_mb=2047), 10_000) \
        == memory_allowance_octets(defaults, 10_000)
    # 1 MB may extract 100 MB (container.max_ratio), 49 MB the 200 of container.max_total_mb
    assert memory_allowance_octets(defaults, MIB) == (256 + 32 + 4 * 100) * MIB
    assert memory_allowance_octets(defaults, 49 * MIB) == (256 + 32 * 49 + 4 * 200) * MIB
    assert memory_allowance_octets(settings(container__max_total_mb=1), 49 * MIB) \
        == (256 + 32 * 49 + 4) * MIB


def _slots(count: int) -> dict:
    """The default settings as the core hands them to its `count` workers."""
    return {**settings(), RUNTIME_WORKER_SLOTS: count}


def test_the_limit_is_at_most_the_workers_share_of_the_memory_available(tmp_path):
    proc = _proc(tmp_path, available_kib=8 << 20, total_kib=16 << 20, group=None)
    where = (proc, tmp_path / "cgroup")
    # 8 GB for 2 workers: the 49 MB message's own 2,624 MB
    assert memory_limit_octets(_slots(2), 49 * MIB, *where) == (
        2624 * MIB, "from the message's size and the container limits")
    # 1.2 GB for 2 workers, a machine smaller than this one
    _proc(tmp_path, available_kib=1200 << 10, total_kib=2 << 20, group=None)
    assert memory_limit_octets(_slots(2), 49 * MIB, *where) == (
        600 * MIB, "this worker's share of the memory available")
    # review2 D3: the share is the batcher's slots', not a second os.cpu_count()
    assert memory_limit_octets(_slots(4), 49 * MIB, *where)[0] == 300 * MIB
    assert workers.memory_share_octets(3, *where) == 400 * MIB
    # a small message is given its allowance under either
    assert memory_limit_octets(_slots(2), 1000, *where)[0] < 257 * MIB


def test_the_share_follows_the_memory_available_from_one_job_to_the_next(tmp_path):
    """Review2 R3: the share was measured at a worker's first job and kept for the life of
    the process: one started while another worker held 1.2 GB kept a small limit for
    hours, and one started on an idle host a share the host no longer had."""
    proc = _proc(tmp_path, available_kib=1 << 20, total_kib=16 << 20, group=None)
    where = (proc, tmp_path / "cgroup")
    assert memory_limit_octets(_slots(2), 49 * MIB, *where)[0] == 512 * MIB   # a spike
    _proc(tmp_path, available_kib=12 << 20, total_kib=16 << 20, group=None)  # it ended
    assert memory_limit_octets(_slots(2), 49 * MIB, *where)[0] == 2624 * MIB
    _proc(tmp_path, available_kib=2 << 20, total_kib=16 << 20, group=None)   # others grew
    assert memory_limit_octets(_slots(2), 49 * MIB, *where)[0] == 1024 * MIB


def test_a_share_below_the_headroom_gives_the_headroom_and_says_the_machine_is_small(
        tmp_path):
    """Review2 R3: 400 MB available for 2 workers made a 200 MB limit, under the headroom a
    definitions reload beside the old set needs, so every message, the smallest too, was
    held as pipeline.memory_limit. The headroom stays (as without the share) and the
    finding's reason names the shortage."""
    proc = _proc(tmp_path, available_kib=400 << 10, total_kib=1 << 20, group=None)
    where = (proc, tmp_path / "cgroup")
    for octets in (1000, 49 * MIB):
        limit, source = memory_limit_octets(_slots(2), octets, *where)
        assert limit == run.MEMORY_HEADROOM_MIB * MIB
        assert source == ("the least any message is given; this worker's share of the "
                          "memory available is only 200 MB: too little memory for 2 "
                          "scanning workers")


def test_the_worker_settings_copy_carries_the_batchers_slots():
    pipeline = FilteringPipeline(events=None)
    pipeline.batcher = workers.WorkerBatcher(process_message, slots=3)
    assert pipeline._shared_arguments(settings())[0][RUNTIME_WORKER_SLOTS] == 3


def test_the_memory_available_is_the_tightest_of_host_and_control_group(tmp_path):
    proc = _proc(tmp_path, available_kib=3 << 20, total_kib=4 << 20, group=None)
    assert memory_available_octets(proc, tmp_path / "cgroup") == 3 << 30
    proc = _proc(tmp_path / "b", available_kib=3 << 20, total_kib=4 << 20,
                 group="/system.slice/mailmoat.service")
    cgroups = tmp_path / "b" / "cgroup"
    _group(cgroups, "/system.slice/mailmoat.service", str(1 << 30), current=768 << 20)
    assert memory_available_octets(proc, cgroups) == 256 << 20
    assert memory_available_octets(tmp_path / "none", tmp_path / "none") is None


def test_an_administrators_lower_data_limit_stays_for_the_job():
    """Run on the test's own main thread (workers.py rule 6 sets the limit only there),
    under a soft `ulimit -d` 4 GB over what the process holds; put back at the end."""
    before = resource.getrlimit(resource.RLIMIT_DATA)
    soft = workers.data_octets() + (4 << 30)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, before[1]))
    try:
        with workers.limited_memory(1 << 40) as limit:
            assert limit == soft
            assert resource.getrlimit(resource.RLIMIT_DATA)[0] == soft
        with workers.limited_memory(256 * MIB) as limit:
            assert limit < soft
        assert resource.getrlimit(resource.RLIMIT_DATA) == (soft, before[1])
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, before)


def _data_limit():
    return resource.getrlimit(resource.RLIMIT_DATA)


@pytest.mark.trio
async def test_a_job_over_the_limit_is_unprocessable_and_the_worker_goes_on(tmp_path):
    marked = tmp_path / "marked.eml"
    marked.write_bytes(message("big", headers={"X-Test-Fault": "yes"}))
    plain = tmp_path / "plain.eml"
    plain.write_bytes(message("plain"))
    snapshot = settings()                  # the defaults (review18 T2)
    one = trio.CapacityLimiter(1)          # one worker process: the same one every time
    with trio.fail_after(60):
        async with trio_parallel.open_worker_context() as context:
            pid = await context.run_sync(os.getpid, limiter=one)
            before = await context.run_sync(_data_limit, limiter=one)
            outcome = await context.run_sync(process_message, str(marked), {}, snapshot,
                                             HOARD, limiter=one)
            assert [(f.rule, f.event, f.action) for f in outcome.findings] == [
                (MEMORY_LIMIT_RULE, "scan_error", "hold")]
            limit_mb = memory_limit_octets(snapshot, marked.stat().st_size)[0] // MIB
            assert f"limit per message of {limit_mb} MB" in outcome.findings[0].reason
            assert outcome.verdict.disposition == "hold"
            # the same process, its limit put back, scans the next message
            assert await context.run_sync(os.getpid, limiter=one) == pid
            assert await context.run_sync(_data_limit, limiter=one) == before
            outcome = await context.run_sync(process_message, str(plain), {}, snapshot,
                                             HOARD, limiter=one)
            assert outcome.findings == [] and outcome.verdict.disposition == "deliver"
            assert await context.run_sync(os.getpid, limiter=one) == pid


@pytest.mark.trio
@pytest.mark.parametrize("unprocessable", ["hold", "drop"])
async def test_a_message_over_the_limit_follows_scan_unprocessable_not_three_crashes(
        tmp_path, sink, nursery, unprocessable):
    home = routed_home(tmp_path, sink, scan__unprocessable=unprocessable)   # else defaults
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": HOARD}, task_status=task_status))
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, _mail("hoard", headers={"X-Test-Fault": "yes"}))
    await trio.to_thread.run_sync(_send, port, _mail("fine"))
    [delivered] = await trio.to_thread.run_sync(lambda: sink.wait_for(1, timeout=30))
    assert b"Subject: fine" in delivered.data
    if unprocessable == "hold":
        await _until(lambda: len(list(home.queue("hold").iterdir())) == 1, timeout=30)
        await _held(core, home)
        [held] = events_of(home, Action.HELD)
        assert held["rule"] != "suspect_message"
    else:
        await _until(lambda: events_of(home, Action.DROPPED), timeout=30)
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    [error] = events_of(home, Action.SCAN_ERROR)          # once, not three crashes
    assert error["rule"] == MEMORY_LIMIT_RULE
    assert re.search(r"limit per message of 25\d MB", error["info"])   # a small message's
    assert error["subject"] is None or "hoard" in error["subject"]
    core.cancel_scope.cancel()
