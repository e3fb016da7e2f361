"""Classification speed: Mailmoat's heuristic engine against spamd/spamc, same messages, same run.

    .venv/bin/python bench/spam_bench.py [--messages N] [--rounds R] [--no-spamassassin]
                                         [--reference DIR]

Takes N held-out test messages of the corpus split (every k-th, so spam and ham mix as in
the test part) and measures, one message at a time on one core:

- Mailmoat: read the file, decompose it with the pipeline's decomposer, score it with the
  heuristic engine (tokens, rules, weights) — what a pipeline worker does for antispam;
  best of R rounds after a warm-up round;
- SpamAssassin: spamc -c to a local spamd (one child, local tests only, Bayes trained on the
  training part as in bench/antispam_eval.py), sequentially.

Prints messages/s for both and the ratio; writes them to --json, or without it, when spamd was
measured on the corpus' 300 messages, to bench/spam-bench.json (the Speed table of
docs/antispam.md). With --reference, the
engine also scores the same messages with the spam definitions set in DIR (an earlier
revision, say), the two sets' rounds alternating in one process, and prints that ratio too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam import definitions as defs                   # noqa: E402
from core.scan.antispam.engine import HeuristicEngine                # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages, view_of  # noqa: E402

DEFAULT_JSON = Path(__file__).with_name("spam-bench.json")


def engine_rates(paths, rounds: int, engines: list[HeuristicEngine]) -> list[float]:
    """messages/s of each engine, best of `rounds`; the engines' rounds alternate, so a
    machine's passing load falls on each alike."""
    best = [float("inf")] * len(engines)
    for round_ in range(rounds + 1):
        for index, engine in enumerate(engines):
            started = time.perf_counter()
            for path in paths:
                engine.score(view_of(path.read_bytes()))
            elapsed = time.perf_counter() - started
            if round_:                   # round 0 warms the caches up
                best[index] = min(best[index], elapsed)
    return [len(paths) / b for b in best]


def spamd_rate(paths, train, workdir: Path) -> float:
    from bench.sa_local import LocalSpamAssassin
    sa = LocalSpamAssassin(workdir, children=1)
    sa.learn([s.path for s in train if s.label == "spam"],
             [s.path for s in train if s.label == "ham"])
    with sa:
        sa.start()
        for path in paths[:5]:
            sa.check(path)               # warm-up
        started = time.perf_counter()
        for path in paths:
            sa.check(path)
        return len(paths) / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-spamassassin", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reference", type=Path,
                        help="a spam definitions set to compare the shipped one with")
    args = parser.parse_args(argv)

    samples = corpus_messages(args.corpus)
    train = [s for s in samples if s.split == "train"]
    test = [s for s in samples if s.split == "test"]
    step = max(1, len(test) // args.messages)
    paths = [s.path for s in test[::step]][:args.messages]
    engines = [HeuristicEngine()]
    if args.reference:
        engines.append(HeuristicEngine(defs.load(args.reference)))
    ours, *reference = engine_rates(paths, args.rounds, engines)
    result = {"definitions": engines[0].definitions().label,
              "messages": len(paths), "octets": sum(p.stat().st_size for p in paths),
              "mailmoat_messages_per_second": round(ours, 1)}
    print(f"Mailmoat heuristic engine: {ours:.1f} messages/s ({len(paths)} messages)")
    if reference:
        label = engines[1].definitions().label
        result["reference"] = {"definitions": label, "messages_per_second":
                               round(reference[0], 1), "ratio": round(ours / reference[0], 3)}
        print(f"with {label}: {reference[0]:.1f} messages/s; ratio {ours / reference[0]:.3f}")
    if not args.no_spamassassin:
        with tempfile.TemporaryDirectory(prefix="mailmoat-sa-") as tmp:
            theirs = spamd_rate(paths, train, Path(tmp))
        result["spamd_messages_per_second"] = round(theirs, 1)
        result["ratio"] = round(ours / theirs, 1)
        print(f"spamd/spamc (1 child, local tests, Bayes): {theirs:.1f} messages/s")
        print(f"ratio: {ours / theirs:.1f}x")
    full_run = ("spamd_messages_per_second" in result and args.corpus == DEFAULT_CORPUS
                and args.messages == 300)
    out = args.json or (DEFAULT_JSON if full_run else None)
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
