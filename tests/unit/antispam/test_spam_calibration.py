"""The nested cross-validation that checks the score-90 calibration rule (learner.py,
tools/train_spam_model.py --check-calibration): which messages each score comes from."""

from __future__ import annotations

from core.scan.antispam.learner import fold_of, nested_cross_validated_scores


def _group(fold: int, n: int) -> str:
    """A body-hash-like key that learner.fold_of puts in `fold`."""
    return f"{fold + 5 * n:08x}" + "0" * 56


def _corpus():
    samples, groups = [], []
    for fold in range(5):
        for n in range(6):
            is_spam = n % 2 == 0
            features = {"spammy" if is_spam else "hammy", f"only-in-fold-{fold}"}
            samples.append((frozenset(features), is_spam))
            groups.append(_group(fold, n))
        samples.append((frozenset({f"only-in-fold-{fold}"}), False))
        groups.append(_group(fold, 6))
        samples.append((frozenset(), False))
        groups.append(_group(fold, 7))
    return samples, groups


def test_each_outer_fold_scores_its_own_messages_and_the_inner_folds_the_rest():
    samples, groups = _corpus()
    nested = nested_cross_validated_scores(samples, groups, iterations=50)
    assert [n.fold for n in nested] == list(range(5))
    for n in nested:
        mine = {i for i, g in enumerate(groups) if fold_of(g) == n.fold}
        assert set(n.outer) == mine
        assert set(n.inner) == set(range(len(samples))) - mine


def test_no_score_comes_from_weights_that_saw_the_message():
    samples, groups = _corpus()
    nested = nested_cross_validated_scores(samples, groups, iterations=50)
    for n in nested:
        for scores in (n.outer, n.inner):
            # a token found only in the message's own fold has no weight where it is scored:
            # the message with only that token scores like the one with no token at all
            by_fold: dict[int, dict[bool, float]] = {}
            for i, z in scores.items():
                features = samples[i][0]
                if len(features) <= 1 and "spammy" not in features and "hammy" not in features:
                    by_fold.setdefault(fold_of(groups[i]), {})[bool(features)] = z
            for pair in by_fold.values():
                assert pair[True] == pair[False]
        spam = [z for i, z in n.outer.items() if samples[i][1]]
        ham = [z for i, z in n.outer.items() if "hammy" in samples[i][0]]
        assert min(spam) > 0 > max(ham)


def test_the_check_without_a_character_model_scores_each_message_by_its_largest_reading(
        monkeypatch):
    # tools/train_spam_model.py check_calibration without CHARS (review25b T1): each
    # message's z is the largest of its readings' (a relayed message read two ways), as the
    # engine's; a spam whose second reading alone clears the cut is caught
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
    import train_spam_model as trainer
    from core.scan.antispam.learner import NestedFold

    samples, groups = _corpus()
    spam = [i for i, (_, is_spam) in enumerate(samples) if is_spam]

    def nested(data, groups_, *, sample_weights, score_of):
        folds = []
        for k in range(5):
            fold = NestedFold(k)
            for i in range(len(data)):
                # ham low everywhere; spam: 0 in its first reading, 10 in its second
                bases = (0.0, 10.0) if data[i][1] else (-1.0,)
                (fold.outer if fold_of(groups_[i]) == k else fold.inner)[i] = bases
            folds.append(fold)
        return folds

    monkeypatch.setattr(trainer, "nested_cross_validated_scores", nested)
    monkeypatch.setattr(trainer, "CHARS", None)
    rows = trainer.check_calibration(samples, groups, [1.0] * len(samples),
                                     [[()] for _ in samples])
    assert rows[0]["spam_caught"] == len(spam) and rows[0]["ham_flagged"] == 0
