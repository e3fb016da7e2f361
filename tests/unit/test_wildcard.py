"""shared/wildcard.py: `*`/`?` patterns, whole-text (`matches`) and rule terms (`find`: words
and phrases, tests/unit/test_rule_term_words.py), in linear time."""

import random
import re

import pytest

from shared.wildcard import find, matches


@pytest.mark.parametrize("pattern, text, whole, anywhere", [
    ("hot", "hot", True, True),
    ("hot", "a hot day", False, True),
    ("*hot*", "a hot day", True, True),
    ("HOT", "hot", True, True),                 # case-insensitive
    ("h?t", "hat", True, True),
    ("h?t", "ht", False, False),
    ("h?t", "h\nt", True, False),               # ? and * cross line breaks, but a term's
    ("free*money", "free\nmoney", True, False),  # stay in a word
    ("free*money*now", "free money free money", False, False),
    ("free*money*now", "free cash, money now", True, False),
    ("free*money*now", "free-cash-money-now", True, True),
    ("a*a", "a", False, False),                 # the two a's need two characters
    ("a*a", "aa", True, True),
    ("*.exe", "x.exe", True, True),
    ("*.exe", "x.exe.txt", False, True),
    (r"50\%", r"50\%", True, True),            # `\` escapes * and ? only (test_wildcard_escapes)
    (r"a\*b", "a*b", True, True),
    (r"a\*b", "axb", False, False),
    (r"\?", "?", True, True),
    (r"\?", "x", False, False),
    ("*", "", True, True),
    ("", "", True, True),
    ("", "x", False, True),
    ("*@bad.test", "x@bad.test", True, True),
    ("*@bad.test", "x@bad.test.org", False, True),
])
def test_patterns_match_as_the_spec_says(pattern, text, whole, anywhere):
    assert matches(pattern, text) is whole
    assert find(pattern, text) is anywhere


def _backtracking(pattern: str) -> str:
    """The obvious translation (`*` -> `.*`), as a reference on small texts."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and pattern[i + 1:i + 2] in ("*", "?"):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append({"*": ".*", "?": "."}.get(pattern[i], re.escape(pattern[i])))
        i += 1
    return "".join(out)


def test_the_linear_matcher_agrees_with_backtracking_on_random_patterns():
    # (a term's reading, `find`, is held to its definition in test_rule_term_words.py)
    rng = random.Random(7)
    for _ in range(5000):
        pattern = "".join(rng.choice("ab*?\\") for _ in range(rng.randint(0, 7)))
        text = "".join(rng.choice("abAB\n\\") for _ in range(rng.randint(0, 10)))
        reference = _backtracking(pattern)
        flags = re.IGNORECASE | re.DOTALL
        assert matches(pattern, text) is bool(re.fullmatch(reference, text, flags)), \
            (pattern, text)


def test_a_long_text_without_the_last_piece_is_read_once():
    # With `*` as a backtracking `.*` this took 12 s for 9 KB and grows with the cube of the
    # text; it is a spam rule's term against a message that does not contain "now" (in a
    # word as long as the text, where a term's `*` reaches as far as a pattern's).
    text = "free money " * 100_000
    assert not matches("free*money*now*", text)
    word = text.replace(" ", "-")
    assert not find("free*money*now", word)
    assert find("free*money*money", word)
