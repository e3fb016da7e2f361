"""Content and spam rule terms cost the text, not the text times the terms.

Tester policy A3: the maximal rule set of SPEC §3 (100 rules of 50 terms) and an ordinary
message with a 3 MB text/csv attachment hit the 60 s worker limit three times and the
message was held as suspect: every term read the whole text again. The terms are now
looked for together (shared/term_set.py TermSet); these tests count how often the terms' own
expressions — the ones `find` runs over the text — are run, through the pipeline, instead
of timing anything, and hold TermSet to `find`'s answers.
"""

import random
import re
import sys

import pytest

from shared import term_set, wildcard
from shared.term_set import TermSet
from shared.wildcard import find
from tests.unit.pipeline.support import message, verdict_of

# several seconds per test: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = pytest.mark.slow


def _rule(terms):
    return {"enabled": True, "match": "any", "terms": list(terms), "none_of": []}


MAXIMAL = [_rule(f"zqword{i}x{j}" for j in range(50)) for i in range(100)]   # SPEC §3 limits
ORDERS = "2026-11-28,order,12345,customer name here,shipped,EUR,199.00,comment text\n"
CSV = ORDERS * 40_000                                                             # 3 MB


def _orders_message(last_line: str = "") -> bytes:
    return message(subject="Orders export", body="The export is attached.\n",
                   attachments=[("orders.csv", (CSV + last_line).encode(), "text/csv")])


def _sources(term: str) -> set[str]:
    """The expressions TermSet may run for `term`: the term's own (`find`'s), its pieces',
    the pieces before its locator and the rests after each piece."""
    parts = term_set._term_parts(term, {})
    out = {wildcard.term_expression(term).pattern}
    if parts is not None:
        out |= {p.source for p in parts.pieces if p.source} | set(parts.rests)
        out |= {parts.left} if parts.left else set()
    return out


def _expression_runs(rule_lists, call):
    """(how many times an expression of a term of `rule_lists` ran during call(), its
    result). Those are the expressions that read the text; counting them is what the
    cost was, without a clock."""
    sources = {source for rules in rule_lists for rule in rules
               for term in (*rule["terms"], *rule["none_of"]) for source in _sources(term)}
    runs = 0

    def profile(frame, event, arg):
        nonlocal runs
        if event == "c_call" and isinstance(getattr(arg, "__self__", None), re.Pattern) \
                and arg.__self__.pattern in sources:
            runs += 1

    sys.setprofile(profile)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return runs, result


def test_the_maximal_rule_set_reads_a_3_mb_attachment_no_more_than_one_term_does():
    raw = _orders_message()
    one = [_rule(["zqword0x0"])]
    runs_one, _ = _expression_runs([one], lambda: verdict_of(raw, rules__content=one))
    runs_all, (view, findings, verdict) = _expression_runs(
        [MAXIMAL], lambda: verdict_of(raw, rules__content=MAXIMAL))
    assert len(view.body_text()) > len(CSV)             # the attachment was read, whole
    assert verdict.disposition == "deliver" and findings == []
    # before: one run per term and text, 10,000 readings of the 3 MB text
    assert runs_all <= runs_one


def test_terms_at_the_end_of_a_3_mb_attachment_are_found_among_the_maximal_rules():
    raw = _orders_message("zqspam-begins-then-the-end-of-file; and zqword99x7\n")
    spam_terms = ["zqspam*end?of?file"] + [f"zqspam{j}*x" for j in range(49)]
    spam = [_rule(spam_terms)] + MAXIMAL[:49]           # 50 + 50 rules: the most allowed
    content = MAXIMAL[50:]
    runs_all, (_, findings, _) = _expression_runs(
        [spam, content],
        lambda: verdict_of(raw, rules__spam=spam, rules__content=content))
    found = {(f.event, f.rule) for f in findings}
    assert ("content_rule_violation", "rules.content[49]") in found
    assert ("spam_rule_violation", "rules.spam[0]") in found
    few_spam, few_content = [_rule(spam_terms[:1])], [_rule(["zqword99x7"])]
    runs_few, _ = _expression_runs(
        [few_spam, few_content],
        lambda: verdict_of(raw, rules__spam=few_spam, rules__content=few_content))
    # the expressions run where a term's pieces occur, not once per term
    assert runs_all <= runs_few


def test_a_term_set_finds_what_find_finds():
    rng = random.Random(11)
    letters = "abAB\\ıİſßẞσςΣKKks"
    for size in (20, 400):
        for _ in range(1500):
            patterns = ["".join(rng.choice(letters + "*?") for _ in range(rng.randint(0, 7)))
                        for _ in range(rng.randint(1, 12))]
            text = "".join(rng.choice(letters + "\n") for _ in range(rng.randint(0, size)))
            assert TermSet(patterns).found(text) == {p for p in patterns if find(p, text)}, \
                (patterns, text)


def test_a_term_set_finds_what_find_finds_across_chunks(monkeypatch):
    monkeypatch.setattr(term_set, "FIRST_CHUNK_CHARS", 5)
    rng = random.Random(12)
    for _ in range(2000):
        patterns = ["".join(rng.choice("ab*?") for _ in range(rng.randint(0, 8)))
                    for _ in range(rng.randint(1, 12))]
        text = "".join(rng.choice("abAB") for _ in range(rng.randint(0, 300)))
        assert TermSet(patterns).found(text) == {p for p in patterns if find(p, text)}, \
            (patterns, text)


def test_anchors_nobody_waits_for_stop_being_read():
    # "a" … "a" * 50 are found at once; then only "b*c" waits, over 300,000 a's
    patterns = ["a" * n for n in range(1, 51)] + ["b*c", "b*d"]
    text = " ".join("a" * n for n in range(1, 51)) + " " + "a " * 150_000 + "b-c"
    assert TermSet(patterns).found(text) == set(patterns) - {"b*d"}


def test_the_case_fold_holds_every_pair_re_takes_as_equal():
    # the table is read below CASED_BELOW; all of Unicode gives the same one
    assert term_set._fold_table(sys.maxunicode + 1) == term_set._fold_table()
    table = term_set._fold_table()
    cased = {chr(c) for c in range(term_set.CASED_BELOW)
             if chr(c).lower() != chr(c) or chr(c).upper() != chr(c)}
    cased |= {chr(c) for pair in table.items() for c in pair}
    cased |= set(map(chr, range(128)))
    everything = "".join(sorted(cased))

    def stands(ch):
        return table.get(ord(ch), ord(ch))

    for c in cased:
        for x in re.findall(re.escape(c), everything, re.IGNORECASE):
            assert stands(x) == stands(c), (c, x)
    # for ASCII the classes are re's exactly, so a plain ASCII piece needs no second check
    for c in map(chr, range(128)):
        assert {x for x in cased if stands(x) == stands(c)} == \
            set(re.findall(re.escape(c), everything, re.IGNORECASE)), c


# --- a `?` term whose anchor is one letter (antispam adversary A2) --------------------------
# `s?x` is checked where its anchor "s" is; a body of "sss…" had every character checked
# (0.55 s a MB), and the spam rules were read twice (spam_rules, then antispam): 50 MB held
# a worker past its limit three times and the message was held as suspect.

FLOOD_CHARS = 1_000_000


class _CountingAutomaton:
    """The real automaton, counting the anchor occurrences it reports to TermSet's loop."""

    def __init__(self, automaton, counts):
        self._automaton, self._counts = automaton, counts

    def __len__(self):
        return len(self._automaton)

    def iter(self, *args):
        for item in self._automaton.iter(*args):
            self._counts["reported"] += 1
            yield item


def test_a_question_mark_term_over_a_flood_of_its_one_letter_anchor_searches_the_rest(
        monkeypatch):
    counts = {"reported": 0}
    real = term_set._automaton
    monkeypatch.setattr(term_set, "_automaton",
                        lambda anchors: _CountingAutomaton(real(anchors), counts))
    text = "s" * FLOOD_CHARS
    patterns = ["s?x", "viagra", "s?s*x"]
    runs, found = _expression_runs([[_rule(patterns)]], lambda: TermSet(patterns).found(text))
    assert found == {p for p in patterns if find(p, text)} == set()
    # before: one check per character, and "s" reported to the end of the text; now each
    # term is checked about once every CHARS_PER_CHECK characters, then searches the rest
    assert runs <= FLOOD_CHARS // 16
    assert counts["reported"] <= FLOOD_CHARS // 8


def test_a_question_mark_piece_that_searched_the_rest_still_finds_what_find_finds(monkeypatch):
    for per_check in (1, 64, 10 ** 9):          # search at once, as shipped, never
        monkeypatch.setattr(term_set, "CHARS_PER_CHECK", per_check)
        rng = random.Random(13)
        for _ in range(1500):
            patterns = ["".join(rng.choice("ab*?") for _ in range(rng.randint(0, 8)))
                        for _ in range(rng.randint(1, 12))]
            text = "".join(rng.choice("aAbB") for _ in range(rng.randint(0, 300)))
            assert TermSet(patterns).found(text) == {p for p in patterns if find(p, text)}, \
                (per_check, patterns, text)


def test_the_spam_rules_are_read_once_per_message_with_the_heuristic_engine_on():
    spam = [_rule(["s?x", "zq?word"])]
    raw = message(subject="Flood", body=("s" * 998 + "\n") * 200)
    runs_off, (_, findings, _) = _expression_runs(
        [spam], lambda: verdict_of(raw, rules__spam=spam))
    assert findings == []
    runs_on, (_, findings, _) = _expression_runs(
        [spam], lambda: verdict_of(raw, rules__spam=spam, heuristic__enabled=True))
    assert "spam_rule_violation" not in {f.event for f in findings}
    # before: the antispam check matched the rules again, twice the runs
    assert 0 < runs_on == runs_off
