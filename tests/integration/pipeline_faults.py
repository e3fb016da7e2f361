"""Faults the tests inject into the pipeline's worker (core/pipeline/run.py rule 2).
Only a test can install them (FilteringPipeline(fault=...)); a message merely selects which
test message they hit, by a marker the test itself put in its subject."""

import os
import re
import time

MARKER = b"X-Test-Fault: yes"


def crash_if_marked(path: str) -> None:
    with open(path, "rb") as handle:
        if MARKER in handle.read(64 * 1024):
            os._exit(70)                      # the worker process dies


def hang_if_marked(path: str) -> None:
    with open(path, "rb") as handle:
        if MARKER in handle.read(64 * 1024):
            time.sleep(3600)                  # the worker never answers


def slow_if_marked(path: str) -> None:
    with open(path, "rb") as handle:
        if MARKER in handle.read(64 * 1024):
            time.sleep(4)                     # slow, but well inside the worker's limit


def hoard_if_marked(path: str) -> None:
    """Take 1.5 GB in 16 MB blocks, as a message whose processing needs more memory than
    the worker's limit per message would (core/pipeline/run.py rule 5). Without a limit it
    only reserves the memory (the blocks are never written) and the message goes on."""
    with open(path, "rb") as handle:
        if MARKER in handle.read(64 * 1024):
            hoard = [bytearray(16 << 20) for _ in range(96)]
            hoard.clear()


def gate_if_marked(path: str) -> None:
    """A marked message with `X-Test-Gate: <path>` creates <path>.started and then waits
    until the test creates <path>.release (for at most 50 s, inside the worker's limit):
    a message that holds its worker exactly as long as the test wants."""
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if MARKER not in head:
        return
    gate = re.search(rb"^X-Test-Gate: *(\S+)\r?$", head, re.MULTILINE).group(1).decode()
    open(gate + ".started", "wb").close()
    for _ in range(2500):
        if os.path.exists(gate + ".release"):
            return
        time.sleep(0.02)
