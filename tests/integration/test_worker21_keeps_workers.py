"""Ordinary mail keeps its worker (core/pipeline/workers.py rule 9; review21d R1).

Rule 9 retires a worker that kept a large message's memory. Measured from the worker's
start, the first message's own loads (definitions, lists, caches: +42 MB) and the allocator's
free memory after a 3 MB attachment retired workers on ordinary mail, each retire a process
start and a definitions load again. The real pipeline in real worker processes: messages with
a 3 MB PDF attachment, then small ones, through one slot, retire nothing.
"""

from __future__ import annotations

import random

from core.pipeline.run import process_message
from core.pipeline.workers import RUNTIME_WORKER_SLOTS, WorkerBatcher
from tests.unit.pipeline.support import CONTEXT, message, settings


async def test_ordinary_mail_with_attachments_keeps_its_worker(nursery, tmp_path):
    shared = settings()
    shared[RUNTIME_WORKER_SLOTS] = 1
    pdf = tmp_path / "pdf.eml"
    pdf.write_bytes(message(body="see attached", attachments=[
        ("report.pdf", random.Random(1).randbytes(3 << 20), "application/pdf")]))
    small = tmp_path / "small.eml"
    small.write_bytes(message(body="lunch at noon?"))
    batcher = WorkerBatcher(process_message, slots=1)
    await nursery.start(batcher.run)
    for path in [small, pdf, pdf, pdf, small, pdf, small]:
        await batcher.call((str(path), dict(CONTEXT)), (shared, None))
    assert batcher.retired == 0
