"""Detection quality on the held-out part of the corpus split (core/scan/antispam/training.py:
salt "mailmoat-antispam-split-v1", 30 % test by body hash). The shipped definitions never saw
these messages (tools/train_spam_model.py trains on the other part).

The fast test asserts the engine's own figures (docs/antispam.md table); the slow one runs
Debian's SpamAssassin offline with Bayes trained on the same training part, on the same test
messages, in the same run (bench/antispam_eval.py), and compares.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # bench/ is not installed

from bench.antispam_eval import engine_table, run_spamassassin, score_engine, split  # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS      # noqa: E402
from tests.support.tools import require_tool                 # noqa: E402

# Figures of the shipped definitions on the held-out set (recall floor per sensitivity, and
# the most ham false positives allowed); docs/antispam.md has the full table.
EXPECTED = {1: (0.93, 0), 2: (0.94, 0), 3: (0.94, 0), 4: (0.94, 0), 5: (0.95, 0)}


@pytest.fixture(scope="module")
def held_out():
    if not (DEFAULT_CORPUS / "MANIFEST").exists():
        pytest.skip("shared corpus not present")
    train, test = split(DEFAULT_CORPUS)
    return train, test, score_engine(test)


def test_split_is_fixed_and_holds_out_a_few_hundred_messages(held_out):
    train, test, _ = held_out
    counts = {(s.label, s.split) for s in train + test}
    assert len(train) == 2991 and len(test) == 1285
    assert sum(s.label == "ham" for s in test) == 889
    assert sum(s.label == "spam" for s in test) == 396
    assert not {s.path for s in train} & {s.path for s in test}
    assert counts == {("ham", "train"), ("spam", "train"), ("ham", "test"), ("spam", "test")}


def test_engine_figures_on_held_out_mail(held_out):
    _, test, scores = held_out
    for row in engine_table(test, scores):
        recall_floor, max_fp = EXPECTED[row["sensitivity"]]
        assert row["spam_recall"] >= recall_floor, row
        assert row["ham_fp"] <= max_fp, row
    # default sensitivity: not one false positive
    assert engine_table(test, scores)[0]["ham_fp"] == 0


@pytest.mark.slow
def test_against_spamassassin_with_bayes_same_messages_same_run(held_out):
    for tool in ("spamassassin", "spamd", "spamc", "sa-learn"):
        require_tool(tool, "spamassassin" if tool != "spamc" else "spamc")
    train, test, scores = held_out
    # not tmp_path: pytest makes its parents 0700, and spamd runs as nobody
    with tempfile.TemporaryDirectory(prefix="mailmoat-sa-") as workdir:
        sa = run_spamassassin(train, test, Path(workdir))
    ours = engine_table(test, scores)[0]
    assert ours["ham_fp"] == 0
    assert sa["spam_recall"] > 0.5          # SpamAssassin really ran, with its Bayes
    # Target of issue 7: recall at the default sensitivity at least SpamAssassin's. Not met
    # yet (docs/antispam.md: 93.4 % at score 90 against 94.2 % with 5 false positives; the
    # model reaches 95.5 % without a false positive at score 50, but the score 90 point is
    # calibrated on training-part cross-validation only): an expected failure until a model
    # update reaches it, then a plain pass.
    if ours["spam_recall"] < sa["spam_recall"]:
        pytest.xfail(f"recall {ours['spam_recall']:.1%} < SpamAssassin {sa['spam_recall']:.1%} "
                     f"(SpamAssassin false positives: {sa['ham_fp']})")
