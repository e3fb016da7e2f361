"""The learners of the heuristic engine's model (learner.py): the naive-Bayes log-count
ratios, and the shipped sum of three learners as one weight per feature."""

from __future__ import annotations

import math

from core.scan.antispam.learner import log_count_ratios, raw_score, train_model


def _samples():
    spam = [{"cash", "now", "a"}, {"cash", "free", "b"}, {"free", "now", "a"}]
    ham = [{"meeting", "now", "a"}, {"meeting", "patch", "b"}]
    return ([(frozenset(f), True) for f in spam] + [(frozenset(f), False) for f in ham])


def test_log_count_ratios_are_laplace_smoothed_document_counts():
    nb = log_count_ratios(_samples(), sample_weights=[1.0] * 5)
    # "cash": 2 of 3 spam, 0 of 2 ham; Laplace 1
    assert math.isclose(nb.weights["cash"], round(math.log(3 / 5) - math.log(1 / 4), 4))
    # "now": 2 of 3 spam, 1 of 2 ham
    assert math.isclose(nb.weights["now"], round(math.log(3 / 5) - math.log(2 / 4), 4))
    assert math.isclose(nb.bias, round(math.log(3 / 2), 4))
    # a ham weighing 3 counts three times
    heavy = log_count_ratios(_samples(), sample_weights=[1.0] * 3 + [3.0, 1.0])
    assert math.isclose(heavy.weights["now"], round(math.log(3 / 5) - math.log(4 / 6), 4))
    assert "patch" not in heavy.weights      # in one message only (MIN_DOCUMENTS)


def test_the_model_is_one_weight_per_feature_with_the_naive_bayes_added():
    samples = _samples()
    without = train_model(samples, nb_weight=0.0, iterations=50)
    nb = log_count_ratios(samples)
    model = train_model(samples, nb_weight=0.5, iterations=50)
    for feature, weight in nb.weights.items():
        expected = without.weights.get(feature, 0.0) + 0.5 * weight
        assert abs(model.weights.get(feature, 0.0) - expected) < 2e-4
    assert abs(model.bias - (without.bias + 0.5 * nb.bias)) < 2e-4
    assert train_model(samples, nb_weight=0.5, iterations=50) == model     # deterministic
    spam = [raw_score(model, f) for f, is_spam in samples if is_spam]
    ham = [raw_score(model, f) for f, is_spam in samples if not is_spam]
    assert min(spam) > 0 > max(ham)
