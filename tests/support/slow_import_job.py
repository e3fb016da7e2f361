"""A job whose module takes IMPORT_SECONDS to import, as the pipeline's does on a loaded host
(its engines, definitions): for the worker-start tests (core/pipeline/workers.py rule 8)."""

from __future__ import annotations

import multiprocessing
import os
import time

# longer than the tests' limit (1.5 s), so that a start inside it always times out
IMPORT_SECONDS = 2.0

if multiprocessing.parent_process() is not None:
    # in a worker process only: the test process, which imports it too (to hand the job
    # over), has no limit to be charged with it, and each pytest worker of a run paid it
    time.sleep(IMPORT_SECONDS)


BUSY_SECONDS = 0.5
HOARD_OCTETS = 96 << 20
LITTER_OCTETS = 80 << 20
_hoard: list[bytes] = []
_keep: list[bytes] = []


def job(item: str) -> str:
    """Its item back, with the worker's pid; "hang" hangs, "busy…" takes BUSY_SECONDS,
    "hoard…" keeps HOARD_OCTETS live, "litter…" leaves LITTER_OCTETS free in the heap (a
    large message's peak, which the allocator keeps) and answers with the worker's own RAM
    (RssAnon) before it, "rss" with its RAM now."""
    if item == "hang":
        time.sleep(3600)
    if item.startswith("busy"):
        time.sleep(BUSY_SECONDS)
    if item.startswith("hoard"):
        _hoard.append(b"\x01" * HOARD_OCTETS)
    if item.startswith("litter"):
        before = _rss_anon()
        chunks = []
        for index in range(LITTER_OCTETS // (8 << 10)):
            chunks.append(b"\x01" * (8 << 10))
            if index % 4 == 0:              # between them: the heap cannot shrink by itself
                _keep.append(b"\x02" * 700)
        chunks.clear()
        return f"{before} in {os.getpid()}"
    if item == "rss":
        return f"{_rss_anon()} in {os.getpid()}"
    return f"{item} in {os.getpid()}"


def _rss_anon() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")
