"""Small mail is taken up by the queue manager while more large messages wait for a scanning
worker than it has tasks (core/spool/manager.py rule 13). Before, FAST_WORKERS (16) tasks
each took one fast/ id and waited for the pipeline: with more large messages than that, all
16 sat waiting for a worker slot for a large message and a small one that came after them
waited in the channel until a large one ended, whatever the scanning workers' lanes
(core/pipeline/workers.py rule 7) would have given it.

The whole core with real worker processes: every large message holds its worker until the
test lets it go (pipeline_faults.py gate_if_marked), so the assertions are about which
message starts in a worker first, never about time. The small message is gated as well, so
that its start is seen, then let go and delivered while every large one still waits or holds
its worker. Three ways a large message reaches the manager: announced by the listener with
its envelope, found in fast/ at start (the rescan), announced by its id alone (as a hold
reprocess or a retry announces it). And with lanes of one task and a channel of two ids,
large messages past a full large lane wait in fast/ and none is lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from core.app import run_core
from core.pipeline.service import BATCH_MESSAGE_OCTETS
from core.spool.manager import FAST_WORKERS, LARGE_WORKERS
from shared.spool import Spool
from tests.integration.test_lane18_small_mail_first import FAULTS, _mail, _send, _subjects
from tests.support.core import routed_home
from tests.support.spool import put_message
from tests.support.waiting import until

pytestmark = pytest.mark.trio

LARGE = max(FAST_WORKERS, LARGE_WORKERS) + 4   # more than either lane's tasks take up
LINE = "a large message's text, line after line of it\r\n"
BODY = LINE * (BATCH_MESSAGE_OCTETS // len(LINE) + 100)


def _started(gate: Path) -> bool:
    return Path(f"{gate}.started").exists()


def _release(*gates: Path) -> None:
    for gate in gates:
        Path(f"{gate}.release").touch()


def _skip_with_one_slot() -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one worker slot: the order is the arrival order (workers.py rule 7)")


async def _start_core(home, nursery):
    return await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":gate_if_marked"},
        task_status=task_status))


async def _small_goes_first(core, sink, gates: list[Path], small: Path) -> None:
    """The small message is taken up while the large ones wait, takes the first worker
    freed (or a free one), and is delivered while every other large one waits or holds its
    worker; then every message is let go and delivered."""
    batcher = core.queue.pipeline.batcher       # the core's WorkerBatcher
    try:
        await until(lambda: _started(small) or batcher.small_waiting, timeout=30)
    except trio.TooSlowError:
        pytest.fail(f"the small message was not taken up: {sum(map(_started, gates))} "
                    f"large messages hold the workers and the rest wait before it")
    # every worker now runs a large message, or the small one has one
    await until(lambda: _started(small) or sum(map(_started, gates)) == batcher.slots,
                timeout=30)
    released = set()
    if not _started(small):
        running = [g for g in gates if _started(g)]
        _release(running[0])
        released.add(running[0].name.replace("-", " "))
        # the worker freed is the small message's, before any large one that waits
        newly = lambda: [g for g in gates if g not in running and _started(g)]  # noqa: E731
        await until(lambda: _started(small) or newly(), timeout=30)
        assert _started(small) and not newly()
    _release(small)
    await until(lambda: "small" in _subjects(sink), timeout=30)
    assert _subjects(sink) <= {"small"} | released
    _release(*gates)
    await trio.to_thread.run_sync(lambda: sink.wait_for(len(gates) + 1, timeout=120))
    assert _subjects(sink) == {"small"} | {f"large {i}" for i in range(len(gates))}
    core.cancel_scope.cancel()


async def test_small_mail_sent_after_many_large_messages_is_taken_up_and_delivered_first(
        tmp_path, sink, nursery):
    _skip_with_one_slot()
    core = await _start_core(routed_home(tmp_path, sink), nursery)
    port = core.smtp_addresses[0][1]
    gates = [tmp_path / f"large-{i}" for i in range(LARGE)]
    small = tmp_path / "small"
    await trio.to_thread.run_sync(lambda: _send(
        port, *[_mail(f"large {i}", BODY, gate) for i, gate in enumerate(gates)]))
    batcher = core.queue.pipeline.batcher
    await until(lambda: sum(map(_started, gates)) == batcher.slots, timeout=30)
    await trio.to_thread.run_sync(_send, port, _mail("small", "An ordinary message.\r\n",
                                                     small))
    await _small_goes_first(core, sink, gates, small)


def _put(spool: Spool, subject: str, body: str, gate: Path) -> str:
    return put_message(spool, "fast", body=_mail(subject, body, gate),
                       recipients=("user@local.test",))


@pytest.mark.parametrize("how", ["at start", "announced by id"])
async def test_small_mail_behind_many_large_messages_in_fast_is_taken_up_and_delivered_first(
        tmp_path, sink, nursery, how):
    _skip_with_one_slot()
    gates = [tmp_path / f"large-{i}" for i in range(LARGE)]
    small = tmp_path / "small"
    home = routed_home(tmp_path, sink)
    spool = Spool(home.spool)

    def put_all() -> list[str]:         # the small one last, so the newest
        return [*(_put(spool, f"large {i}", BODY, gate) for i, gate in enumerate(gates)),
                _put(spool, "small", "An ordinary message.\r\n", small)]

    if how == "at start":            # in fast/ when the core starts: the rescan takes them
        put_all()
        core = await _start_core(home, nursery)
    else:                            # without the envelope: the small lane reads each one
        core = await _start_core(home, nursery)
        for queue_id in put_all():
            core.queue.message_accepted(queue_id)
    await _small_goes_first(core, sink, gates, small)


@pytest.mark.parametrize("announced", ["by id", "with the envelope"])
async def test_large_messages_past_a_full_large_lane_wait_in_fast_and_are_all_delivered(
        tmp_path, sink, nursery, monkeypatch, announced):
    # Rule 1 with two lanes of one task and a channel of 2 ids each: large messages
    # announced by id are read by the small lane's task, those announced with their
    # envelope (the SMTP listener's way) are routed by message_accepted itself; the large
    # lane's channel being full, they are left in fast/, not busy, for the rescan, which
    # feeds them to the large lane once it has room; a small message is delivered
    # meanwhile, and none is lost or delivered twice. The queue manager with the real
    # pipeline in worker processes. (Marked busy all the same, those announced with
    # their envelope were skipped by every rescan and sat in fast/ until a restart:
    # review19 r3 T1.)
    import core.spool.manager as manager_module
    from core.pipeline.service import FilteringPipeline
    from tests.integration.test_queue import Harness, routes_to
    _skip_with_one_slot()
    monkeypatch.setattr(manager_module, "FAST_CHANNEL_SIZE", 2)
    monkeypatch.setattr(manager_module, "FAST_WORKERS", 1)
    monkeypatch.setattr(manager_module, "LARGE_WORKERS", 1)
    h = Harness(tmp_path, routes_to(("local.test", sink)))
    h.pipeline = FilteringPipeline(h.events, h.counters, fault=FAULTS + ":gate_if_marked")
    await nursery.start(h.pipeline.run)
    gates = {f"{how}{n}": tmp_path / f"{how}-{n}" for how in ("start", "later") for n in range(4)}

    def put(name: str) -> str:
        body = BODY if name in gates else "An ordinary message.\r\n"
        return h.put("", [f"{name}@local.test"], data=_mail(name, body, gates.get(name)))

    for n in range(4):              # in fast/ at start: the rescan's stat sends them to the
        put(f"start{n}")            # large lane, whose task holds one, its channel two more
    manager = h.manager()
    await nursery.start(manager.run)
    await until(lambda: _started(gates["start0"]), timeout=30)
    for n in range(4):              # the large lane is full: left in fast/
        queue_id = put(f"later{n}")
        manager.message_accepted(queue_id, *(
            [h.spool.read_envelope("fast", queue_id)] if announced == "with the envelope"
            else []))
    manager.message_accepted(put("small"))
    await until(lambda: _subjects(sink), timeout=30)
    assert _subjects(sink) == {"small"}
    assert [name for name, gate in gates.items() if _started(gate)] == ["start0"]
    _release(*gates.values())
    await sink.await_messages(len(gates) + 1, timeout=60)
    await until(lambda: h.ids("fast") == [], timeout=30)
    assert sorted(m.recipients[0] for m in sink.messages) == sorted(
        f"{name}@local.test" for name in [*gates, "small"])
