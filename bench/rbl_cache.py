"""The RBL cache (core/smtp/rbl.py rule 3) when full: the cost of storing a new client IP once
the cache holds MAX_CACHE_ENTRIES unexpired answers, against the cost while it fills.

    python -m bench.rbl_cache [--entries 50000] [--inserts 5000]

Prints both costs per store and their ratio. A ratio near 1 means a store into a full cache
evicts in O(1) amortised; a cache that scanned its entries for expired ones at every store
(the behaviour before) gave ~20 ms per store at 50,000 entries, a ratio in the thousands.
Wall-clock figures: read them, do not assert on them.
"""

from __future__ import annotations

import argparse
import time

from core.smtp.rbl import MAX_CACHE_ENTRIES, RblChecker


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ip(i: int, first: int) -> str:
    return f"{first}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def run(entries: int, inserts: int) -> tuple[float, float]:
    """(seconds per store while filling, seconds per store when full)."""
    clock = _Clock()
    checker = RblChecker(None, clock=clock, max_entries=entries)
    began = time.perf_counter()
    for i in range(entries):
        clock.now += 0.0001
        checker._store(("bl.test", _ip(i, 10)), (), 3600)
    filling = (time.perf_counter() - began) / entries
    began = time.perf_counter()
    for i in range(inserts):
        clock.now += 0.0001
        checker._store(("bl.test", _ip(i, 11)), (), 3600)
    full = (time.perf_counter() - began) / inserts
    assert len(checker.cache) == entries
    return filling, full


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=MAX_CACHE_ENTRIES)
    parser.add_argument("--inserts", type=int, default=5000)
    args = parser.parse_args(argv)
    filling, full = run(args.entries, args.inserts)
    print(f"store while filling: {filling * 1e6:.1f} µs; into a full cache of {args.entries}: "
          f"{full * 1e6:.1f} µs; ratio full/filling {full / filling:.2f}")


if __name__ == "__main__":
    main()
