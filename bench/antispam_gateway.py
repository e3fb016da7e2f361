"""How much the heuristic engine leans on what the corpus' collectors added to their mail.

    .venv/bin/python bench/antispam_gateway.py [--corpus DIR]          # ~2 min

The SpamAssassin public corpus was collected from mailboxes: its messages carry the final
delivery's headers (Return-Path, Delivered-To, Delivery-Date), mail-client flags (X-Keywords,
Status) and the collectors' internal Received hops (local Postfix, fetchmail), which differ
between its folders. Mailmoat scans at the gateway, before any of that exists. This measures,
on the TRAINING part only (the held-out part is not read), with the 5 folds of
tools/train_spam_model.py:

    corpus views      trained and scored on the messages as collected (what the shipped
                      definitions and every published figure use);
    gateway views     trained as shipped, scored on the same messages as a gateway would
                      have received them (core/scan/antispam/training.gateway_message);
    gateway-trained   trained and scored on gateway views.

For each: the out-of-fold ham at the top, the spam ranked above the 2nd / 3rd / 5th highest
ham, ham and spam at or above z90, and the mean shift of ham and spam scores. Scores are read
as the training tool reads them (its WINDOWS and DELISTED), and z90 is what its
calibration rule makes of the corpus views' out-of-fold ham scores — the training run computes
the same scores, so for the tool's settings as shipped it is the shipped z90. With the tool's
CHARS set (the character model) the bench refuses to run: it does not train the character
model inside its folds, so its scores and z90 would not be the tool's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import train_spam_model as trainer                                  # noqa: E402
from core.scan.antispam import definitions as defs                  # noqa: E402
from core.scan.antispam.heuristic_rules import RuleSet              # noqa: E402
from core.scan.antispam.learner import fold_of, train_model        # noqa: E402
from core.scan.antispam.training import (DEFAULT_CORPUS, corpus_messages,  # noqa: E402
                                         gateway_message, view_of)


def gateway_view(raw: bytes):
    message, envelope = gateway_message(raw)
    return view_of(message, envelope=envelope)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    if trainer.CHARS is not None:
        print("antispam_gateway: the training tool's CHARS is set, and this bench does not "
              "train the character model inside its folds: its scores and z90 would not be "
              "the tool's (run it with CHARS = None)", file=sys.stderr)
        return 2
    started = time.monotonic()
    rules = RuleSet.from_json(json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text()))
    samples = [s for s in corpus_messages(args.corpus) if s.split == "train"]
    reading = dict(windows=trainer.WINDOWS, delisted=trainer.DELISTED)
    corpus, groups, corpus_readings = trainer.extract(samples, rules, **reading)
    gateway_data, _, gateway_readings = trainer.extract(samples, rules, gateway_view, **reading)
    gateway = [found for found, _ in gateway_data]

    def raw(weights, read):
        return trainer.raw_of_readings(weights, read, trainer.WINDOWS)

    weights_of = [trainer.HARD_HAM_WEIGHT if s.group == "hard_ham" else 1.0 for s in samples]
    folds = [fold_of(g) for g in groups]
    scores = {"corpus views": [0.0] * len(samples), "gateway views": [0.0] * len(samples),
              "gateway-trained": [0.0] * len(samples)}
    for k in range(trainer.FOLDS):
        keep = [i for i in range(len(samples)) if folds[i] != k]
        shares = [weights_of[i] for i in keep]
        shipped = train_model([corpus[i] for i in keep], sample_weights=shares)
        retrained = train_model([(gateway[i], corpus[i][1]) for i in keep],
                                sample_weights=shares)
        for i in range(len(samples)):
            if folds[i] == k:
                scores["corpus views"][i] = raw(shipped, corpus_readings[i])
                scores["gateway views"][i] = raw(shipped, gateway_readings[i])
                scores["gateway-trained"][i] = raw(retrained, gateway_readings[i])
    z90, _ = trainer.calibrate([z for z, (_, spam) in zip(scores["corpus views"], corpus)
                                if not spam])
    is_spam = [y for _, y in corpus]
    base = scores["corpus views"]
    print(f"{len(samples)} training messages, out of fold; z90 {z90} (the shipped set's "
          f"{defs.load(defs.PACKAGED_DIR).z90})")
    print("| scored on | top out-of-fold ham | spam above 2nd / 3rd / 5th ham | ham >= z90 "
          "| spam >= z90 | mean shift ham / spam |")
    print("|---|---|---|---|---|---|")
    for name, z in scores.items():
        ham = sorted((v for v, y in zip(z, is_spam) if not y), reverse=True)
        spam = [v for v, y in zip(z, is_spam) if y]
        above = " / ".join(str(sum(v > ham[j] for v in spam)) for j in (1, 2, 4))
        shift = [sum(z[i] - base[i] for i in range(len(z)) if is_spam[i] == want)
                 / max(1, sum(1 for y in is_spam if y == want)) for want in (False, True)]
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in ham[:4])} | {above} | "
              f"{sum(v >= z90 for v in ham)} | {sum(v >= z90 for v in spam)} | "
              f"{shift[0]:+.2f} / {shift[1]:+.2f} |")
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
