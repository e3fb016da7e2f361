"""A job whose module takes IMPORT_SECONDS to import, as the pipeline's does on a loaded host
(its engines, definitions): for the worker-start tests (core/pipeline/workers.py rule 8)."""

from __future__ import annotations

import os
import time

IMPORT_SECONDS = 3.0

time.sleep(IMPORT_SECONDS)


BUSY_SECONDS = 0.5


def job(item: str) -> str:
    """Its item back (or a hang, or after BUSY_SECONDS for "busy…"), with the worker's pid."""
    if item == "hang":
        time.sleep(3600)
    if item.startswith("busy"):
        time.sleep(BUSY_SECONDS)
    return f"{item} in {os.getpid()}"
