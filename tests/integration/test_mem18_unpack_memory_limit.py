"""A MemoryError inside the builtin engine's unpacking is the memory limit's finding, not
content left unscanned (core/pipeline/run.py rule 5), with the default settings, in a real
worker process under the real limit (RLIMIT_DATA).

Regression, review18 R5a: core/scan/unpack.py `_produced` caught every Exception, MemoryError
included, and ended the candidate: an RTF object that needed more memory than the limit
per message was simply not scanned, and the EICAR in it was delivered with no finding.
"""

from __future__ import annotations

import binascii
import os
import re
from pathlib import Path

import pytest
import trio
import trio_parallel

from core.pipeline.run import MEMORY_LIMIT_RULE, process_message
from tests.support.mail import EICAR
from tests.unit.pipeline.support import message, settings

FAULT = str(Path(__file__).with_name("mem18_faults.py")) + ":hoard_in_rtf_objects_if_marked"


def _rtf_message(**headers) -> bytes:
    rtf = b"{\\rtf1 minutes {\\object\\objemb{\\*\\objdata " + binascii.hexlify(EICAR) + b"}}}"
    return message("minutes", attachments=[("minutes.rtf", rtf, "application/rtf")],
                   headers=headers)


@pytest.mark.trio
async def test_unpacking_over_the_limit_is_the_memory_finding_not_unscanned_content(tmp_path):
    marked = tmp_path / "marked.eml"
    marked.write_bytes(_rtf_message(**{"X-Test-Fault": "yes"}))
    plain = tmp_path / "plain.eml"
    plain.write_bytes(_rtf_message())
    defaults = settings()
    one = trio.CapacityLimiter(1)          # one worker process: the same one every time
    with trio.fail_after(60):
        async with trio_parallel.open_worker_context() as context:
            pid = await context.run_sync(os.getpid, limiter=one)
            outcome = await context.run_sync(process_message, str(marked), {}, defaults,
                                             FAULT, limiter=one)
            assert [(f.rule, f.event, f.action) for f in outcome.findings] == [
                (MEMORY_LIMIT_RULE, "scan_error", "hold")]
            assert re.search(r"limit per message of \d+ MB", outcome.findings[0].reason)
            assert outcome.verdict.disposition == "hold"
            # the same worker, its decoder as it was, finds what the RTF object carries
            outcome = await context.run_sync(process_message, str(plain), {}, defaults,
                                             FAULT, limiter=one)
            assert [f.rule for f in outcome.findings] == ["av.on_unrepairable"]
            assert "EICAR" in outcome.findings[0].reason
            assert await context.run_sync(os.getpid, limiter=one) == pid
