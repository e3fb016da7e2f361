"""Memory per message (ARCHITECTURE invariant 3; core/pipeline/run.py rule 5, workers.py
rule 6), with real worker processes and the real limit (RLIMIT_DATA).

Regression, hostile18 B1: nothing bounded a worker's memory. A 49 MB message took a worker
to 1.2 GB; where the OOM killer then picks the worker, the message crashed it three times
and was held as a suspect message, with no event naming memory.

No real message can exceed the derived limit (it is made from the worst growth measured),
so the work that needs more is the test hook of run.py rule 2 (`hoard_if_marked`: 1.5 GB,
where size.max_mb 1 and container.max_total_mb 1 allow 292 MB more than the worker holds).
"""

from __future__ import annotations

import os
import resource

import pytest
import trio
import trio_parallel

from core.app import run_core
from core.pipeline.run import MEMORY_LIMIT_RULE, memory_allowance_octets, process_message
from shared.events import Action
from tests.integration.test_pipeline_e2e import FAULTS, _held, _mail, _send, _until
from tests.support.core import routed_home
from tests.support.waiting import events_of
from tests.unit.pipeline.support import message, settings

HOARD = FAULTS + ":hoard_if_marked"
SMALL_LIMITS = {"size__enabled": True, "size__max_mb": 1, "container__max_total_mb": 1}
MIB = 1 << 20


def test_the_allowance_follows_the_settings_that_bound_a_message():
    defaults = settings()
    assert memory_allowance_octets(defaults, 10_000) == (256 + 32 * 50 + 4 * 200) * MIB
    small = settings(**SMALL_LIMITS)
    assert memory_allowance_octets(small, 10_000) == (256 + 32 + 4) * MIB
    # size.enabled off lets a message past size.max_mb: its own size counts then
    assert memory_allowance_octets(small, 10 * MIB) == (256 + 320 + 4) * MIB


def _data_limit():
    return resource.getrlimit(resource.RLIMIT_DATA)


@pytest.mark.trio
async def test_a_job_over_the_limit_is_unprocessable_and_the_worker_goes_on(tmp_path):
    marked = tmp_path / "marked.eml"
    marked.write_bytes(message("big", headers={"X-Test-Fault": "yes"}))
    plain = tmp_path / "plain.eml"
    plain.write_bytes(message("plain"))
    snapshot = settings(**SMALL_LIMITS)
    one = trio.CapacityLimiter(1)          # one worker process: the same one every time
    with trio.fail_after(60):
        async with trio_parallel.open_worker_context() as context:
            pid = await context.run_sync(os.getpid, limiter=one)
            before = await context.run_sync(_data_limit, limiter=one)
            outcome = await context.run_sync(process_message, str(marked), {}, snapshot,
                                             HOARD, limiter=one)
            assert [(f.rule, f.event, f.action) for f in outcome.findings] == [
                (MEMORY_LIMIT_RULE, "scan_error", "hold")]
            assert "limit per message of 292 MB" in outcome.findings[0].reason
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
    home = routed_home(tmp_path, sink, scan__unprocessable=unprocessable,
                       **SMALL_LIMITS)
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
    assert "memory" in error["info"] and "292 MB" in error["info"]
    assert error["subject"] is None or "hoard" in error["subject"]
    core.cancel_scope.cancel()
