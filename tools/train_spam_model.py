"""Train the heuristic engine's default spam definitions from the shared corpus.

    .venv/bin/python tools/train_spam_model.py [--corpus DIR] [--out DIR]
                                                   [--version YYYY-MM-DD] [--revision N]
    .venv/bin/python tools/train_spam_model.py --check-calibration [--corpus DIR]

Reads the labelled spam/ham messages of the corpus MANIFEST, keeps the TRAINING part of the
fixed split (core/scan/antispam/training.py; the held-out test part is never looked at),
decomposes each message with the pipeline's decomposer, extracts tokens, structural tokens
and rule hits (engine.features, as the engine does), fits
the weights (learner.train_model: a logistic regression, the same regression over features
scaled by their naive-Bayes log-count ratios, and a damped naive Bayes, summed into one
weight per feature) — the corpus' hard ham (newsletters and promotions the recipients asked
for) weighing HARD_HAM_WEIGHT times a message, the misses that cost most — and calibrates the
score scale on 5-fold out-of-fold scores of the training messages (folds grouped by body
hash, as the split is):

    z90 = max(CALIBRATION_FLOOR, out-of-fold raw score of training ham at the
              (1 - HAM_TAIL) quantile + MARGIN)

so that at the default sensitivity (score >= 90) at most HAM_TAIL (0.2 %) of the training ham
— the few hard-ham newsletters that read like spam — would have been flagged by a model that
had not seen them, with a margin above those. Scores are read as the engine reads them:
with the text in WINDOWS (core/scan/antispam/windows.py, rev 6 on) and, with DELISTED, a
message a mailing list relayed as the list received it (core/scan/antispam/delist.py: the
model learns on that reading, and is scored by the larger of its z and the z of the message
as it came); the set records both, so the engine reads as the training did. With CHARS, the
bounded character model (core/scan/antispam/chars.py) is trained from the training texts and
added after the windowed reading — z = max(sum, windowed - delta) + lambda · e —, its tables
written as chars.npz. Without it, the set is rev 8's, byte for byte. The
character model is never scored on a message it was counted from: in each cross-validation
fold (and each inner fold of the nested check) it is trained on the same messages as the
weights.

HARD_HAM_WEIGHT, the learners' settings (NB_WEIGHT among them), the token set and the
calibration rule were chosen by cross-validation inside the training part only
(docs/antispam-model.md, "How the model was chosen" and "Model families").
Writes rules.json, model.json.gz and manifest.json (definitions.py) — by default over the
packaged set in core/scan/antispam/data/spam/. Deterministic: the same corpus gives the same
files.

--check-calibration writes nothing: it judges the calibration rule by nested
cross-validation inside the training part (learner.nested_cross_validated_scores) — in each
outer fold, z90 comes from `calibrate` on the inner out-of-fold scores and is applied to the
outer fold, scored by weights trained on the rest — and prints, per sensitivity, the training
spam caught and training ham flagged, and the false positives that predicts per
EXPECTED_FP_PER ham. That is the estimate of what the held-out test part will show, made
without it (docs/antispam-model.md, "Calibration").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam import chars as char_model          # noqa: E402
from core.scan.antispam import definitions as defs          # noqa: E402
from core.scan.antispam.engine import features, readings   # noqa: E402
from core.scan.antispam.heuristic_rules import RuleSet      # noqa: E402
from core.scan.antispam.engine import SENSITIVITY_THRESHOLDS, raw_for_score   # noqa: E402
from core.scan.antispam.learner import (FOLDS, ITERATIONS, L2, LEARNING_RATE,  # noqa: E402
                                        MODEL, NB_ALPHA, NB_WEIGHT, cross_validated_scores,
                                        fold_of, nested_cross_validated_scores, raw_score,
                                        train_model)
from core.scan.antispam.tokenizer import window_tokens       # noqa: E402
from core.scan.antispam.training import (DEFAULT_CORPUS, SPLIT_SALT, TEST_FRACTION,  # noqa: E402
                                         body_key, corpus_messages, view_of)
from core.scan.antispam.windows import Windows, windowed_raw    # noqa: E402

MARGIN = 0.5
HAM_TAIL = 0.002
# the lowest of the pre-declared grid 2.0 / 1.75 / 1.5 / 1.25 at which --check-calibration
# flags at most 1 of the 2044 training ham at score 90 (rev 3, with the structural tokens;
# docs/antispam-model.md, "Calibration")
CALIBRATION_FLOOR = 1.25
HARD_HAM_WEIGHT = 40.0
# older than the tests' definitions packages (dated 2026-12-01), which install over it
DEFAULT_VERSION = "2026-11-30"
DEFAULT_REVISION = 8
# The text read in windows of 200 words, 0.5 below the sum (core/scan/antispam/windows.py):
# chosen inside the training part against padding (docs/antispam-model.md, "Windowed
# scoring (twenty-first session)"), a link's URL counting only towards spam there (rule 5,
# rev 7: "Links as padding"), and every URL so (rule 6, rev 8: "URLs as padding";
# Windows(200, 0.5, "spam_side") is rev 7's reading, Windows(200, 0.5) rev 6's, byte for
# byte; a fifth field caps what is read whole towards ham, rule 7, "Header fields as
# padding", not shipped); None scores the plain sum, as revs 1-5 did.
WINDOWS = Windows(words=200, delta=0.5, off_window="spam_side", urls="spam_side")
# True reads a message a mailing list relayed as the list received it, guarded by the
# message as it came (core/scan/antispam/delist.py rule 7; docs/
# antispam-model.md, "The guarded de-listed reading (twenty-third session)"); False reads
# every message as it came, as revs 1-8 do.
DELISTED = False
# The bounded character model (core/scan/antispam/chars.py; docs/antispam-model.md,
# "Character models"): its "scoring" "chars" settings — the declared candidate C4m is
# {"order": 5, "lambda": 4, "clip": 2, "max_chars": 3000, "denominator": "all"}; C4s adds
# "prior": 100 ("The prior on the ASCII bytes"), C4g "prior": 100 and "min_ascii_share":
# 0.9 ("The gated character model"), C4e C4g's and "min_english_share": 0.05 and
# "drop_urls": true ("The English-gated character model") —; checked when the tool starts by the
# loader's own rules (definitions.chars_settings); None: without it, as revs 1-8.
CHARS = None
# the held-out test part has 889 ham: "expected false positives on it" is the nested
# false-positive rate times this
EXPECTED_FP_PER = 889


class _Probe:
    """Just enough of SpamDefinitions for `features` before the model exists."""

    def __init__(self, rules, delisted: bool):
        self.rules = rules
        self.delisted = delisted


def extract(samples, rules, view=view_of, windows: Windows | None = None,
            delisted: bool = False, chars: dict | None = None
            ) -> tuple[list[tuple[frozenset, bool]], list[str], list[list[tuple]]]:
    """(features, is_spam) per sample — of the reading the model learns on —, its body key
    (the cross-validation group) and its readings: (features, the text tokens of its windows
    — tokenizer.window_tokens; an empty list without `windows`) of each reading the engine
    scores it on (engine.readings: one, or for a relayed message read `delisted`, two), and
    with `chars` (chars_settings()) its character text third (chars.char_text). `view`
    makes the message view from the file's bytes."""
    probe = _Probe(rules, delisted)
    out, groups, readings_of = [], [], []
    for sample in samples:
        raw = sample.path.read_bytes()
        read = []
        for reading in readings(view(raw), probe):
            text_parts: list = []
            found, _ = features(reading, probe, text_parts)
            read.append((frozenset(found),
                         [frozenset(w) for w in window_tokens(text_parts, windows.words)]
                         if windows else [])
                        + ((char_model.char_text(reading.as_learned(), text_parts,
                                                 chars["max_chars"], chars["drop_urls"]),)
                           if chars else ()))
        out.append((read[0][0], sample.label == "spam"))
        groups.append(body_key(raw))
        readings_of.append(read)
    return out, groups, readings_of


def raw_of_readings(weights, read, windows: Windows | None, terms=None) -> float:
    """z of a sample as the engine scores it (engine.score): `engine_z` of its readings
    (`extract`), each the plain sum or windowed."""
    return engine_z(base_of_readings(weights, read, windows), terms)


def engine_z(bases, terms=None) -> float:
    """The largest over a sample's readings of each one's z (`base_of_readings`) plus its
    character term (`terms`, lambda · e per reading; None: none), as engine.score takes it."""
    return max(map(sum, zip(bases, terms or [0.0] * len(bases))))


def base_of_readings(weights, read, windows: Windows | None) -> tuple[float, ...]:
    """Each reading's z without the character term."""
    if windows is None:
        return tuple(raw_score(weights, found) for found, *_ in read)
    return tuple(windowed_raw(found, sets, weights.weights, weights.bias, windows)
                 for found, sets, *_ in read)


def scorer(readings_of, windows: Windows | None, char_terms=None):
    """score_of(weights, i) for the learner's cross-validations: the engine's reading of
    sample i (`raw_of_readings`); None when that is the learner's own plain sum.
    `char_terms(i)`: sample i's character terms per reading, from a character model
    trained without sample i's fold (`fold_char_terms`)."""
    if windows is None and char_terms is None and all(len(read) == 1 for read in readings_of):
        return None
    if char_terms is None:
        return lambda weights, i: raw_of_readings(weights, readings_of[i], windows)
    return lambda weights, i: raw_of_readings(weights, readings_of[i], windows, char_terms(i))


def chars_settings() -> dict | None:
    """CHARS as Chars' fields (order, lam, clip, max_chars, denominator, prior, min_share,
    min_english, drop_urls), by the definitions loader's rules (definitions.chars_settings:
    ValueError naming the rule); None without."""
    return defs.chars_settings(CHARS)


def train_chars(data, readings_of, keep) -> "char_model.Tables":
    """The character model's tables from the samples `keep` (their learned reading's text,
    unweighted: chars.py rule 2)."""
    return char_model.train([(readings_of[i][0][2], data[i][1]) for i in keep],
                            chars_settings()["order"])


def char_terms_of(tables, readings_of, indices) -> dict[int, list[float]]:
    """lambda · e per reading of each sample of `indices`, by `tables`."""
    settings = chars_settings()
    lam, clip = settings["lam"], settings["clip"]
    reading = (settings["denominator"], settings["prior"], settings["min_share"],
               settings["min_english"])
    return {i: [lam * tables.evidence(r[2], clip, *reading) for r in readings_of[i]]
            for i in indices}


def fold_char_terms(data, groups, readings_of, held_out=()) -> dict[int, list[float]]:
    """Each sample's character terms from a model trained on the other folds (and not on
    the folds `held_out`): the cross-validation's own split of the samples."""
    fold = [fold_of(g) for g in groups]
    terms: dict[int, list[float]] = {}
    for k in range(FOLDS):
        if k in held_out:
            continue
        keep = [i for i in range(len(data)) if fold[i] != k and fold[i] not in held_out]
        terms.update(char_terms_of(train_chars(data, readings_of, keep), readings_of,
                                   [i for i in range(len(data)) if fold[i] == k]))
    return terms


def nested_char_terms(nested, data, groups, readings_of):
    """The nested check's scores with the character term (`base_of_readings`' per-reading z
    made one z): an inner score of outer fold k, inner fold j with a model trained on the
    folds other than k and j, an outer score with one trained on the folds other than k —
    the messages the weights of that score were trained on."""
    for result in nested:
        k = result.fold
        inner_terms = fold_char_terms(data, groups, readings_of, held_out=(k,))
        outer = [i for i in result.outer]
        part = [i for i in range(len(data)) if i not in result.outer]
        outer_terms = char_terms_of(train_chars(data, readings_of, part), readings_of, outer)
        for scores, terms in ((result.inner, inner_terms), (result.outer, outer_terms)):
            for i, bases in scores.items():
                scores[i] = engine_z(bases, terms[i])
    return nested


def out_of_fold_scores(data, groups, sample_weights, readings_of) -> list[float]:
    """Write mode's out-of-fold scores, which `calibrate` makes z90 of: each sample scored as
    the engine scores it by weights — and, with CHARS, a character model — trained without
    its fold."""
    char_terms = fold_char_terms(data, groups, readings_of) if CHARS else None
    return cross_validated_scores(data, groups, sample_weights=sample_weights,
                                  score_of=scorer(readings_of, WINDOWS,
                                                  char_terms and char_terms.__getitem__))


def calibrate(ham_scores) -> tuple[float, float]:
    """z90 from out-of-fold raw scores of training ham (module docstring), and the ham score at
    the HAM_TAIL quantile it starts from."""
    ranked = sorted(ham_scores, reverse=True)
    tail = ranked[int(len(ranked) * HAM_TAIL)]
    return round(max(CALIBRATION_FLOOR, tail + MARGIN), 4), tail


def check_calibration(data, groups, sample_weights, readings_of) -> list[dict]:
    """Nested cross-validation of `calibrate` (module docstring): one row per sensitivity with
    the outer folds' spam caught and ham flagged at z90 · (threshold - 50) / 40 — the raw
    score where engine.score_from_raw reaches that threshold. Each sample scored as the engine
    scores it (`raw_of_readings` of `extract`'s readings), with CHARS the character term
    trained inside each fold (`nested_char_terms`)."""
    nested = nested_cross_validated_scores(
        data, groups, sample_weights=sample_weights,
        score_of=lambda weights, i: base_of_readings(weights, readings_of[i], WINDOWS))
    if CHARS:
        nested = nested_char_terms(nested, data, groups, readings_of)
    else:
        for fold in nested:
            for scores in (fold.inner, fold.outer):
                for i, bases in scores.items():
                    scores[i] = engine_z(bases)
    z90s = [calibrate([z for i, z in fold.inner.items() if not data[i][1]])[0]
            for fold in nested]
    spam = sum(1 for _, is_spam in data if is_spam)
    ham = len(data) - spam
    rows = []
    for level, threshold in SENSITIVITY_THRESHOLDS.items():
        caught = flagged = 0
        for fold, z90 in zip(nested, z90s):
            cut = raw_for_score(threshold, z90)
            for i, z in fold.outer.items():
                if z >= cut:
                    caught += data[i][1]
                    flagged += not data[i][1]
        rows.append({"sensitivity": level, "threshold": threshold, "spam_caught": caught,
                     "spam": spam, "ham_flagged": flagged, "ham": ham,
                     "expected_fp": round(flagged / ham * EXPECTED_FP_PER, 2)})
    print(f"nested cross-validation of the calibration rule: z90 per outer fold {z90s}",
          file=sys.stderr)
    for r in rows:
        print(f"sensitivity {r['sensitivity']} (score >= {r['threshold']}): spam caught "
              f"{r['spam_caught']}/{r['spam']} ({r['spam_caught'] / r['spam']:.1%}), ham "
              f"flagged {r['ham_flagged']}/{r['ham']} -> expected false positives on "
              f"{EXPECTED_FP_PER} ham {r['expected_fp']}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rules", type=Path, default=defs.PACKAGED_DIR / defs.RULES_FILE)
    parser.add_argument("--out", type=Path, default=defs.PACKAGED_DIR)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--revision", type=int, default=DEFAULT_REVISION)
    parser.add_argument("--check-calibration", action="store_true",
                        help="judge the calibration rule by nested cross-validation; write "
                             "nothing")
    parser.add_argument("--fold-offset", type=int, default=0,
                        help="with --check-calibration: folds from the body hash's digits "
                             "N..N+8 instead of 0..8 (the other fold assignments of the "
                             "criterion, docs/antispam-model.md)")
    args = parser.parse_args(argv)

    try:
        settings = chars_settings()          # before minutes of work, not at the loader
    except ValueError as exc:
        print(f"train_spam_model: CHARS: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    rules_json = json.loads(args.rules.read_text())
    rules = RuleSet.from_json(rules_json)
    samples = [s for s in corpus_messages(args.corpus) if s.split == "train"]
    data, groups, readings_of = extract(samples, rules, windows=WINDOWS, delisted=DELISTED,
                                        chars=settings)
    sample_weights = [HARD_HAM_WEIGHT if s.group == "hard_ham" else 1.0 for s in samples]
    print(f"{len(data)} training messages ({sum(y for _, y in data)} spam) "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if args.check_calibration:
        groups = [key[args.fold_offset:] + key[:args.fold_offset] for key in groups]
        check_calibration(data, groups, sample_weights, readings_of)
        print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 0
    weights = train_model(data, sample_weights=sample_weights)
    oof = out_of_fold_scores(data, groups, sample_weights, readings_of)
    ham_scores = sorted((z for z, (_, is_spam) in zip(oof, data) if not is_spam), reverse=True)
    z90, tail = calibrate(ham_scores)
    oof_recall = sum(1 for z, (_, s) in zip(oof, data) if s and z >= z90) / max(
        1, sum(1 for _, s in data if s))
    info = {"corpus": "SpamAssassin public corpus (shared corpus spamham/)",
            "split": {"salt": SPLIT_SALT, "test_fraction": TEST_FRACTION, "part": "train"},
            "messages": {"spam": sum(1 for _, s in data if s),
                         "ham": sum(1 for _, s in data if not s)},
            "learner": {"model": MODEL, "iterations": ITERATIONS,
                        "learning_rate": LEARNING_RATE, "l2": L2, "nb_alpha": NB_ALPHA,
                        "nb_weight": NB_WEIGHT, "hard_ham_weight": HARD_HAM_WEIGHT,
                        "folds": FOLDS, "folds_grouped_by": "body key"},
            "calibration": {"oof_ham_tail": HAM_TAIL, "oof_ham_at_tail": round(tail, 4),
                            "worst_oof_ham": round(ham_scores[0], 4), "margin": MARGIN,
                            "oof_spam_recall_at_90": round(oof_recall, 4)}}
    chars = None
    if settings:
        chars = char_model.Chars(**settings,
                                 tables=train_chars(data, readings_of, range(len(data))))
    defs.write(args.out, version=args.version, revision=args.revision, rules_json=rules_json,
               bias=weights.bias, weights=weights.weights, z90=z90, info=info,
               windows=WINDOWS, delisted=DELISTED, chars=chars)
    print(f"{len(weights.weights)} weights, z90={z90} (out-of-fold ham at the tail {tail:.3f}, "
          f"out-of-fold spam recall at 90: {oof_recall:.3f}); written to {args.out} in "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
