"""Windowed scoring (core/scan/antispam/windows.py): the text read in windows of words, so a
block of padding can only take what shares its window (docs/antispam-model.md, "Windowed
scoring (twenty-first session)").

Real definitions sets written and loaded by definitions.py, real views from the pipeline's
decomposer; the weights of the first tests are made by hand so that what each window holds
is known."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam import learner
from core.scan.antispam.engine import HeuristicEngine, raw_of
from core.scan.antispam.tokenizer import MAX_TOKENS, tokens, window_tokens
from core.scan.antispam.training import view_of
from core.scan.antispam.windows import SIDES, Windows, is_text_feature, windowed_raw
from tests.support.definitions import packaged_spam_read

WINDOWS = Windows(words=10, delta=0.5)


def test_text_features_are_those_the_text_makes():
    assert all(map(is_text_feature, ["viagra", "C:FREE", "u:example.com", "up:order",
                                     "skip:h 30", "email:example.com"]))
    assert not any(map(is_text_feature, ["s:free", "h:from:x", "x:mime:defect", "r:gtube",
                                         "n:len3", "c:url_none", "t:font"]))


def test_a_padding_block_cannot_pull_the_spams_own_window_down():
    weights = {"cash": 2.0, "now": 1.0, "kernel": -1.5, "patch": -1.5, "h:x": 0.5}
    found = {"cash", "now", "kernel", "patch", "h:x"}
    spam_window, padding = {"cash", "now"}, {"kernel", "patch"}
    plain = -1.0 + 0.5 + 3.0 - 3.0
    # the padding's window is outvoted by the spam's: the spam's own words, delta below
    assert windowed_raw(found, [spam_window, padding], weights, -1.0, WINDOWS) == \
        pytest.approx(-1.0 + 0.5 + 3.0 - 0.5)
    # the same words in one window: the sum, as before
    assert windowed_raw(found, [found - {"h:x"}], weights, -1.0, WINDOWS) == \
        pytest.approx(plain)


def test_a_window_of_words_the_model_does_not_know_is_no_window_of_0():
    # windows.py rule 2: else a ham whose every window weighs towards ham would be lifted
    weights = {"meeting": -2.0, "agenda": -2.0}
    found = {"meeting", "agenda", "zxqv"}
    z = windowed_raw(found, [{"meeting"}, {"agenda"}, {"zxqv"}], weights, 0.0, WINDOWS)
    assert z == pytest.approx(max(-4.0, -2.0 - 0.5))


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


@pytest.mark.parametrize("off_window, urls", [(SIDES[0], SIDES[0]), (SIDES[1], SIDES[0]),
                                              (SIDES[1], SIDES[1])])
def test_the_windows_are_read_only_when_they_can_matter(off_window, urls):
    windows = Windows(10, 0.5, off_window, urls)
    weights = {"cash": 2.0, "kernel": -0.2, "u:example.com": -0.25}
    never = _Unread()
    # negative text evidence no larger than delta: the windows cannot change the score,
    # whether it is in a window or not (rule 5 leaves out no more than that)
    assert windowed_raw(set(weights), never, weights, 0.0, windows) == pytest.approx(1.55)
    assert windowed_raw(set(weights), [{"cash"}, {"kernel"}], weights, 0.0, windows) == \
        pytest.approx(1.55)
    # the sum at score 100 already
    weights["kernel"] = -5.0
    assert windowed_raw({"cash", "kernel"}, never, weights, 10.0, windows,
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


def _windows(message: bytes, words: int) -> list[set[str]]:
    text_parts: list = []
    tokens(view_of(message).as_learned(), text_parts)
    return list(window_tokens(text_parts, words))


def test_windows_follow_the_tokenizer_part_by_part():
    def part(first: int, last: str) -> bytes:
        return (b"--b\r\nContent-Type: text/plain\r\n\r\n" +
                b" ".join(b"word%d" % i for i in range(first, first + 25)) + last + b"\r\n")
    message = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; "
               b"boundary=b\r\n\r\n" + part(0, b" FREE http://example.com/x") +
               part(100, b"") + b"--b--\r\n")
    windows = _windows(message, 10)
    assert len(windows) == 6                     # 3 per part: a window never spans parts
    assert "word0" in windows[0] and "word10" in windows[1]
    assert {"C:FREE", "u:example.com", "word20"} <= windows[2]
    assert "word100" in windows[3] and "word124" in windows[5]


def test_windows_read_no_more_than_the_tokenizer_does():
    # review21c R1: past MAX_TOKENS the tokenizer stops reading parts; the windows must
    # too, or a message of many large parts costs ten times what its tokens do
    many = b" ".join(b"w%d" % i for i in range(MAX_TOKENS + 100))
    message = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; "
               b"boundary=b\r\n\r\n" +
               b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\n" + many + b"\r\n"
                        for _ in range(3)) + b"--b--\r\n")
    windows = _windows(message, 200)
    assert len(windows) == -(-(MAX_TOKENS + 100) // 200)     # the first part's alone


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


def test_a_way_of_scoring_this_engine_does_not_know_is_refused(tmp_path):
    # review21c D3: read as the plain sum, a later set's calibration would not hold
    defs.write(tmp_path / "later", version="2030-01-02", revision=9, rules_json=json.loads(
        (defs.PACKAGED_DIR / defs.RULES_FILE).read_text()), bias=0.0, weights={"x": 1.0},
        z90=1.3, info={}, windows=Windows(200, 0.5))
    model_path = tmp_path / "later" / defs.MODEL_FILE
    model = json.loads(gzip.decompress(model_path.read_bytes()))
    model["scoring"]["chunks"] = {"sentences": 3}
    model_path.write_bytes(gzip.compress(json.dumps(model).encode()))
    manifest = json.loads((tmp_path / "later" / defs.MANIFEST_FILE).read_text())
    manifest["files"][defs.MODEL_FILE] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    (tmp_path / "later" / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(defs.DefinitionsError, match="scoring chunks is unknown"):
        defs.load(tmp_path / "later")


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


# Weights whose float sum depends on the order they are added in: 1e16 + 1.0 rounds the 1.0
# away, 1.0 + 1.0 + 1e16 does not.
UNEVEN = {"cash": 1e16, "now": 1.0, "free": 1.0, "kernel": -1e16}


@pytest.mark.parametrize("order", [["cash", "now", "free", "kernel"],
                                   ["now", "free", "cash", "kernel"],
                                   ["kernel", "cash", "now", "free"]])
def test_a_score_does_not_depend_on_the_order_its_features_are_read_in(tmp_path, order):
    # review23b N1: a message's features are a set, read in an order the hash seed changes
    # from process to process, so the last bits of z (and a score at an integer step)
    # differed between the core and the training tool; every order sums to exactly 2.0
    assert learner.raw_score(learner.Weights(0.0, UNEVEN), order) == 2.0
    for windows in (WINDOWS, Windows(words=10, delta=0.0)):
        assert windowed_raw(order, [set(order)], UNEVEN, 0.0, windows) == 2.0
    defs.write(tmp_path / "plain", version="2030-01-02", revision=9, rules_json=json.loads(
        (defs.PACKAGED_DIR / defs.RULES_FILE).read_text()), bias=0.0, weights=UNEVEN,
        z90=1.3, info={})
    assert raw_of(order, [], defs.load(tmp_path / "plain")) == 2.0


SPAM_SIDE = Windows(words=10, delta=0.5, off_window="spam_side")


def test_links_towards_ham_are_left_out_of_the_spam_side_windowed_reading():
    # windows.py rule 5: hidden links' URLs weigh towards ham as much as a sender likes
    weights = {"u:ham.example": -3.0, "up:login": -1.0, "u:spam.example": 0.7,
               "cash": 2.0, "kernel": -1.0}
    found = set(weights)
    whole = windowed_raw(found, [{"cash"}, {"kernel"}], weights, 0.0, WINDOWS)
    assert whole == pytest.approx(max(-2.3, -4.0 + 0.7 + 2.0 - 0.5))
    spam_side = windowed_raw(found, [{"cash"}, {"kernel"}], weights, 0.0, SPAM_SIDE)
    assert spam_side == pytest.approx(0.7 + 2.0 - 0.5)
    # more such links move the sum, not the windowed reading
    padded = found | {f"u:ham{i}.example" for i in range(50)}
    weights.update({f"u:ham{i}.example": -1.0 for i in range(50)})
    assert windowed_raw(padded, [{"cash"}, {"kernel"}], weights, 0.0, SPAM_SIDE) == \
        pytest.approx(spam_side)


def test_with_no_window_a_spam_side_reading_is_the_rest_delta_below():
    # a message of hidden links and images, no words the model knows: nothing competes
    weights = {"u:ham.example": -3.0, "h:x": 2.0}
    found = set(weights)
    assert windowed_raw(found, [], weights, 0.0, WINDOWS) == pytest.approx(-1.0)
    assert windowed_raw(found, [], weights, 0.0, SPAM_SIDE) == pytest.approx(1.5)
    # the windows' own text decides as before when no link weighs towards ham
    weights = {"meeting": -2.0, "agenda": -2.0}
    found = set(weights)
    for windows in (WINDOWS, SPAM_SIDE):
        assert windowed_raw(found, [{"meeting"}, {"agenda"}], weights, 0.0, windows) == \
            pytest.approx(max(-4.0, -2.0 - 0.5))


def _written(tmp_path, name, windows, scoring=None):
    """A set with the packaged weights and `windows`; `scoring` edits its model's "scoring"
    as a later or a damaged set might have it (the manifest's hash mended)."""
    directory = packaged_spam_read(tmp_path / name, windows).directory
    model_path = directory / defs.MODEL_FILE
    model = json.loads(gzip.decompress(model_path.read_bytes()))
    if scoring:
        scoring(model["scoring"])
        model_path.write_bytes(gzip.compress(json.dumps(model).encode()))
        manifest = json.loads((directory / defs.MANIFEST_FILE).read_text())
        manifest["files"][defs.MODEL_FILE] = hashlib.sha256(model_path.read_bytes()).hexdigest()
        (directory / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    return directory, model["scoring"]


def test_definitions_carry_how_off_window_features_count(tmp_path):
    for name, windows in (("whole", Windows(200, 0.5)),
                          ("spam_side", Windows(200, 0.5, "spam_side"))):
        directory, _ = _written(tmp_path, name, windows)
        assert defs.load(directory).windows == windows
    # the default is not written: a set read as rev 6 reads keeps rev 6's bytes; the other
    # is a "scoring" key of its own, which a Mailmoat without rule 5 refuses as unknown
    assert _written(tmp_path, "w2", Windows(200, 0.5))[1] == \
        {"windows": {"words": 200, "delta": 0.5}}
    assert _written(tmp_path, "s2", Windows(200, 0.5, "spam_side"))[1] == \
        {"windows": {"words": 200, "delta": 0.5}, "off_window": "spam_side"}
    urls = Windows(200, 0.5, "spam_side", "spam_side")
    directory, scoring = _written(tmp_path, "u2", urls)
    assert scoring == {"windows": {"words": 200, "delta": 0.5}, "off_window": "spam_side",
                       "urls": "spam_side"}
    assert defs.load(directory).windows == urls


@pytest.mark.parametrize("edit, refusal", [
    (lambda s: s.update(off_window="half"),
     "off_window must be whole or spam_side .*windows.py rules 5 and 6.*'half'"),
    (lambda s: s.update(urls="spam_side", off_window="whole"),
     "urls spam_side needs off_window spam_side: rule 6 reads the windows as rule 5 does"),
    (lambda s: s.update(urls="yes"), "urls must be whole or spam_side"),
    (lambda s: s.pop("windows"), "off_window reads windows, and the set has none"),
    # a misspelt or later key inside "windows" is not read as rev 6's windows
    (lambda s: s["windows"].update({"off-window": "spam_side"}),
     "scoring windows off-window is unknown"),
])
def test_a_sets_off_window_it_cannot_read_is_refused(tmp_path, edit, refusal):
    directory, _ = _written(tmp_path, "bad", Windows(200, 0.5, "spam_side"), scoring=edit)
    with pytest.raises(defs.DefinitionsError, match=refusal):
        defs.load(directory)


URLS = Windows(words=10, delta=0.5, off_window="spam_side", urls="spam_side")


def test_urls_in_a_window_count_only_towards_spam_with_rule_6():
    # a URL written as text is in a window: 11 features of it towards ham pulled the spam's
    # window down; with rule 6 they are left out of the windowed reading
    weights = {"cash": 2.0, "now": 1.0, "h:x": 0.5, "u:spam.example": 0.4,
               **{f"up:w{i}": -0.5 for i in range(11)}}
    found = set(weights)
    window = set(found) - {"h:x"}
    spam_side = windowed_raw(found, [window], weights, 0.0, SPAM_SIDE)
    assert spam_side == pytest.approx(max(3.9 - 5.5, 3.9 - 5.5 - 0.5))      # the sum
    assert windowed_raw(found, [window], weights, 0.0, URLS) == \
        pytest.approx(0.5 + 3.4 - 0.5)
    # a window of such URLs alone is no window (rule 2): the spam's own decides
    assert windowed_raw(found, [{"cash", "now", "u:spam.example"},
                                {f"up:w{i}" for i in range(11)}], weights, 0.0, URLS) == \
        pytest.approx(0.5 + 3.4 - 0.5)
    # words towards ham still count in their window, as with rule 5 alone
    weights["kernel"] = -1.0
    found.add("kernel")
    assert windowed_raw(found, [window | {"kernel"}], weights, 0.0, URLS) == \
        pytest.approx(0.5 + 2.4 - 0.5)


def test_rule_6_reads_the_windows_as_rule_5_does():
    with pytest.raises(ValueError, match="urls spam_side needs off_window spam_side"):
        Windows(10, 0.5, urls="spam_side")


CAPPED = Windows(words=10, delta=0.5, off_window="spam_side", urls="spam_side", whole_cap=2.0)


def test_what_is_read_whole_counts_towards_ham_at_most_the_cap_with_rule_7():
    # header fields a sender adds at will (In-Reply-To, User-Agent, Precedence: list...)
    # weigh towards ham as much as the sender likes; with rule 7 the windowed reading counts
    # at most whole_cap of them
    weights = {"cash": 2.0, "now": 1.0, "h:x-spam": 0.5,
               **{f"hn:field{i}": -1.0 for i in range(6)}}
    found = set(weights)
    windows = [{"cash", "now"}]
    # uncapped: the six fields pull the sum and the windowed reading down alike
    assert windowed_raw(found, windows, weights, 0.0, URLS) == pytest.approx(3.5 - 6.0)
    # capped: -6 counts as -2 in the windowed reading, the sum keeps it all
    assert windowed_raw(found, windows, weights, 0.0, CAPPED) == \
        pytest.approx(3.5 - 2.0 - 0.5)
    # more such fields move the sum, not the windowed reading
    padded = found | {f"H:user-agent:w{i}" for i in range(50)}
    weights.update({f"H:user-agent:w{i}": -1.0 for i in range(50)})
    assert windowed_raw(padded, windows, weights, 0.0, CAPPED) == \
        pytest.approx(3.5 - 2.0 - 0.5)
    # towards spam they count in full; within the cap nothing changes
    within = {"cash": 2.0, "h:x-spam": 0.5, "hn:in-reply-to": -1.5}
    assert windowed_raw(set(within), [{"cash"}], within, 0.0, CAPPED) == \
        windowed_raw(set(within), [{"cash"}], within, 0.0, URLS) == pytest.approx(1.0)


def test_rule_7_lifts_a_reading_the_windows_would_leave_alone():
    # no text evidence towards ham (rule 3 would return the sum), no window at all: the
    # lift still applies, delta below
    weights = {"s:offer": 1.0, **{f"hn:f{i}": -1.0 for i in range(5)}}
    found = set(weights)
    assert windowed_raw(found, [], weights, 0.0, URLS) == pytest.approx(-4.0)
    assert windowed_raw(found, [], weights, 0.0, CAPPED) == pytest.approx(1.0 - 2.0 - 0.5)
    # at or above the ceiling the sum stands (score 100 either way)
    assert windowed_raw(found, [], weights, 0.0, CAPPED, ceiling=-4.0) == pytest.approx(-4.0)
    # a ham whose text decides keeps its windows' reading, lifted by the same rule
    ham = {"meeting": -2.0, "agenda": -2.0, **{f"H:list-id:w{i}": -1.0 for i in range(4)}}
    assert windowed_raw(set(ham), [{"meeting"}, {"agenda"}], ham, 0.0, CAPPED) == \
        pytest.approx(max(-8.0, -8.0 + 2.0 + 2.0 - 0.5))


def test_definitions_carry_the_whole_cap(tmp_path):
    directory, scoring = _written(tmp_path, "capped", Windows(200, 0.5, "spam_side",
                                                              "spam_side", 5.0))
    assert scoring == {"windows": {"words": 200, "delta": 0.5}, "off_window": "spam_side",
                       "urls": "spam_side", "whole_ham_cap": 5.0}
    assert defs.load(directory).windows.whole_cap == 5.0
    # absent: no cap, and rev 8's bytes
    directory, scoring = _written(tmp_path, "rev8", Windows(200, 0.5, "spam_side", "spam_side"))
    assert "whole_ham_cap" not in scoring and defs.load(directory).windows.whole_cap is None


@pytest.mark.parametrize("edit, refusal", [
    (lambda s: s.update(whole_ham_cap=-1), r"whole_ham_cap must be a number of 0 or more .*"
                                           r"windows.py rule 7\), not -1"),
    (lambda s: s.update(whole_ham_cap="5"), "whole_ham_cap must be a number of 0 or more"),
    (lambda s: s.update(whole_ham_cap=True), "whole_ham_cap must be a number of 0 or more"),
    (lambda s: s.update(whole_ham_cap=float("inf")), "whole_ham_cap must be a number"),
    (lambda s: (s.pop("windows"), s.pop("off_window"), s.pop("urls")),
     "whole_ham_cap reads windows, and the set has none"),
])
def test_a_sets_whole_cap_it_cannot_read_is_refused(tmp_path, edit, refusal):
    directory, _ = _written(tmp_path, "bad", Windows(200, 0.5, "spam_side", "spam_side", 5.0),
                            scoring=edit)
    with pytest.raises(defs.DefinitionsError, match=refusal):
        defs.load(directory)


def test_rule_3_reads_the_windows_whenever_rule_7_lifts():
    # the text's evidence towards ham is within delta, so without a lift the windows could
    # not matter; a lift smaller than delta still makes them matter (review28b R4)
    weights = {"cash": 3.0, "kernel": -0.4, **{f"hn:f{i}": -1.06 for i in range(5)}}
    found = set(weights)
    total = 3.0 - 0.4 - 5.3
    assert windowed_raw(found, [{"cash"}, {"kernel"}], weights, 0.0, CAPPED) == \
        pytest.approx(total - 2.6 + 3.0 + (5.3 - 2.0) - 0.5)
    cap5 = Windows(10, 0.5, "spam_side", "spam_side", 5.0)          # a lift of 0.3
    assert windowed_raw(found, [{"cash"}, {"kernel"}], weights, 0.0, cap5) == \
        pytest.approx(total + 0.4 + 0.3 - 0.5)


def test_urls_towards_ham_are_text_not_what_rule_7_caps():
    # URL features are text (rule 1; rule 6 bounds them): they do not count into the cap
    weights = {"cash": 2.0, "up:archive": -3.0, "hn:in-reply-to": -1.5, "hn:user-agent": -1.5}
    found = set(weights)
    capped = Windows(10, 0.5, "spam_side", "spam_side", 3.0)
    assert windowed_raw(found, [{"cash", "up:archive"}], weights, 0.0, capped) == \
        windowed_raw(found, [{"cash", "up:archive"}], weights, 0.0, URLS) == \
        pytest.approx(2.0 - 3.0 - 0.5)


@pytest.mark.parametrize("edit, refusal", [
    (lambda s: s.update(whole_ham_cap=None), "whole_ham_cap must be a number of 0 or more"),
    (lambda s: s.update(whole_ham_cap=float("nan")), "whole_ham_cap must be a number"),
    (lambda s: s.update(whole_ham_cap=10 ** 400), "model.json.gz: OverflowError"),
])
def test_a_null_or_unreadable_whole_cap_is_refused(tmp_path, edit, refusal):
    """review28b R2, R3: a null is not read as "no cap", and a number too large for a float
    is a refusal naming the file, not an error the loader lets through."""
    directory, _ = _written(tmp_path, "bad", Windows(200, 0.5, "spam_side", "spam_side", 5.0),
                            scoring=edit)
    with pytest.raises(defs.DefinitionsError, match=refusal):
        defs.load(directory)


def test_the_trainer_reads_a_capped_set_as_the_engine_does(tmp_path, monkeypatch):
    from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages
    from core.scan.antispam.engine import raw_for_score
    import tools.train_spam_model as trainer
    if not (DEFAULT_CORPUS / "MANIFEST").exists():
        pytest.skip("the shared corpus is not here")
    samples = [s for s in corpus_messages() if s.split == "train"][::40]
    loaded = packaged_spam_read(tmp_path / "capped",
                                Windows(200, 0.5, "spam_side", "spam_side", 5.0))
    monkeypatch.setattr(trainer, "WINDOWS", loaded.windows)
    data, _, read = trainer.extract(samples, loaded.rules, windows=loaded.windows)
    engine = HeuristicEngine(loaded)
    weights = learner.Weights(loaded.bias, loaded.weights)
    ceiling = raw_for_score(100, loaded.z90)
    lifted = 0
    for i, sample in enumerate(samples):
        view = view_of(sample.path.read_bytes())
        scored = engine.score(view)
        mine = trainer.raw_of_readings(weights, read[i], loaded.windows)
        assert min(mine, ceiling) == pytest.approx(min(scored.raw, ceiling), abs=1e-9)
        lifted += mine != trainer.raw_of_readings(
            weights, read[i], Windows(200, 0.5, "spam_side", "spam_side"))
    assert lifted > len(samples) // 3        # the cap acts on many of them
