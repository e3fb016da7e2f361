"""Windowed scoring (core/scan/antispam/windows.py): the text read in windows of words, so a
block of padding can only take what shares its window (docs/antispam-model.md, "Windowed
scoring (twenty-first session)").

Real definitions sets written and loaded by definitions.py, real views from the pipeline's
decomposer; the weights of the first tests are made by hand so that what each window holds
is known."""

from __future__ import annotations

import json

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam.engine import HeuristicEngine
from core.scan.antispam.tokenizer import window_tokens
from core.scan.antispam.training import view_of
from core.scan.antispam.windows import Windows, is_text_feature, windowed_raw

WINDOWS = Windows(words=10, delta=0.5)


def test_text_features_are_those_the_text_makes():
    assert all(map(is_text_feature, ["viagra", "C:FREE", "u:example.com", "up:order",
                                     "skip:h 30", "email:example.com"]))
    assert not any(map(is_text_feature, ["s:free", "h:from:x", "x:mime:defect", "r:gtube",
                                         "n:len3", "c:url_none", "t:font"]))


def test_a_padding_block_cannot_pull_the_spams_own_window_down():
    weights = {"cash": 2.0, "now": 1.0, "kernel": -0.2, "patch": -0.2, "h:x": 0.5}
    found = {"cash", "now", "kernel", "patch", "h:x"}
    spam_window, padding = {"cash", "now"}, {"kernel", "patch"}
    plain = -1.0 + 0.5 + 3.0 - 0.4
    assert windowed_raw(found, [spam_window, padding], weights, -1.0, WINDOWS) == \
        pytest.approx(max(plain, -1.0 + 0.5 + 3.0 - 0.5))
    # the same words in one window: the sum, as before
    assert windowed_raw(found, [found - {"h:x"}], weights, -1.0, WINDOWS) == \
        pytest.approx(plain)


def test_a_hams_best_window_keeps_its_own_words_evidence():
    # ham evidence spread over windows: its best window still holds its own ham words
    # (-1.0 + 0.3), delta below; the other window's are what it no longer counts
    weights = {"meeting": -1.0, "agenda": -1.0, "free": 0.3, "minutes": -1.0}
    found = set(weights)
    z = windowed_raw(found, [{"meeting", "free"}, {"agenda", "minutes"}], weights, 0.0,
                     WINDOWS)
    assert z == pytest.approx(max(-2.7, -0.7 - 0.5))
    # the other windows taking no more than delta from the best: the sum
    weights = {"free": 0.5, "meeting": -0.3, "agenda": -0.3}
    z = windowed_raw(set(weights), [{"free", "meeting"}, {"agenda"}], weights, 0.0, WINDOWS)
    assert z == pytest.approx(-0.1)


def test_the_windows_are_read_only_when_they_can_matter():
    weights = {"cash": 2.0, "kernel": -0.2}
    never = _Unread()
    # negative text evidence no larger than delta: the windows cannot change the score
    assert windowed_raw({"cash", "kernel"}, never, weights, 0.0, WINDOWS) == 1.8
    # the sum at score 100 already
    weights["kernel"] = -5.0
    assert windowed_raw({"cash", "kernel"}, never, weights, 10.0, WINDOWS,
                        ceiling=6.0) == 7.0


class _Unread:
    def __iter__(self):
        raise AssertionError("the windows were read")


def test_a_text_feature_no_window_makes_counts_once_at_its_full_weight():
    # an HTML link's URL is in the markup, not the text: outside every window
    weights = {"u:example.com": -3.0, "cash": 2.0, "kernel": -1.0}
    found = set(weights)
    z = windowed_raw(found, [{"cash"}, {"kernel"}], weights, 0.0, WINDOWS)
    assert z == pytest.approx(max(-2.0, -3.0 + 2.0 - 0.5))


def test_windows_follow_the_tokenizer_part_by_part():
    message = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\n" +
               b" ".join(b"word%d" % i for i in range(25)) + b" FREE http://example.com/x\r\n")
    windows = list(window_tokens(view_of(message).as_learned(), 10))
    assert len(windows) == 3
    assert "word0" in windows[0] and "word10" in windows[1]
    assert {"C:FREE", "u:example.com", "word20"} <= windows[2]


def test_definitions_carry_their_windows(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    rules = json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text())
    for name, windows in (("plain", None), ("windowed", Windows(200, 0.5))):
        defs.write(tmp_path / name, version="2030-01-02", revision=9, rules_json=rules,
                   bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={},
                   windows=windows)
        assert defs.load(tmp_path / name).windows == windows
    defs.write(tmp_path / "bad", version="2030-01-02", revision=9, rules_json=rules,
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={},
               windows=Windows(2, 0.5))
    with pytest.raises(defs.DefinitionsError, match="model.json.gz.*at least 10 words"):
        defs.load(tmp_path / "bad")


def test_a_set_without_windows_scores_the_plain_sum(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    rules = json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text())
    defs.write(tmp_path / "plain", version="2030-01-02", revision=9, rules_json=rules,
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={})
    plain = defs.load(tmp_path / "plain")
    view = view_of(b"From: a@example.com\r\nSubject: hello\r\n\r\n" +
                   b"cash now " * 300 + b"\r\n")
    score = HeuristicEngine(plain).score(view)
    found = score.found
    assert score.raw == pytest.approx(plain.bias + sum(plain.weights.get(f, 0.0)
                                                       for f in found))
