"""Scan throughput: the builtin engine against a real clamd, same files, same signatures,
same run (issue 6). Results in MB/s (MiB of input per second) and the ratio builtin/clamd.

    .venv/bin/python -m bench.scan [--sizes 10,1000,100000] [--files-mb 40] [--repeat 3]

Signature sets: the shipped set (EICAR, the ClamAV test-file signatures) plus synthetic
random hex body signatures of 16-64 bytes, a third with a `??` wildcard and a fifth with a
`{n-m}` gap, up to the size asked; the same .ndb file is loaded by the builtin engine and by
a clamd started here (private config and database directory, loopback port, no freshclam,
nothing downloaded). Files: the corpus' ClamAV test files, Office documents, PDFs and mail,
plus random binary and text files up to --files-mb; every file is scanned whole by each
engine (builtin: signatures + its unpackers; clamd: INSTREAM, which unpacks too), one
after the other, single-threaded. The first pass warms both engines up and is not timed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / ".." / "shared" / "corpus"
SHIPPED = ROOT / "shared" / "data" / "definitions" / "virus" / "mailmoat.ndb"


def synthetic_signatures(count: int, seed: int = 6) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(16, 64))).hex()
        n = len(body) // 2
        if i % 3 == 0:                  # a wildcard byte near one end
            at = rnd.choice((1, n - 2))
            body = body[:2 * at] + "??" + body[2 * at + 2:]
        if i % 5 == 0 and n >= 34:      # a bounded gap in the middle of a long one
            at = n // 2
            body = body[:2 * at] + "{2-8}" + body[2 * at:]
        out.append(f"Bench.Synthetic.{i}:0:*:{body}")
    return out


def write_set(directory: Path, size: int) -> Path:
    shipped = [line for line in SHIPPED.read_text().splitlines()
               if line and not line.startswith("#")]
    lines = shipped + synthetic_signatures(max(0, size - len(shipped)))
    path = directory / f"bench-{size}.ndb"
    path.write_text("\n".join(lines[:max(size, len(shipped))]) + "\n")
    return path


def bench_files(total_mb: int, seed: int = 9) -> dict[str, list[bytes]]:
    """{"corpus": real files of many formats (mostly small), "bulk": large random binary and
    text files}, together about total_mb MiB."""
    files = []
    for folder in ("clamav-testfiles", "office", "pdf", "eicar"):
        for path in sorted((CORPUS / folder).rglob("*")):
            if path.is_file() and path.stat().st_size < 4 * 2**20:
                files.append(path.read_bytes())
    ham = sorted((CORPUS / "spamham" / "ham").rglob("*.eml"))[:400]
    files += [p.read_bytes() for p in ham]
    rnd = random.Random(seed)
    size = sum(map(len, files))
    words = b" ".join(p.read_bytes()[:2000] for p in ham[:50]).split()
    bulk = []
    while size < total_mb * 2**20:
        if rnd.random() < 0.5:
            blob = os.urandom(rnd.randint(256 * 1024, 2 * 2**20))
        else:
            blob = b" ".join(rnd.choice(words) for _ in range(rnd.randint(40_000, 200_000)))
        bulk.append(blob)
        size += len(blob)
    return {"corpus": files, "bulk": bulk}


def measure(scan, files, repeat: int) -> float:
    """MiB/s over all files, best of `repeat` timed passes (after one warm-up pass)."""
    for data in files[:20]:
        scan(data)
    total = sum(map(len, files)) / 2**20
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for data in files:
            scan(data)
        best = max(best, total / (time.perf_counter() - start))
    return best


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    from core.scan.builtin import BuiltinEngine
    from core.scan.clamd import ClamdEngine
    from core.scan.signatures import load_files
    from tests.support.clamd import Clamd

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,100000")
    parser.add_argument("--files-mb", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    groups = bench_files(args.files_mb)
    groups["all"] = groups["corpus"] + groups["bulk"]
    for name, files in groups.items():
        print(f"{name}: {len(files)} files, {sum(map(len, files)) / 2**20:.1f} MiB")
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    header = f"{'signatures':>10}  {'load s':>6}" + "".join(
        f"  {g + ' builtin':>14}  {g + ' clamd':>12}  {'ratio':>5}" for g in groups)
    print(header)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            work = Path(tmp) / str(size)
            work.mkdir()
            ndb = write_set(work, size)
            started = time.perf_counter()
            engine = BuiltinEngine(load_files([ndb]))
            load_seconds = time.perf_counter() - started
            builtin = {g: measure(engine.scan, files, args.repeat) for g, files in groups.items()}
            with Clamd(work, [ndb], stream_max_mb=64) as server:
                client = ClamdEngine(server.address, max_stream_octets=64 * 2**20,
                                     scan_seconds=600)
                clamd = {g: measure(client.scan, files, args.repeat)
                         for g, files in groups.items()}
            line = f"{size:>10}  {load_seconds:>6.1f}"
            for g in groups:
                ratio = builtin[g] / clamd[g] if clamd[g] else float("nan")
                line += f"  {builtin[g]:>14.1f}  {clamd[g]:>12.1f}  {ratio:>5.2f}"
            ratios.append(min(builtin[g] / clamd[g] for g in groups if clamd[g]))
            print(line, flush=True)
    worst = ratios[-1] if ratios else 0
    print(f"target builtin >= 50% of clamd at the largest set (worst group): "
          f"{'met' if worst >= 0.5 else 'NOT met'} ({worst:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
