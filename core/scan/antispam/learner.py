"""Training of the heuristic engine's weights: logistic regression over message features.

What it owns
    `train(samples, ...)` -> `Weights`: a weight per feature (tokens from tokenizer.py and rule
    hits "r:<name>" from heuristic_rules.py) and a bias, fitted by stochastic gradient
    descent on the log loss with L2 shrinkage. A message's raw score is
    z = bias + Σ weight(feature) over its features; P(spam) = 1 / (1 + e^-z).
    `calibrate(...)` picks the z that score 90 stands for (model.py turns z into 1..100).

Rules
    1. Deterministic: the same samples, in the same order, with the same seed give the same
       weights (tools/train_spam_model.py is reproducible byte for byte).
    2. Only features seen in at least MIN_DOCUMENTS training messages get a weight; weights
       under PRUNE_BELOW are dropped from the model (they change no decision and cost space).
    3. Training runs offline (tools/, bench/), never in the core.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

__all__ = ["Weights", "train", "raw_score", "cross_validated_scores", "EPOCHS",
           "LEARNING_RATE", "L2", "MIN_DOCUMENTS", "SEED"]

EPOCHS = 20
LEARNING_RATE = 0.2
L2 = 1e-5
MIN_DOCUMENTS = 2
PRUNE_BELOW = 0.002
SEED = 20021
_CLIP = 35.0


@dataclass
class Weights:
    bias: float
    weights: dict[str, float]


def raw_score(weights: Weights, features) -> float:
    get = weights.weights.get
    return weights.bias + sum(get(f, 0.0) for f in features)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, _CLIP), -_CLIP)))


def train(samples: list[tuple[frozenset, bool]], *, epochs: int = EPOCHS,
          learning_rate: float = LEARNING_RATE, l2: float = L2, seed: int = SEED) -> Weights:
    """Fit weights to (features, is_spam) samples (rules 1-2)."""
    documents: Counter = Counter()
    for features, _ in samples:
        documents.update(features)
    vocabulary = {f for f, n in documents.items() if n >= MIN_DOCUMENTS}
    rows = [([f for f in sorted(features) if f in vocabulary], 1.0 if is_spam else 0.0)
            for features, is_spam in samples]
    weights: dict[str, float] = {}
    bias = 0.0
    order = list(range(len(rows)))
    rng = random.Random(seed)
    for epoch in range(epochs):
        rng.shuffle(order)
        rate = learning_rate / (1.0 + 0.5 * epoch)
        decay = 1.0 - rate * l2
        for index in order:
            features, target = rows[index]
            z = bias + sum(weights.get(f, 0.0) for f in features)
            gradient = rate * (target - _sigmoid(z))
            bias += gradient
            for f in features:
                weights[f] = weights.get(f, 0.0) * decay + gradient
    kept = {f: round(w, 4) for f, w in weights.items() if abs(w) >= PRUNE_BELOW}
    return Weights(round(bias, 4), kept)


def cross_validated_scores(samples: list[tuple[frozenset, bool]], folds: int = 5,
                           **options) -> list[float]:
    """Out-of-fold raw scores: each sample scored by weights trained without it (used to
    calibrate the score scale on messages the weights have not memorised)."""
    scores = [0.0] * len(samples)
    for fold in range(folds):
        held = [i for i in range(len(samples)) if i % folds == fold]
        held_set = set(held)
        weights = train([s for i, s in enumerate(samples) if i not in held_set], **options)
        for i in held:
            scores[i] = raw_score(weights, samples[i][0])
    return scores
