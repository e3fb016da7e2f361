"""Training of the heuristic engine's weights: logistic regression over message features.

What it owns
    `train(samples, ...)` -> `Weights`: a weight per feature (tokens from tokenizer.py and rule
    hits "r:<name>" from heuristic_rules.py) and a bias, fitted by full-batch gradient descent
    (Adam steps, ITERATIONS of them) on the weighted mean log loss plus L2/2 · |w|². A
    message's raw score is z = bias + Σ weight(feature) over its features;
    P(spam) = 1 / (1 + e^-z). Each sample may carry a weight (the training script weighs the
    corpus' hard ham — newsletters and promotions from senders the reader asked for — so the
    boundary is drawn away from them, since a false positive costs more than a miss).
    `cross_validated_scores(...)` gives out-of-fold raw scores, folds grouped by a key (the
    body hash) so near-copies are never on both sides; the training script calibrates the
    score scale (engine.py) on them. `nested_cross_validated_scores(...)` repeats that inside
    each outer fold's training part, so a calibration rule can be checked on messages neither
    the model nor the rule saw (tools/train_spam_model.py --check-calibration).

Rules
    1. Deterministic: the same samples, in the same order, give the same weights
       (tools/train_spam_model.py is reproducible byte for byte).
    2. Only features seen in at least MIN_DOCUMENTS training messages get a weight; weights
       under PRUNE_BELOW are dropped from the model (they change no decision and cost space).
    3. Training runs offline (tools/, bench/), never in the core; it uses numpy, scoring
       (`raw_score`, engine.py) does not.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Weights", "train", "raw_score", "cross_validated_scores", "fold_of",
           "NestedFold", "nested_cross_validated_scores", "ITERATIONS",
           "LEARNING_RATE", "L2", "MIN_DOCUMENTS", "FOLDS"]

ITERATIONS = 400
LEARNING_RATE = 0.1
L2 = 1e-3
MIN_DOCUMENTS = 2
PRUNE_BELOW = 0.002
FOLDS = 5
_CLIP = 35.0


@dataclass
class Weights:
    bias: float
    weights: dict[str, float]


def raw_score(weights: Weights, features) -> float:
    get = weights.weights.get
    return weights.bias + sum(get(f, 0.0) for f in features)


def train(samples: list[tuple[frozenset, bool]], *, sample_weights=None,
          iterations: int = ITERATIONS, learning_rate: float = LEARNING_RATE,
          l2: float = L2) -> Weights:
    """Fit weights to (features, is_spam) samples (rules 1-2); `sample_weights` (one per
    sample, default 1) say how much each counts in the loss."""
    import numpy as np

    documents: Counter = Counter()
    for features, _ in samples:
        documents.update(features)
    vocabulary = sorted(f for f, n in documents.items() if n >= MIN_DOCUMENTS)
    index = {f: i for i, f in enumerate(vocabulary)}
    rows = [sorted(index[f] for f in features if f in index) for features, _ in samples]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    columns = np.array([i for r in rows for i in r], dtype=np.int64)
    row_of = np.repeat(np.arange(len(rows)), lengths)
    n, d = len(rows), len(vocabulary)
    y = np.array([1.0 if is_spam else 0.0 for _, is_spam in samples])
    share = np.ones(n) if sample_weights is None else np.asarray(sample_weights, dtype=float)
    share = share / share.sum()
    w, b = np.zeros(d), 0.0
    m, v, mb, vb = np.zeros(d), np.zeros(d), 0.0, 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, iterations + 1):
        z = np.bincount(row_of, weights=w[columns], minlength=n) + b
        residual = (1.0 / (1.0 + np.exp(-np.clip(z, -_CLIP, _CLIP))) - y) * share
        grad = np.bincount(columns, weights=residual[row_of], minlength=d) + l2 * w
        grad_b = float(residual.sum())
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        mb = beta1 * mb + (1 - beta1) * grad_b
        vb = beta2 * vb + (1 - beta2) * grad_b * grad_b
        step = learning_rate * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        w -= step * m / (np.sqrt(v) + eps)
        b -= step * mb / (math.sqrt(vb) + eps)
    kept = {f: round(float(x), 4) for f, x in zip(vocabulary, w) if abs(x) >= PRUNE_BELOW}
    return Weights(round(b, 4), kept)


def fold_of(group_key: str, folds: int = FOLDS) -> int:
    """The cross-validation fold of a sample whose group key is a hex digest."""
    return int(group_key[:8], 16) % folds


def cross_validated_scores(samples: list[tuple[frozenset, bool]], groups: list[str], *,
                           folds: int = FOLDS, sample_weights=None, **options) -> list[float]:
    """Out-of-fold raw scores: each sample scored by weights trained without its fold; the
    fold is `fold_of(groups[i])`, so samples with one group key (identical bodies) share it."""
    fold = [fold_of(g, folds) for g in groups]
    scores = [0.0] * len(samples)
    for k in range(folds):
        keep = [i for i in range(len(samples)) if fold[i] != k]
        weights = train([samples[i] for i in keep],
                        sample_weights=None if sample_weights is None
                        else [sample_weights[i] for i in keep], **options)
        for i in range(len(samples)):
            if fold[i] == k:
                scores[i] = raw_score(weights, samples[i][0])
    return scores


@dataclass
class NestedFold:
    """One outer fold of a nested cross-validation: `inner` maps each index of the outer
    training part to its out-of-fold raw score from the inner folds (what the calibration rule
    sees), `outer` maps each index of the outer fold to its raw score from weights trained on
    the whole outer training part (what the rule's threshold is applied to)."""
    fold: int
    inner: dict[int, float] = field(default_factory=dict)
    outer: dict[int, float] = field(default_factory=dict)


def nested_cross_validated_scores(samples: list[tuple[frozenset, bool]], groups: list[str], *,
                                  folds: int = FOLDS, sample_weights=None,
                                  **options) -> list[NestedFold]:
    """Nested cross-validation over the folds of `fold_of(groups[i])`: for each outer fold k,
    the other folds are the outer training part; inside it, each remaining fold j is scored by
    weights trained on the outer training part without j (inner out-of-fold scores), and fold
    k is scored by weights trained on the whole outer training part. A rule that turns inner
    scores into a threshold can then be judged on fold k, which neither it nor the weights
    saw — as the shipped model's threshold is judged on the held-out test part."""
    fold = [fold_of(g, folds) for g in groups]
    weight_of = (lambda i: 1.0) if sample_weights is None else sample_weights.__getitem__

    def fit(indices):
        return train([samples[i] for i in indices],
                     sample_weights=None if sample_weights is None
                     else [weight_of(i) for i in indices], **options)

    out = []
    for k in range(folds):
        part = [i for i in range(len(samples)) if fold[i] != k]
        result = NestedFold(k)
        for j in range(folds):
            if j == k:
                continue
            weights = fit([i for i in part if fold[i] != j])
            for i in part:
                if fold[i] == j:
                    result.inner[i] = raw_score(weights, samples[i][0])
        weights = fit(part)
        for i in range(len(samples)):
            if fold[i] == k:
                result.outer[i] = raw_score(weights, samples[i][0])
        out.append(result)
    return out
