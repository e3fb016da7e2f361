"""A job whose module takes IMPORT_SECONDS to import, as the pipeline's does on a loaded host
(its engines, definitions): for the worker-start tests (core/pipeline/workers.py rule 8)."""

from __future__ import annotations

import os
import time

IMPORT_SECONDS = 3.0

time.sleep(IMPORT_SECONDS)


BUSY_SECONDS = 0.5
HOARD_OCTETS = 96 << 20
_hoard: list[bytearray] = []


def job(item: str) -> str:
    """Its item back (or a hang, or after BUSY_SECONDS for "busy…", or keeping HOARD_OCTETS
    for "hoard…", as a large message's peak stays with the allocator), with the worker's
    pid."""
    if item == "hang":
        time.sleep(3600)
    if item.startswith("busy"):
        time.sleep(BUSY_SECONDS)
    if item.startswith("hoard"):
        _hoard.append(bytearray(HOARD_OCTETS))
    return f"{item} in {os.getpid()}"
