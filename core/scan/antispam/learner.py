"""Training of the heuristic engine's weights: a linear model over message features.

What it owns
    `train_model(samples, ...)` -> `Weights`: a weight per feature (tokens from tokenizer.py
    and rule hits "r:<name>" from heuristic_rules.py) and a bias. A message's raw score is
    z = bias + Σ weight(feature) over its features, a log-odds of spam. The weights are the
    sum of three learners fitted on the same features (MODEL below), each linear, so the sum
    is one weight per feature and scoring (`raw_score`, engine.py) does not know there were
    three:
      - `train`: logistic regression, fitted by full-batch gradient descent (Adam steps,
        ITERATIONS of them) on the weighted mean log loss plus L2/2 · |w|²;
      - the same logistic regression over features scaled by |r|, r being each feature's
        naive-Bayes log-count ratio (`log_count_ratios`, unweighted counts) — "NBSVM"
        (Wang & Manning 2012): the regression starts from what each word says on its own;
      - a naive Bayes over the features present (`log_count_ratios` with the sample weights:
        log P(f | spam) / P(f | ham), Laplace NB_ALPHA, bias log(spam / ham)), damped by
        NB_WEIGHT since its log-odds are overconfident.
    Each sample may carry a weight (the training script weighs the corpus' hard ham —
    newsletters and promotions from senders the reader asked for — so the boundary is drawn
    away from them, since a false positive costs more than a miss).
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

__all__ = ["Weights", "train", "train_model", "log_count_ratios", "raw_score",
           "cross_validated_scores", "fold_of", "NestedFold", "nested_cross_validated_scores",
           "ITERATIONS", "LEARNING_RATE", "L2", "MIN_DOCUMENTS", "FOLDS", "NB_ALPHA",
           "NB_WEIGHT", "MODEL"]

ITERATIONS = 400
LEARNING_RATE = 0.1
L2 = 1e-3
MIN_DOCUMENTS = 2
PRUNE_BELOW = 0.002
FOLDS = 5
NB_ALPHA = 1.0
# the naive Bayes' share of the sum; chosen, like the other settings, by cross-validation
# inside the training part (docs/antispam-model.md, "Model families (rev 2)")
NB_WEIGHT = 0.015
MODEL = ("0.5 logistic regression + 0.5 NB-scaled logistic regression (NBSVM) + "
         f"{NB_WEIGHT} naive Bayes")
_CLIP = 35.0


@dataclass
class Weights:
    bias: float
    weights: dict[str, float]


def raw_score(weights: Weights, features) -> float:
    get = weights.weights.get
    return math.fsum([weights.bias, *(get(f, 0.0) for f in features)])   # windows.py rule 4


class _Matrix:
    """The samples as a sparse 0/1 matrix over the features in >= MIN_DOCUMENTS of them."""

    def __init__(self, samples, sample_weights):
        import numpy as np

        documents: Counter = Counter()
        for features, _ in samples:
            documents.update(features)
        self.vocabulary = sorted(f for f, n in documents.items() if n >= MIN_DOCUMENTS)
        index = {f: i for i, f in enumerate(self.vocabulary)}
        rows = [sorted(index[f] for f in features if f in index) for features, _ in samples]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        self.columns = np.array([i for r in rows for i in r], dtype=np.int64)
        self.row_of = np.repeat(np.arange(len(rows)), lengths)
        self.n, self.d = len(rows), len(self.vocabulary)
        self.y = np.array([1.0 if is_spam else 0.0 for _, is_spam in samples])
        self.share = (np.ones(self.n) if sample_weights is None
                      else np.asarray(sample_weights, dtype=float))

    def log_count_ratios(self, weighted: bool, alpha: float = NB_ALPHA):
        """Per feature log P(f | spam) / P(f | ham) (document counts, Laplace alpha; with the
        sample weights or without), and log(spam / ham)."""
        import numpy as np

        share = self.share if weighted else np.ones(self.n)
        entry = share[self.row_of]
        spam_entry = self.y[self.row_of] == 1.0
        spam = np.bincount(self.columns[spam_entry], weights=entry[spam_entry],
                           minlength=self.d)
        ham = np.bincount(self.columns[~spam_entry], weights=entry[~spam_entry],
                          minlength=self.d)
        n_spam = float(share[self.y == 1.0].sum())
        n_ham = float(share[self.y == 0.0].sum())
        ratios = (np.log((spam + alpha) / (n_spam + 2 * alpha))
                  - np.log((ham + alpha) / (n_ham + 2 * alpha)))
        return ratios, math.log(max(n_spam, 1e-9) / max(n_ham, 1e-9))

    def logistic(self, *, scale=None, iterations: int = ITERATIONS,
                 learning_rate: float = LEARNING_RATE, l2: float = L2):
        """Weights (per feature, in units of the unscaled 0/1 feature) and bias of the
        logistic regression over the features, each multiplied by `scale` (default 1)."""
        import numpy as np

        n, d, columns, row_of, y = self.n, self.d, self.columns, self.row_of, self.y
        values = None if scale is None else scale[columns]
        share = self.share / self.share.sum()
        w, b = np.zeros(d), 0.0
        m, v, mb, vb = np.zeros(d), np.zeros(d), 0.0, 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for t in range(1, iterations + 1):
            entries = w[columns] if values is None else w[columns] * values
            z = np.bincount(row_of, weights=entries, minlength=n) + b
            residual = (1.0 / (1.0 + np.exp(-np.clip(z, -_CLIP, _CLIP))) - y) * share
            spread = residual[row_of] if values is None else residual[row_of] * values
            grad = np.bincount(columns, weights=spread, minlength=d) + l2 * w
            grad_b = float(residual.sum())
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            mb = beta1 * mb + (1 - beta1) * grad_b
            vb = beta2 * vb + (1 - beta2) * grad_b * grad_b
            step = learning_rate * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
            w -= step * m / (np.sqrt(v) + eps)
            b -= step * mb / (math.sqrt(vb) + eps)
        return (w if scale is None else w * scale), b

    def weights(self, w, b) -> Weights:
        kept = {f: round(float(x), 4) for f, x in zip(self.vocabulary, w)
                if abs(x) >= PRUNE_BELOW}
        return Weights(round(float(b), 4), kept)


def train(samples: list[tuple[frozenset, bool]], *, sample_weights=None,
          iterations: int = ITERATIONS, learning_rate: float = LEARNING_RATE,
          l2: float = L2) -> Weights:
    """The logistic regression alone (rules 1-2): weights fitted to (features, is_spam)
    samples; `sample_weights` (one per sample, default 1) say how much each counts in the
    loss."""
    matrix = _Matrix(samples, sample_weights)
    return matrix.weights(*matrix.logistic(iterations=iterations,
                                           learning_rate=learning_rate, l2=l2))


def log_count_ratios(samples: list[tuple[frozenset, bool]], *, sample_weights=None,
                     alpha: float = NB_ALPHA) -> Weights:
    """The naive Bayes over the features present: weight = log P(f | spam) / P(f | ham) from
    (weighted) document counts with Laplace `alpha`, bias = log(spam / ham)."""
    matrix = _Matrix(samples, sample_weights)
    return matrix.weights(*matrix.log_count_ratios(sample_weights is not None, alpha))


def train_model(samples: list[tuple[frozenset, bool]], *, sample_weights=None,
                nb_weight: float = NB_WEIGHT, iterations: int = ITERATIONS,
                learning_rate: float = LEARNING_RATE, l2: float = L2) -> Weights:
    """The shipped model (module docstring, MODEL; rules 1-2): 0.5 · logistic regression +
    0.5 · NB-scaled logistic regression + nb_weight · naive Bayes, as one weight per
    feature."""
    import numpy as np

    matrix = _Matrix(samples, sample_weights)
    options = {"iterations": iterations, "learning_rate": learning_rate, "l2": l2}
    w_lr, b_lr = matrix.logistic(**options)
    ratios, _ = matrix.log_count_ratios(weighted=False)
    w_nbsvm, b_nbsvm = matrix.logistic(scale=np.abs(ratios), **options)
    w_nb, b_nb = matrix.log_count_ratios(weighted=sample_weights is not None)
    return matrix.weights(0.5 * w_lr + 0.5 * w_nbsvm + nb_weight * w_nb,
                          0.5 * b_lr + 0.5 * b_nbsvm + nb_weight * b_nb)


def fold_of(group_key: str, folds: int = FOLDS) -> int:
    """The cross-validation fold of a sample whose group key is a hex digest."""
    return int(group_key[:8], 16) % folds


def cross_validated_scores(samples: list[tuple[frozenset, bool]], groups: list[str], *,
                           folds: int = FOLDS, sample_weights=None, score_of=None,
                           **options) -> list[float]:
    """Out-of-fold raw scores: each sample scored by weights trained without its fold; the
    fold is `fold_of(groups[i])`, so samples with one group key (identical bodies) share it.
    `score_of(weights, i)`: how sample i is scored (default `raw_score` of its features;
    the training script's windowed reading, windows.py)."""
    score_of = score_of or (lambda weights, i: raw_score(weights, samples[i][0]))
    fold = [fold_of(g, folds) for g in groups]
    scores = [0.0] * len(samples)
    for k in range(folds):
        keep = [i for i in range(len(samples)) if fold[i] != k]
        weights = train_model([samples[i] for i in keep],
                              sample_weights=None if sample_weights is None
                              else [sample_weights[i] for i in keep], **options)
        for i in range(len(samples)):
            if fold[i] == k:
                scores[i] = score_of(weights, i)
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
                                  folds: int = FOLDS, sample_weights=None, score_of=None,
                                  **options) -> list[NestedFold]:
    """Nested cross-validation over the folds of `fold_of(groups[i])`: for each outer fold k,
    the other folds are the outer training part; inside it, each remaining fold j is scored by
    weights trained on the outer training part without j (inner out-of-fold scores), and fold
    k is scored by weights trained on the whole outer training part. A rule that turns inner
    scores into a threshold can then be judged on fold k, which neither it nor the weights
    saw — as the shipped model's threshold is judged on the held-out test part. `score_of`:
    as for `cross_validated_scores`."""
    score_of = score_of or (lambda weights, i: raw_score(weights, samples[i][0]))
    fold = [fold_of(g, folds) for g in groups]
    weight_of = (lambda i: 1.0) if sample_weights is None else sample_weights.__getitem__

    def fit(indices):
        return train_model([samples[i] for i in indices],
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
                    result.inner[i] = score_of(weights, i)
        weights = fit(part)
        for i in range(len(samples)):
            if fold[i] == k:
                result.outer[i] = score_of(weights, i)
        out.append(result)
    return out
