"""Small mail is not queued behind large mail for a scanning worker (core/pipeline/workers.py
rule 7; hostile18 B2: nine queued 49 MB messages held small mail up to 52 s between its 250
and delivery), and large mail with no small mail waiting has every worker (review2 R5). The
whole core with real worker processes: large messages hold their workers until the test lets
them go; a small one sent after them takes the first worker freed, before a large one that
came earlier, and is delivered meanwhile."""

from __future__ import annotations

import email
import os
import smtplib
from pathlib import Path

import pytest
import trio

from core.app import run_core
from core.pipeline.service import BATCH_MESSAGE_OCTETS
from tests.support.core import routed_home
from tests.support.waiting import until

pytestmark = pytest.mark.trio

FAULTS = str(Path(__file__).with_name("pipeline_faults.py"))


def _mail(subject: str, body: str, gate: Path | None = None) -> bytes:
    # written out, not by email.message: a long gate path would be folded or encoded
    marks = (f"X-Test-Fault: yes\r\nX-Test-Gate: {gate}\r\n"   # pipeline_faults.py
             if gate is not None else "")                      # gate_if_marked
    return (f"From: sender@client.test\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
            f"{marks}\r\n{body}").encode()


def _send(port: int, *messages: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for msg in messages:
            client.sendmail("sender@client.test", ["user@local.test"], msg)


def _subjects(sink) -> set[str]:
    return {email.message_from_bytes(m.data)["Subject"] for m in list(sink.messages)}


async def test_small_mail_is_delivered_while_large_mail_holds_the_workers(tmp_path, sink,
                                                                          nursery):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one worker slot: the order is the arrival order (rule 7)")
    home = routed_home(tmp_path, sink)
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":gate_if_marked"},
        task_status=task_status))
    port = core.smtp_addresses[0][1]
    slots = os.cpu_count()                  # the core's worker slots (WorkerBatcher)
    count = min(slots + 1, 9)               # one more than the workers, up to 8 workers
    gates = [tmp_path / f"large-{i}" for i in range(count)]
    small = tmp_path / "small"
    started = lambda gate: Path(f"{gate}.started").exists()            # noqa: E731
    line = "a large message's text, line after line of it\r\n"
    body = line * (BATCH_MESSAGE_OCTETS // len(line) + 100)
    await trio.to_thread.run_sync(lambda: _send(
        port, *[_mail(f"large {i}", body, gate) for i, gate in enumerate(gates)]))
    # no small mail waits: large mail takes every worker (27ed2c9 left one idle)
    await until(lambda: sum(map(started, gates)) == min(count, slots), timeout=30)
    await trio.to_thread.run_sync(_send, port, _mail("small", "An ordinary message.\r\n",
                                                     small))
    released = set()
    if count > slots:                       # every worker holds a large message: the first
        waiting = next(g for g in gates if not started(g))     # freed is the small one's,
        first = next(g for g in gates if started(g))           # not the earlier large one's
        Path(f"{first}.release").touch()
        released.add(first.name.replace("-", " "))
        await until(lambda: started(small) or started(waiting), timeout=30)
        assert started(small) and not started(waiting)
    Path(f"{small}.release").touch()
    await until(lambda: "small" in _subjects(sink), timeout=30)
    # before 27ed2c9: the large messages took every worker and the small one waited for them
    assert _subjects(sink) <= {"small"} | released
    for gate in gates:
        Path(f"{gate}.release").touch()
    await trio.to_thread.run_sync(lambda: sink.wait_for(count + 1, timeout=60))
    assert _subjects(sink) == {"small"} | {f"large {i}" for i in range(count)}
    core.cancel_scope.cancel()
