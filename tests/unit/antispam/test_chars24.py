"""The bounded character model (core/scan/antispam/chars.py) as a definitions option
(definitions.py "scoring" "chars"), scored by the engine and trained by
tools/train_spam_model.py.

Real definitions sets written and loaded by definitions.py, real views from the pipeline's
decomposer; the Witten-Bell model is checked against a plain dictionary implementation."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import struct
import sys
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.pipeline.decompose.text import as_read
from core.scan.antispam import chars as C
from core.scan.antispam import definitions as defs
from core.scan.antispam.engine import HeuristicEngine, features, raw_for_score, raw_of
from core.scan.antispam.learner import Weights
from core.scan.antispam.tokenizer import MAX_HTML_CHARS, tokens, without_urls
from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages, view_of

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
import train_spam_model as trainer                                 # noqa: E402

# C4m, the declared candidate (docs/antispam.md, "Spam definitions")
SETTINGS = {"order": 5, "lambda": 4, "clip": 2, "max_chars": 3000, "denominator": "all"}


def plain_text(view, max_chars=3000) -> tuple[bytes, int]:
    """Rule 1 as the analysis defined it (docs/antispam-model.md, "Recall elsewhere"), whole
    text at once."""
    v = view.as_learned()
    parts: list = []
    tokens(v, parts)
    text = " ".join([as_read(v.subject or "")] + [p.text for p in parts])
    text = re.sub(r"\s+", " ", text.lower()).strip()[:max_chars]
    data = re.sub(rb"[\x80-\xff]+", b"", text.encode("utf-8", "replace"))
    return re.sub(rb"\s+", b" ", data).strip(), len(text)


def char_text_of(view, max_chars=3000) -> C.CharText:
    v = view.as_learned()
    parts: list = []
    tokens(v, parts)
    return C.char_text(v, parts, max_chars)


def message(subject: str, body: str, charset="utf-8") -> bytes:
    return (f"From: a@example.com\nSubject: {subject}\nMIME-Version: 1.0\n"
            f"Content-Type: text/plain; charset={charset}\n"
            f"Content-Transfer-Encoding: 8bit\n\n{body}\n").encode("utf-8")


@pytest.mark.parametrize("subject,body", [
    ("Hello  THERE", "Some\t\ttext\n\nwith   white space"),
    ("会議の件", "伊東 仁 です。\nTEL: 03-3518-3299 e-mail: go@infocom.co.jp"),
    ("long", "word " * 2000 + "\u00e9t\u00e9 " * 500),
    ("", "  \n "),
])
def test_the_text_is_the_subject_and_the_text_parts_ascii_only(subject, body):
    view = view_of(message(subject, body))
    got = char_text_of(view)
    assert (got.data, got.characters) == plain_text(view)
    assert all(b < 128 for b in got.data)
    # the prefix shortcut reads as much as the whole does, for any length
    for limit in (1, 7, 100):
        assert (char_text_of(view, limit).data, char_text_of(view, limit).characters) == \
            plain_text(view, limit)


def plain_witten_bell(texts, order):
    """P(byte | up to `order` previous bytes), Witten-Bell interpolated down to a uniform
    1/256, from dictionaries (the definition, not the tables)."""
    grams, contexts, types = Counter(), Counter(), {}
    for t in texts:
        x = bytes([C.START]) * order + t
        for i in range(order, len(x)):
            for n in range(order + 1):
                h = x[i - n:i]
                grams[(h, x[i])] += 1
                contexts[h] += 1
                types.setdefault(h, set()).add(x[i])

    def p(history: bytes, byte: int) -> float:
        prob = 1 / 256
        for n in range(order + 1):
            h = history[len(history) - n:] if n else b""
            c = contexts.get(h, 0)
            if c:
                t = len(types[h])
                prob = (grams.get((h, byte), 0) + t * prob) / (c + t)
        return prob
    return p


def plain_evidence(spam, ham, text: bytes, characters: int, order, clip, denominator):
    ps, ph = plain_witten_bell(spam, order), plain_witten_bell(ham, order)
    if not text:
        return 0.0
    x = bytes([C.START]) * order + text
    total = sum(max(-clip, min(clip, math.log(ps(x[i - order:i], x[i]))
                               - math.log(ph(x[i - order:i], x[i]))))
                for i in range(order, len(x)))
    return total / (characters if denominator == "all" else len(text))


SPAM = [b"buy cheap viagra now", b"click here to buy now!!", b"free money, click here"]
HAM = [b"the patch fixes the kernel build", b"meeting moved to friday", b"re: the build"]
SCORED = [b"buy the kernel patch now", b"zq~{", b"click the build", b"x", b""]


@pytest.mark.parametrize("order", [1, 3, 5])
@pytest.mark.parametrize("denominator", ["ascii", "all"])
def test_the_evidence_is_the_witten_bell_log_ratio(order, denominator):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], order)
    for text in SCORED:
        for clip in (0.5, 2.0):
            want = plain_evidence(SPAM, HAM, text, len(text) + 3, order, clip, denominator)
            got = tables.evidence(C.CharText(text, len(text) + 3), clip, denominator)
            assert got == pytest.approx(want, abs=1e-12)
    # float32 as shipped: within 1e-4 (the analysis' tables: 4e-9 on the training part)
    stored = C.Tables.from_bytes(tables.to_bytes(), order)
    for text in SCORED:
        assert stored.evidence(C.CharText(text, len(text)), 2.0) == pytest.approx(
            tables.evidence(C.CharText(text, len(text)), 2.0), abs=1e-6)


def test_the_denominator_all_divides_by_the_characters_counted_before_removal():
    # the formula only: that CharText.characters is N, the characters before the
    # non-ASCII bytes were removed, is checked against the definition in the first test
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    text = C.CharText(b"click here", 40)     # 30 characters removed
    ascii_only = tables.evidence(text, 2.0, "ascii")
    assert tables.evidence(text, 2.0, "all") == pytest.approx(ascii_only * 10 / 40)


def test_the_prior_shrinks_the_mean_as_if_k_neutral_bytes_were_read():
    # S / (A + k) * A / N: a few bytes of a long non-Latin text hardly move the term, the
    # bytes of a long ASCII text keep most of it (docs/antispam-model.md, "The prior")
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    few = C.CharText(b".", 18)
    many = C.CharText(b"click here now to claim your free prize " * 50, 2000)
    for text in (few, many):
        a = len(text.data)
        whole = tables.evidence(text, 2.0, "all")
        assert tables.evidence(text, 2.0, "all", 100) == pytest.approx(whole * a / (a + 100))
    assert abs(tables.evidence(few, 2.0, "all", 100)) <= 2.0 / 101 / 18
    assert tables.evidence(few, 2.0, "all", 0) == tables.evidence(few, 2.0, "all")


def test_a_set_with_a_prior_reads_back_with_it_and_one_without_reads_as_none(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    loaded = defs.load(chars_set(tmp_path / "with", tables, prior=100))
    assert loaded.chars.prior == 100
    model = json.loads(gzip.decompress((tmp_path / "with/set" / defs.MODEL_FILE).read_bytes()))
    assert model["scoring"]["chars"]["prior"] == 100
    loaded = defs.load(chars_set(tmp_path / "without", tables))
    assert loaded.chars.prior == 0
    model = json.loads(gzip.decompress((tmp_path / "without/set" / defs.MODEL_FILE)
                                       .read_bytes()))
    assert "prior" not in model["scoring"]["chars"]     # C4m's sets as they were written


def test_the_engine_reads_the_prior_of_its_set(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    view = view_of(message("buy cheap now", "click here to buy the kernel patch now"))
    plain = defs.load(chars_set(tmp_path / "plain", tables))
    shrunk = defs.load(chars_set(tmp_path / "shrunk", tables, prior=100))
    base = HeuristicEngine(replace(plain, chars=None)).score(view).raw
    text = C.char_text(view.as_learned(), _parts(view), 3000)
    a = len(text.data)
    term = HeuristicEngine(plain).score(view).raw - base
    assert term != 0
    assert HeuristicEngine(shrunk).score(view).raw - base == pytest.approx(
        term * a / (a + 100), abs=1e-12)


def test_the_gate_leaves_a_text_mostly_in_another_script_unread():
    # A >= s * N or no evidence at all (docs/antispam-model.md, "The gated character
    # model"): a Greek note's link or English line says nothing either way
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    link = b"https://photos.example.xx/album/2026-11"
    for characters, read in ((len(link) * 10, False), (len(link) + 4, True)):
        text = C.CharText(link, characters)
        ungated = tables.evidence(text, 2.0, "all", 100)
        assert ungated != 0
        assert tables.evidence(text, 2.0, "all", 100, 0.9) == (ungated if read else 0.0)
    exact = C.CharText(b"x" * 9, 10)           # 0.9 of the characters: read
    assert tables.evidence(exact, 2.0, "all", 0, 0.9) == tables.evidence(exact, 2.0, "all")
    # the gate is the same whatever the denominator
    assert tables.evidence(C.CharText(link, len(link) * 10), 2.0, "ascii", 0, 0.9) == 0.0
    assert tables.evidence(exact, 2.0, "ascii", 0, 0.9) == tables.evidence(exact, 2.0, "ascii")


def test_a_set_with_a_gate_reads_back_with_it_and_one_without_has_none(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    loaded = defs.load(chars_set(tmp_path / "with", tables, prior=100, min_share=0.9))
    assert (loaded.chars.prior, loaded.chars.min_share) == (100, 0.9)
    model = json.loads(gzip.decompress((tmp_path / "with/set" / defs.MODEL_FILE).read_bytes()))
    assert model["scoring"]["chars"]["min_ascii_share"] == 0.9
    loaded = defs.load(chars_set(tmp_path / "without", tables, prior=100))
    assert loaded.chars.min_share == 0.0
    model = json.loads(gzip.decompress((tmp_path / "without/set" / defs.MODEL_FILE)
                                       .read_bytes()))
    assert "min_ascii_share" not in model["scoring"]["chars"]   # C4s's sets as written


def test_the_engine_reads_the_gate_of_its_set(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    greek = message("Φωτογραφίες", "Καλημέρα, οι φωτογραφίες της εκδρομής είναι εδώ: "
                    "https://photos.example.xx/album/2026-11 Τα λέμε αύριο.")
    english = message("buy cheap now", "click here to buy the kernel patch now")
    ungated = defs.load(chars_set(tmp_path / "ungated", tables, prior=100))
    gated = defs.load(chars_set(tmp_path / "gated", tables, prior=100, min_share=0.9))
    for raw, read in ((greek, False), (english, True)):
        view = view_of(raw)
        base = HeuristicEngine(replace(ungated, chars=None)).score(view).raw
        term = HeuristicEngine(ungated).score(view).raw - base
        assert term != 0
        assert HeuristicEngine(gated).score(view).raw - base == pytest.approx(
            term if read else 0.0, abs=1e-12)


def char_text_dropping(raw: bytes, drop_urls=True) -> C.CharText:
    v = view_of(raw).as_learned()
    parts: list = []
    tokens(v, parts)
    return C.char_text(v, parts, 3000, drop_urls)


def test_the_text_counts_its_words_and_its_english_words():
    english = char_text_dropping(message("Your order", "Thank you for the order; we have "
                                                       "shipped it with the invoice."))
    # your order thank you for the order we have shipped it with the invoice
    assert (english.words, english.english) == (14, 8)
    portuguese = char_text_dropping(message(
        "Proposta", "Prezado senhor, segue em anexo a proposta comercial para o ano que vem."))
    assert (portuguese.words, portuguese.english) == (14, 0)
    greek = char_text_dropping(message("Φωτογραφίες", "Καλημέρα, the photos 2026"))
    assert (greek.words, greek.english) == (4, 1)        # letters of any script; no digits


def test_the_english_gate_leaves_a_text_in_another_language_unread():
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    text = b"buy the kernel patch now"
    for words, english, read in ((20, 1, True), (21, 1, False), (5, 0, False), (0, 0, False)):
        gated = C.CharText(text, len(text), words, english)
        ungated = tables.evidence(gated, 2.0, "all", 100)
        assert ungated != 0
        assert tables.evidence(gated, 2.0, "all", 100, 0.0, 0.05) == (ungated if read else 0.0)
        # the gates are separate: the ASCII share alone reads it
        assert tables.evidence(gated, 2.0, "all", 100, 0.9) == ungated


def test_drop_urls_takes_the_urls_out_of_the_text_read():
    urls = " ".join(f"http://ham{i}.example.org/mailing/list/archive.html" for i in range(100))
    raw = message("cheap www.pills.example", urls + "\nbuy cheap pills now, click here "
                  "www.pills.example/buy")
    dropped, kept = char_text_dropping(raw), char_text_dropping(raw, drop_urls=False)
    assert dropped.data == b"cheap buy cheap pills now, click here"      # the Subject's too
    assert kept.data.startswith(b"cheap www.pills.example http://ham0.example.org/")
    assert len(kept.data) == 3000
    assert (dropped.words, dropped.english) == (7, 1)            # "here"


@pytest.mark.parametrize("count", [300, 2000])
def test_drop_urls_reads_past_any_number_of_urls_as_the_whole_text_would(count):
    """More URLs in front than the first prefix holds (review28a R3): the prefixes grow until
    the text read is the whole text's, URLs removed from each piece whole."""
    urls = " ".join(f"http://ham{i}.example.org/mailing/list/archive.html" for i in range(count))
    words = " ".join(f"word{i % 50}" for i in range(1000))
    raw = message("offer", f"{urls}\n{words}")
    v = view_of(raw).as_learned()
    parts: list = []
    tokens(v, parts)
    text = " ".join([as_read(v.subject or "")] + [without_urls(p.text) for p in parts])
    whole = re.sub(r"\s+", " ", text.lower()).strip()[:3000].encode()
    assert len(urls) > 4 * 3000 + 64
    assert char_text_dropping(raw).data == whole


def test_the_text_read_ends_where_the_tokens_stop_reading():
    """Nothing past tokenizer.MAX_HTML_CHARS characters is read (review28a R2): a body of
    white space or URLs collapses to nothing, and reading on would cost time with its size."""
    for filler in (" " * (MAX_HTML_CHARS + 10), "http://x.example/ " * (MAX_HTML_CHARS // 17)):
        raw = message("offer", filler + "buy cheap pills now")
        for drop in (True, False):
            got = char_text_dropping(raw, drop)
            assert b"pills" not in got.data and got.data.startswith(b"offer")


def test_the_engine_reads_the_english_gate_and_drop_urls_of_its_set(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    loaded = defs.load(chars_set(tmp_path / "set", tables, prior=100, min_share=0.9,
                                 min_english=0.05, drop_urls=True))
    assert (loaded.chars.min_english, loaded.chars.drop_urls) == (0.05, True)
    model = json.loads(gzip.decompress((tmp_path / "set/set" / defs.MODEL_FILE).read_bytes()))
    assert model["scoring"]["chars"] == dict(SETTINGS, prior=100, min_ascii_share=0.9,
                                             min_english_share=0.05, drop_urls=True)
    ungated = defs.load(chars_set(tmp_path / "ungated", tables, prior=100))
    portuguese = message("compre agora", "clique aqui para comprar barato agora")
    english = message("buy cheap now", "click here to buy the kernel patch now "
                      "https://www.example.org/patch")
    for raw, read in ((portuguese, False), (english, True)):
        view = view_of(raw)
        base = HeuristicEngine(replace(ungated, chars=None)).score(view).raw
        term = HeuristicEngine(loaded).score(view).raw - base
        assert term == pytest.approx(
            4.0 * loaded.chars.tables.evidence(char_text_dropping(raw), 2.0, "all", 100)
            if read else 0.0, abs=1e-12)
        assert (term != 0) is read


@pytest.mark.parametrize("share", [-0.1, 1.5, "0.9", True, None, float("nan"),
                                   float("inf"), -float("inf")])
def test_a_bad_gate_is_refused_naming_the_rule(share):
    settings = dict(SETTINGS, min_ascii_share=share)
    with pytest.raises(ValueError, match="a min_ascii_share and a min_english_share of 0 "
                                         "to 1") as refused:
        defs.chars_settings(settings)
    assert f"min_ascii_share {share!r}," in str(refused.value)
    settings = dict(SETTINGS, min_english_share=share)
    with pytest.raises(ValueError, match="a min_ascii_share and a min_english_share of 0 "
                                         "to 1") as refused:
        defs.chars_settings(settings)
    assert f"min_english_share {share!r}," in str(refused.value)


@pytest.mark.parametrize("drop", [1, 0, "true", None])
def test_a_bad_drop_urls_is_refused_naming_the_rule(drop):
    with pytest.raises(ValueError, match="drop_urls true or false") as refused:
        defs.chars_settings(dict(SETTINGS, drop_urls=drop))
    assert f"drop_urls {drop!r})" in str(refused.value)


@pytest.mark.parametrize("prior", [-1, 1.5, "100", True, C.MAX_CHARS + 1])
def test_a_bad_prior_is_refused_naming_the_rule(prior):
    settings = dict(SETTINGS, prior=prior)
    with pytest.raises(ValueError, match="a prior of 0 to"):
        defs.chars_settings(settings)


def chars_set(tmp_path, tables, denominator="all", prior=0, min_share=0.0, min_english=0.0,
              drop_urls=False):
    packaged = defs.load(defs.PACKAGED_DIR)
    chars = C.Chars(order=5, lam=4.0, clip=2.0, max_chars=3000, denominator=denominator,
                    prior=prior, min_share=min_share, tables=tables, min_english=min_english,
                    drop_urls=drop_urls)
    return defs.write(tmp_path / "set", version="2026-12-01", revision=7,
                      rules_json=json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text()),
                      bias=packaged.bias, weights=packaged.weights, z90=packaged.z90,
                      info=packaged.info, windows=packaged.windows, chars=chars)


def test_the_tables_round_trip_through_a_definitions_set(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    directory = chars_set(tmp_path, tables, "all")
    manifest = json.loads((directory / defs.MANIFEST_FILE).read_text())
    assert manifest["files"][defs.CHARS_FILE] == hashlib.sha256(
        (directory / defs.CHARS_FILE).read_bytes()).hexdigest()
    loaded = defs.load(directory)
    assert loaded.chars.settings() == {
        **SETTINGS, "lambda": 4.0, "clip": 2.0, "denominator": "all"}
    for text in SCORED:
        counted = C.CharText(text, len(text) + 2)
        assert loaded.chars.tables.evidence(counted, 2.0, "all") == pytest.approx(
            tables.evidence(counted, 2.0, "all"), abs=1e-6)
    # the engine adds lambda · e after the windowed reading; shown rules unchanged
    view = view_of(message("buy cheap now", "click here to buy the kernel patch now"))
    packaged = defs.load(defs.PACKAGED_DIR)
    with_chars, without = HeuristicEngine(loaded).score(view), HeuristicEngine(
        packaged).score(view)
    e = loaded.chars.evidence(view.as_learned(), _parts(view))
    assert e != 0 and with_chars.raw == without.raw + 4.0 * e
    assert with_chars.rules == without.rules


def _parts(view):
    parts: list = []
    tokens(view.as_learned(), parts)
    return parts


def test_a_set_without_chars_is_rev_6_byte_for_byte(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    assert packaged.chars is None
    directory = defs.write(tmp_path / "again", version=packaged.version,
                           revision=packaged.revision,
                           rules_json=json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text()),
                           bias=packaged.bias, weights=packaged.weights, z90=packaged.z90,
                           info=packaged.info, windows=packaged.windows)
    for name in (defs.RULES_FILE, defs.MODEL_FILE, defs.MANIFEST_FILE):
        assert (directory / name).read_bytes() == (defs.PACKAGED_DIR / name).read_bytes()
    assert not (directory / defs.CHARS_FILE).exists()


def _rewrite_model(directory, change):
    import gzip
    path = directory / defs.MODEL_FILE
    model = json.loads(gzip.decompress(path.read_bytes()))
    change(model)
    path.write_bytes(gzip.compress(json.dumps(model).encode(), mtime=0))
    _rehash(directory)


def _rehash(directory):
    manifest = json.loads((directory / defs.MANIFEST_FILE).read_text())
    manifest["files"] = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
                         for name in manifest["files"]}
    (directory / defs.MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("field,value,words", [
    ("order", 0, "order of 1 to 7"), ("order", 9, "order of 1 to 7"),
    ("lambda", -1, "lambda of 0 or more"), ("clip", 0, "clip above 0"),
    ("max_chars", 0, f"max_chars of 1 to {C.MAX_CHARS}"),
    ("max_chars", C.MAX_CHARS + 1, f"max_chars of 1 to {C.MAX_CHARS}"),
    ("denominator", "utf8", "denominator 'ascii'"),
    ("lambda", float("nan"), "lambda of 0 or more"), ("order", True, "order of 1 to 7"),
])
def test_bad_chars_settings_are_refused(tmp_path, field, value, words):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    directory = chars_set(tmp_path, tables)
    _rewrite_model(directory, lambda m: m["scoring"]["chars"].__setitem__(field, value))
    with pytest.raises(defs.DefinitionsError, match=f"{defs.MODEL_FILE}.*{re.escape(words)}"):
        defs.load(directory)


def test_a_bad_chars_file_is_refused_naming_it(tmp_path):
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    directory = chars_set(tmp_path, tables)
    path = directory / defs.CHARS_FILE
    good = path.read_bytes()
    path.write_bytes(good[:-10])                       # altered: its hash says so
    with pytest.raises(defs.DefinitionsError, match="chars.npz: does not match its hash"):
        defs.load(directory)
    path.write_bytes(b"not a zip")                     # rehashed, still not tables
    _rehash(directory)
    with pytest.raises(defs.DefinitionsError, match="chars.npz: not a table archive"):
        defs.load(directory)
    unsorted = C.Tables(5, [(g[::-1].copy(), d[::-1].copy(), c, a)
                            for g, d, c, a in tables.orders])
    path.write_bytes(unsorted.to_bytes())
    _rehash(directory)
    with pytest.raises(defs.DefinitionsError, match="chars.npz: g0 must be sorted codes"):
        defs.load(directory)
    path.write_bytes(C.train([(b"abc", True)], 3).to_bytes())     # another order's tables
    _rehash(directory)
    with pytest.raises(defs.DefinitionsError, match="chars.npz: holds .* not the tables of "
                                                    "order 5"):
        defs.load(directory)
    # crafted members (review24c R1): each refused naming chars.npz and the rule, before an
    # array is allocated or a member inflated past the bound — not AttributeError or
    # MemoryError escaping the loader
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(huge, {"descr": "<i8", "fortran_order": False,
                                                "shape": (10**12,)})
    big_endian = io.BytesIO()
    np.lib.format.write_array(big_endian, tables.orders[0][0].astype(">i8"))
    for members, words in (
            ({"g0.npy": b"junk"}, "g0 is not array data"),
            ({"g0.npy": huge.getvalue()}, "g0's header declares 1000000000000 values"),
            ({"g0.npy": big_endian.getvalue()}, "g0 must be a list of 64-bit codes"),
            ({"g0.npy": b"\x93NUMPY\x03\x00"}, "g0 is not array data")):
        path.write_bytes(_rezip(good, members))
        _rehash(directory)
        with pytest.raises(defs.DefinitionsError, match=f"chars.npz: {re.escape(words)}"):
            defs.load(directory)
        assert defs.current(directory).label == defs.load(defs.PACKAGED_DIR).label
    # a zip bomb: refused on its declared size (test_a_zip_bomb_is_refused_without_inflating_it)
    path.write_bytes(_rezip(good, {"d0.npy": _zeros_member(C.MAX_TABLE_BYTES)}))
    _rehash(directory)
    with pytest.raises(defs.DefinitionsError,
                       match=f"chars.npz: unpacks to .* more than the "
                             f"{C.MAX_TABLE_BYTES} a set's tables may hold"):
        defs.load(directory)
    path.unlink()                                      # missing, though the scoring has chars
    manifest = json.loads((directory / defs.MANIFEST_FILE).read_text())
    del manifest["files"][defs.CHARS_FILE]
    (directory / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(defs.DefinitionsError, match="chars.npz: missing"):
        defs.load(directory)
    # listed without "chars" in the scoring: tables nothing reads
    path.write_bytes(good)
    manifest["files"][defs.CHARS_FILE] = ""
    (directory / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    _rewrite_model(directory, lambda m: m["scoring"].pop("chars"))
    with pytest.raises(defs.DefinitionsError, match="chars.npz: listed, but"):
        defs.load(directory)


def test_a_set_asking_for_the_withdrawn_sender_names_tokens_is_refused(tmp_path):
    # the "sender names itself" tokens (session 24) were removed, not eligible and forgeable
    # (docs/antispam-model.md, "Recall elsewhere"): a set asking for them is not read
    # without them, which its weights were not trained for
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    directory = chars_set(tmp_path, tables)
    _rewrite_model(directory, lambda m: m["scoring"].__setitem__("sender_names", True))
    with pytest.raises(defs.DefinitionsError, match="scoring sender_names is unknown"):
        defs.load(directory)


def _rezip(good: bytes, members: dict) -> bytes:
    """The archive `good` with `members` {name: bytes} in place of its own."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, members.get(name, src.read(name)), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _zeros_member(limit: int) -> bytes:
    """A float32 .npy of zeros just over `limit` bytes (deflates to about a thousandth)."""
    count = limit // 4 + 1
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (count,)})
    return header.getvalue() + bytes(4 * count)


def _lying(archive: bytes, name: str, declared: int) -> bytes:
    """`archive` with member `name`'s uncompressed size given as `declared` in its local
    and central headers (review24d R1: a member that understates what it inflates to)."""
    data = bytearray(archive)
    for signature, size_at, name_length_at, name_at in ((b"PK\x03\x04", 22, 26, 30),
                                                        (b"PK\x01\x02", 24, 28, 46)):
        at = data.find(signature)
        while at >= 0:
            length = struct.unpack_from("<H", data, at + name_length_at)[0]
            if data[at + name_at:at + name_at + length] == name.encode():
                struct.pack_into("<I", data, at + size_at, declared)
            at = data.find(signature, at + 4)
    return bytes(data)


@pytest.mark.parametrize("declared", ["honestly", "understated"])
def test_a_zip_bomb_is_refused_without_inflating_it(declared):
    # review24c R1, review24d R1: every member was inflated whole before any check (a
    # 263 KB file took 302 MB), and then one that understates its size inflated past the
    # bound before its CRC refused it; the install command and the core's watcher have no
    # memory limit
    good = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5).to_bytes()
    bomb = _rezip(good, {"d0.npy": _zeros_member(C.MAX_TABLE_BYTES)})
    if declared == "understated":
        bomb = _lying(bomb, "d0.npy", 1000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            C.Tables.from_bytes(bomb, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20          # the member inflates to 64 MB


@pytest.mark.parametrize("prior, share, english", [(0, 0.0, 0.0), (100, 0.0, 0.0),
                                                   (100, 0.9, 0.0), (100, 0.9, 0.05)])
def test_the_trainer_reads_what_the_engine_reads(tmp_path, prior, share, english):
    if not (DEFAULT_CORPUS / "MANIFEST").exists():
        pytest.skip("the shared corpus is not here")
    train = [s for s in corpus_messages() if s.split == "train"]
    # 50 spread over the part, and 4 in Korean and Chinese charsets, whose text the gate
    # leaves unread
    samples = train[::60][:50] + [s for s in train if re.search(
        rb'(?i)charset="?(ks_c_5601|euc-kr|gb2312|big5)', s.path.read_bytes())][:4]
    assert len(samples) == 54
    packaged = defs.load(defs.PACKAGED_DIR)
    drop = bool(english)                # C4e's reading: the English gate with drop_urls
    settings = dict(SETTINGS, prior=prior, min_ascii_share=share, min_english_share=english,
                    drop_urls=drop)
    data, _groups, read = trainer.extract(samples, packaged.rules, windows=packaged.windows,
                                          chars=defs.chars_settings(settings))
    tables = C.train([(r[0][2], d[1]) for r, d in zip(read, data)], 5)
    loaded = defs.load(chars_set(tmp_path, tables, prior=prior, min_share=share,
                                 min_english=english, drop_urls=drop))
    engine = HeuristicEngine(loaded)
    weights = Weights(loaded.bias, loaded.weights)
    saved = trainer.CHARS
    trainer.CHARS = settings
    try:
        terms = trainer.char_terms_of(loaded.chars.tables, read, range(len(samples)))
    finally:
        trainer.CHARS = saved
    for i, sample in enumerate(samples):
        view = view_of(sample.path.read_bytes())
        parts: list = []
        found, _ = features(view, loaded, parts)
        assert data[i][0] == found
        assert read[i][0][2] == C.char_text(view.as_learned(), parts, 3000, drop)
        scored = engine.score(view)
        # at score 100 the engine's reading stops at the plain sum (windows.py rule 3), the
        # trainer's reads on: the same score, raw values that differ above the ceiling
        ceiling = raw_for_score(100, loaded.z90)
        assert min(trainer.raw_of_readings(weights, read[i], loaded.windows, terms[i]),
                   ceiling) == pytest.approx(min(scored.raw, ceiling), abs=1e-9)
        assert scored.raw == pytest.approx(
            raw_of(found, parts, loaded) + terms[i][0], abs=1e-9)
        # both read the prior and the gate (not only agree): the term is rule 4's, shrunk
        # by A / (A + k), and 0 where A < s * N or the English words are too few
        text = read[i][0][2]
        a = len(text.data)
        gated = (a == 0 or a < share * text.characters
                 or (english and (not text.words or text.english < english * text.words)))
        e = loaded.chars.tables.evidence(text, 2.0, "all")
        assert terms[i][0] == pytest.approx(0.0 if gated else 4.0 * e * a / (a + prior),
                                            abs=1e-12)
    if share:
        assert any(len(r[0][2].data) < share * r[0][2].characters for r in read)
    if english:        # the English gate alone closes on some (review28a R3)
        assert any(len(t.data) >= share * t.characters and t.english < english * t.words
                   for t in (r[0][2] for r in read))


# -- what the nested check and write mode's calibration train the character model on
# (review24c T1): cheap fakes for the learner's fit and the tables, on 30 samples

def _leak_fixture(monkeypatch):
    """30 samples whose features name them ("id<i>"), group keys that put them in folds
    by hand (identical keys: one body), a fit whose weights score sample i as minus the
    bit mask of the samples they were trained on, and tables whose term is plus the mask of
    theirs: a score is 0 exactly when the character model was trained on the samples the
    weights were; each asserts the sample it scores is not among them."""
    from types import SimpleNamespace

    from core.scan.antispam import learner
    n = 30
    data = [(frozenset({f"id{i}"}), i % 3 == 0) for i in range(n)]
    groups = [f"{(i // 2) % 5:08x}{i // 2:024x}" for i in range(n)]
    readings_of = [[(data[i][0], [], C.CharText(b"x", 1))] for i in range(n)]

    def ids(samples):
        return frozenset(int(f[2:]) for found, _ in samples for f in found)

    def mask(keep):
        return float(sum(1 << i for i in keep))

    def fit(samples, **_):
        return SimpleNamespace(keep=ids(samples))

    def score(weights, found):
        (i,) = ids([(found, None)])
        assert i not in weights.keep, f"sample {i} scored by weights trained on it"
        return -mask(weights.keep)

    def train_chars(data_, readings_, keep):
        return SimpleNamespace(keep=frozenset(keep))

    def terms_of(tables, readings_, indices):
        for i in indices:
            assert i not in tables.keep, f"sample {i} scored by a char model counted from it"
        return {i: [mask(tables.keep)] for i in indices}

    monkeypatch.setattr(learner, "train_model", fit)
    monkeypatch.setattr(trainer, "raw_score", score)
    monkeypatch.setattr(trainer, "train_chars", train_chars)
    monkeypatch.setattr(trainer, "char_terms_of", terms_of)
    monkeypatch.setattr(trainer, "WINDOWS", None)
    monkeypatch.setattr(trainer, "CHARS", SETTINGS)
    return data, groups, readings_of


def test_the_nested_check_trains_the_char_model_on_the_weights_own_samples(monkeypatch):
    data, groups, readings_of = _leak_fixture(monkeypatch)
    nested = []
    real = trainer.nested_char_terms
    monkeypatch.setattr(trainer, "nested_char_terms",
                        lambda *a: nested.append(real(*a)) or nested[-1])
    trainer.check_calibration(data, groups, [1.0] * len(data), readings_of)
    (folds,) = nested
    assert len(folds) == 5
    for fold in folds:
        assert fold.outer and fold.inner
        assert set(fold.outer.values()) == {0.0} and set(fold.inner.values()) == {0.0}


def test_write_mode_calibrates_on_char_terms_trained_without_the_fold(monkeypatch):
    data, groups, readings_of = _leak_fixture(monkeypatch)
    oof = trainer.out_of_fold_scores(data, groups, [1.0] * len(data), readings_of)
    assert oof == [0.0] * len(data)


def test_the_score_100_shortcut_is_taken_after_the_char_term():
    """windows.py rule 3's shortcut: with a term of -8 a sum at score 100 no longer decides;
    the windowed reading must still be read (review24c T1 b)."""
    from core.scan.antispam.engine import raw_for_score
    from core.scan.antispam.tokenizer import window_tokens
    from core.scan.antispam.windows import Windows, windowed_raw
    packaged = defs.load(defs.PACKAGED_DIR)
    raw100 = raw_for_score(100, packaged.z90)
    weighed = replace(packaged, bias=0.0, windows=Windows(10, 0.5),
                      weights={"spamword": raw100 + 1, "hamword": -1.0})
    view = view_of(message("x", "spamword " * 10 + "hamword " * 10))
    parts: list = []
    found, _ = features(view, weighed, parts)
    assert math.fsum(weighed.weights.get(f, 0.0) for f in found) >= raw100
    sets = window_tokens(parts, 10)
    exact = windowed_raw(found, sets, weighed.weights, 0.0, weighed.windows) - 8.0
    shortcut = windowed_raw(found, sets, weighed.weights, 0.0, weighed.windows,
                            ceiling=raw100) - 8.0
    assert exact != shortcut                   # the case where the shortcut would differ
    assert raw_of(found, parts, weighed, -8.0) == exact


def test_the_char_text_reads_the_subject_as_the_model_learned_it(tmp_path):
    """An RFC 2047 Subject whose legacy reading differs (fieldvalue.py rule 4): the engine's
    term is of the as_learned view's text (review24c T1 c)."""
    tables = C.train([(t, True) for t in SPAM] + [(t, False) for t in HAM], 5)
    loaded = defs.load(chars_set(tmp_path, tables))
    view = view_of(message("buy=?UTF-8?Q?cheap?=now", "click here"))
    parts: list = []
    found, _ = features(view, loaded, parts)
    learned = C.char_text(view.as_learned(), parts, 3000)
    shown = C.char_text(view, parts, 3000)
    assert learned != shown
    e = loaded.chars.tables.evidence(learned, 2.0, "all")
    assert e != loaded.chars.tables.evidence(shown, 2.0, "all")
    assert HeuristicEngine(loaded).score(view).raw == pytest.approx(
        raw_of(found, parts, loaded) + 4.0 * e, abs=1e-12)


@pytest.mark.parametrize("chars", [
    {**SETTINGS, "denominator": "al"}, {**SETTINGS, "max_chars": C.MAX_CHARS + 1},
    {k: v for k, v in SETTINGS.items() if k != "lambda"}])
def test_the_trainer_refuses_bad_chars_settings_before_reading(monkeypatch, tmp_path, capsys,
                                                               chars):
    """The loader's rules, checked when the tool starts (review24c D1): not minutes of
    training and a set the loader then refuses (the corpus named does not exist)."""
    monkeypatch.setattr(trainer, "CHARS", chars)
    assert trainer.main(["--corpus", str(tmp_path / "none"), "--out",
                         str(tmp_path / "out")]) == 2
    assert "CHARS: scoring chars must" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_trainer_reads_chars_as_the_loader_does(monkeypatch):
    monkeypatch.setattr(trainer, "CHARS", SETTINGS)
    assert trainer.chars_settings() == defs.chars_settings(SETTINGS) == {
        "order": 5, "lam": 4.0, "clip": 2.0, "max_chars": 3000, "denominator": "all",
        "prior": 0, "min_share": 0.0, "min_english": 0.0, "drop_urls": False}


def test_the_gateway_bench_reads_as_the_tool_or_refuses(monkeypatch, capsys):
    """bench/antispam_gateway.py (review24c R3): the reading as the tool reads it; with
    CHARS set it refuses, as it does not train the character model in its folds."""
    from bench import antispam_gateway as bench
    monkeypatch.setattr(bench, "corpus_messages", lambda corpus: [])    # no corpus read
    monkeypatch.setattr(trainer, "CHARS", SETTINGS)
    assert bench.main([]) == 2
    assert "CHARS is set" in capsys.readouterr().err
    monkeypatch.setattr(trainer, "CHARS", None)
    monkeypatch.setattr(trainer, "DELISTED", True)
    asked = []

    class Stop(Exception):
        pass

    def extract(samples, rules, *view, **reading):
        asked.append(reading)
        raise Stop
    monkeypatch.setattr(trainer, "extract", extract)
    with pytest.raises(Stop):
        bench.main([])
    assert asked == [{"windows": trainer.WINDOWS, "delisted": True}]
