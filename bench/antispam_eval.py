"""Detection quality of the heuristic engine against SpamAssassin, on held-out corpus mail.

    .venv/bin/python bench/antispam_eval.py [--corpus DIR] [--no-spamassassin]
                                                [--json FILE] [--workdir DIR]
                                                [--spam DIR --ham DIR]

The corpus' labelled spam/ham (SpamAssassin public corpus, shared corpus spamham/) is split
once and for all by core/scan/antispam/training.py (SHA-256 of the body with salt
"mailmoat-antispam-split-v1"; 30 % test, identical bodies on one side). The shipped spam
definitions were trained on the training part only (tools/train_spam_model.py). Here:

1. every TEST message is decomposed by the pipeline's decomposer and scored by the engine;
   for each sensitivity 1..5 (score >= 90, 80, 70, 60, 50) we report spam recall and the
   ham false-positive rate;
2. in the same run, Debian's SpamAssassin — local tests only (-L), Bayes trained with
   sa-learn on the same TRAINING messages, no network, no auto-learn — scores the same test
   messages through spamd/spamc at its default required_score 5.0.

With --spam and --ham, the test messages are instead every file under those two folders (one
message per file, e.g. mail an administrator sorted by hand): the same table on other mail,
SpamAssassin's Bayes still trained on the corpus' training part, as the engine was.

Prints a table and writes the figures as JSON to --json; without it, only the full run (the
shared corpus' held-out part, with SpamAssassin) writes them, to bench/antispam-eval.json, the file
docs/antispam.md quotes and the quality test holds the engine to: a quick run or a run on
other mail leaves it as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam.engine import SENSITIVITY_THRESHOLDS, HeuristicEngine  # noqa: E402
from core.scan.antispam.training import (DEFAULT_CORPUS, SPLIT_SALT, TEST_FRACTION,  # noqa: E402
                                         Sample, corpus_messages, view_of)

DEFAULT_JSON = Path(__file__).with_name("antispam-eval.json")


def split(corpus: Path):
    samples = corpus_messages(corpus)
    return ([s for s in samples if s.split == "train"],
            [s for s in samples if s.split == "test"])


def labelled_folders(spam: Path, ham: Path) -> list[Sample]:
    """Every file under `spam` and `ham` (recursively, hidden ones aside) as a test message."""
    out = []
    for label, folder in (("spam", spam), ("ham", ham)):
        if not folder.is_dir():
            raise SystemExit(f"--{label} {folder}: not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not files:
            raise SystemExit(f"--{label} {folder}: no files")
        out += [Sample(p, label, folder.name, "test") for p in files]
    return out


def score_engine(test) -> list[int]:
    engine = HeuristicEngine()
    return [engine.score(view_of(s.path.read_bytes())).score for s in test]


def engine_table(test, scores) -> list[dict]:
    spam = [sc for s, sc in zip(test, scores) if s.label == "spam"]
    ham = [sc for s, sc in zip(test, scores) if s.label == "ham"]
    rows = []
    for level, threshold in SENSITIVITY_THRESHOLDS.items():
        caught = sum(sc >= threshold for sc in spam)
        false = sum(sc >= threshold for sc in ham)
        rows.append({"sensitivity": level, "threshold": threshold,
                     "spam_recall": caught / len(spam), "spam_caught": caught,
                     "ham_fp_rate": false / len(ham), "ham_fp": false,
                     "spam": len(spam), "ham": len(ham)})
    return rows


def run_spamassassin(train, test, workdir: Path) -> dict:
    from bench.sa_local import LocalSpamAssassin
    sa = LocalSpamAssassin(workdir)
    started = time.monotonic()
    sa.learn([s.path for s in train if s.label == "spam"],
             [s.path for s in train if s.label == "ham"])
    learned = time.monotonic() - started
    results = []
    with sa:
        sa.start()
        started = time.monotonic()
        for sample in test:
            results.append(sa.check(sample.path))
        checked = time.monotonic() - started
    spam = [r for s, r in zip(test, results) if s.label == "spam"]
    ham = [r for s, r in zip(test, results) if s.label == "ham"]
    caught, false = sum(r[1] for r in spam), sum(r[1] for r in ham)
    return {"required_score": 5.0, "spam_recall": caught / len(spam), "spam_caught": caught,
            "ham_fp_rate": false / len(ham), "ham_fp": false, "spam": len(spam),
            "ham": len(ham), "learn_seconds": round(learned, 1),
            "check_seconds": round(checked, 1),
            "false_positives": [str(s.path.name) for s, r in zip(test, results)
                                if s.label == "ham" and r[1]]}


def format_table(rows, sa) -> str:
    lines = ["| classifier | spam at score ≥ | spam recall | ham false positives |",
             "|---|---|---|---|"]
    for r in rows:
        default = " (default)" if r["sensitivity"] == 1 else ""
        lines.append(f"| Mailmoat heuristic, sensitivity {r['sensitivity']}{default} "
                     f"| {r['threshold']} "
                     f"| {r['spam_recall']:.1%} ({r['spam_caught']}/{r['spam']}) "
                     f"| {r['ham_fp_rate']:.2%} ({r['ham_fp']}/{r['ham']}) |")
    if sa:
        lines.append(f"| SpamAssassin 4.0.1, local tests + Bayes | 5.0 (its score) "
                     f"| {sa['spam_recall']:.1%} ({sa['spam_caught']}/{sa['spam']}) "
                     f"| {sa['ham_fp_rate']:.2%} ({sa['ham_fp']}/{sa['ham']}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--no-spamassassin", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--spam", type=Path, help="folder of spam to measure on instead")
    parser.add_argument("--ham", type=Path, help="folder of ham to measure on instead")
    args = parser.parse_args(argv)
    if (args.spam is None) != (args.ham is None):
        parser.error("--spam and --ham go together")

    if args.spam:
        test = labelled_folders(args.spam, args.ham)
        train = [] if args.no_spamassassin else split(args.corpus)[0]
    else:
        train, test = split(args.corpus)
    started = time.monotonic()
    scores = score_engine(test)
    engine_seconds = time.monotonic() - started
    rows = engine_table(test, scores)
    sa = None
    if not args.no_spamassassin:
        with tempfile.TemporaryDirectory(prefix="mailmoat-sa-") as tmp:
            sa = run_spamassassin(train, test, args.workdir or Path(tmp))
    result = {"definitions": HeuristicEngine().definitions().label,   # the set scored
              "test_messages": ({"spam": str(args.spam), "ham": str(args.ham)} if args.spam
                                else "held-out part of the corpus split"),
              "split": {"salt": SPLIT_SALT, "test_fraction": TEST_FRACTION,
                        "train": {"spam": sum(s.label == "spam" for s in train),
                                  "ham": sum(s.label == "ham" for s in train)},
                        "test": {"spam": sum(s.label == "spam" for s in test),
                                 "ham": sum(s.label == "ham" for s in test)}},
              "engine": rows, "engine_seconds": round(engine_seconds, 1),
              "spamassassin": sa,
              "engine_false_positives_at_1": [s.path.name for s, sc in zip(test, scores)
                                              if s.label == "ham" and sc >= 90]}
    print(format_table(rows, sa))
    full_run = sa is not None and not args.spam and args.corpus == DEFAULT_CORPUS
    out = args.json or (DEFAULT_JSON if full_run else None)
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
