"""Content and spam rule terms are words and phrases (shared/wildcard.py `find`, `TermSet`).

Guide finding 2 (guide §5 "Blocking by custom spam rules": terms are "words or phrases"): the
spam rule `v*agra, c?alis` dropped an invoice with "Vendor" at the top and "Agra" 6,000
characters later (`*` ran across 200 lines) and "Our specialist will call" (`c?alis` inside
"specialist"). A term's ends are now word ends, `*` and `?` stay within a word, and a term
that begins or ends with `*` is found inside a word at that end. Whole patterns (subject
lines, file names: `matches`) keep their meaning.
"""

import random
import re
import sys
import unicodedata

import pytest

from shared import term_set, wildcard
from shared.term_set import TermSet
from shared.wildcard import find, matches

INVOICE = ("Vendor invoice attached.\n" + "Lorem ipsum dolor sit amet.\n" * 200
           + "Regards from the Agra office.")


@pytest.mark.parametrize("term, text, found", [
    # the tester's messages, and what the same rule must still catch
    ("v*agra", INVOICE, False),
    ("c?alis", "Our specialist will call you on Monday.", False),
    ("v*agra", "buy v1agra now", True),
    ("v*agra", "buy V-i-agra now", True),
    ("c?alis", "cheap c1alis", True),
    ("viagra", "VIAGRA!", True),
    ("viagra", "(viagra)", True),
    ("viagra", "viagra", True),                         # the very start and end of the text
    ("viagra", "viagra and more", True),
    ("viagra", "and more viagra", True),
    ("viagra", "viagras", False),
    ("sex", "Sussex", False),                           # Scunthorpe
    ("sex", "Essex", False),
    ("sex", "sex.", True),
    ("*agra", "viagra", True),                          # a `*` end is inside a word, as written
    ("via*", "viagra", True),
    ("via*", "a viaduct", True),
    ("via*", "trivia", False),
    ("*agra*", "viagras", True),
    ("v*agra", "v agra", False),                        # `*` never crosses white space
    ("c?alis", "c alis", False),                        # nor does `?`
    ("cheap rolex", "a cheap rolex", True),             # a phrase
    ("cheap rolex", "cheap\nrolex", True),              # one white-space character
    ("cheap rolex", "cheapo rolex", False),
    ("cheap r*x", "cheap rolex here", True),
    ("cheap r*x", "cheap rolexes", False),
    ("100%", "only 100% pure", True),                   # a non-letter end asks for nothing
    ("100%", "a 1100% rise", False),
    ("$100", "US$100", True),
    (r"c:\temp", r"saved in c:\temp\x", True),
    ("東京", "私は東京に住んでいます", True),               # no spaces to ask for in CJK
    ("東京", "東京タワー", True),
    ("viagra", "バイアグラviagra販売", True),            # nor next to them
    ("ภาษา", "ภาษาไทยง่าย", True),                      # Thai
    ("서울", "서울시", False),                            # Hangul is written with spaces
    ("서울", "서울 시", True),
    ("नमस", "नमस्ते", False),                            # a mark is part of its word
])
def test_a_term_is_found_as_a_word_or_phrase(term, text, found):
    assert find(term, text) is found
    assert (term in TermSet([term, "unrelated"]).found(text)) is found


@pytest.mark.parametrize("pattern, text", [
    ("*free*", "a free\nday"), ("h?t", "h t"), ("free*money", "free\nmoney"), ("*sex*", "Sussex")])
def test_whole_patterns_keep_their_meaning(pattern, text):
    # subject lines and file names: `*` and `?` are any characters, line breaks included
    assert matches(pattern, text)


# --- against the definition, character by character -----------------------------------------

# scripts written without spaces, by the names of their characters (the guide finding's list)
NO_SPACE_NAMES = ("CJK ", "KANGXI RADICAL", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "THAI",
                  "LAO ", "KHMER", "MYANMAR")


def _is_word(ch: str) -> bool:
    if unicodedata.name(ch, "").startswith(NO_SPACE_NAMES):
        return False
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def _by_definition(term: str, text: str) -> bool:
    """Every (start, end) of `text` tried: the term's characters in order (`*` any run
    without white space, `?` one non-white-space character, a space one white-space
    character), and where the term does not begin (end) with `*`, not a word character
    on both sides of the start (end)."""
    tokens, i = [], 0
    while i < len(term):
        if term[i] == "\\" and term[i + 1:i + 2] in ("*", "?"):
            tokens.append(re.escape(term[i + 1]))
            i += 2
            continue
        tokens.append({"*": r"\S*", "?": r"\S"}.get(term[i], r"\s" if term[i].isspace()
                                                    else re.escape(term[i])))
        i += 1
    whole = re.compile("".join(tokens), re.IGNORECASE)
    begins = bool(term) and not term.startswith("*")
    ends = bool(term) and not (term.endswith("*") and not term.endswith("\\*"))
    for start in range(len(text) + 1):
        for end in range(start, len(text) + 1):
            if not whole.fullmatch(text, start, end):
                continue
            if begins and 0 < start < end and _is_word(text[start - 1]) \
                    and _is_word(text[start]):
                continue
            if ends and start < end < len(text) and _is_word(text[end - 1]) \
                    and _is_word(text[end]):
                continue
            return True
    return False


@pytest.mark.parametrize("terms_from, text_from", [
    ("ab-*?  ", "aab- \n"),
    ("aB1*?\\ 東", "ab1B東 -\n\\"),
    ("ab\u0301ก*? ", "ab\u0301ก -\n"),
    ("ıİſßẞσςΣKKks *?", "ıİſßẞσςΣKKks \n."),
])
def test_find_and_a_term_set_agree_with_the_definition(terms_from, text_from):
    rng = random.Random(terms_from)
    for _ in range(1500):
        terms = ["".join(rng.choice(terms_from) for _ in range(rng.randint(0, 8)))
                 for _ in range(rng.randint(1, 6))]
        text = "".join(rng.choice(text_from) for _ in range(rng.randint(0, 24)))
        expected = {t for t in terms if _by_definition(t, text)}
        assert {t for t in terms if find(t, text)} == expected, (terms, text)
        assert TermSet(terms).found(text) == expected, (terms, text)


@pytest.mark.parametrize("per_check, first_chunk", [(1, 5), (64, 5), (10 ** 9, 5), (64, 1 << 16)])
def test_a_term_set_finds_what_find_finds_however_it_reads(monkeypatch, per_check, first_chunk):
    # trying every word, searching at once, and chunks that cut words and phrases
    monkeypatch.setattr(term_set, "CHARS_PER_CHECK", per_check)
    monkeypatch.setattr(term_set, "FIRST_CHUNK_CHARS", first_chunk)
    rng = random.Random(per_check + first_chunk)
    for _ in range(600):
        terms = ["".join(rng.choice("ab *?") for _ in range(rng.randint(0, 8)))
                 for _ in range(rng.randint(1, 12))]
        text = "".join(rng.choice("aAbB  ") for _ in range(rng.randint(0, 300)))
        assert TermSet(terms).found(text) == {t for t in terms if find(t, text)}, \
            (terms, text)


# --- the character tables are read from part of Unicode; hold them to all of it -------------

def test_white_space_is_what_re_and_split_take_and_lies_below_spaces_below():
    spaces = {c for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert spaces == {c for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c))}
    assert max(spaces) < term_set.SPACES_BELOW
    folded = term_set._fold("".join(map(chr, sorted(spaces))))
    assert folded == " " * len(spaces)


def test_the_no_space_scripts_hold_every_letter_named_for_them():
    named = {c for c in range(sys.maxunicode + 1) if chr(c).isalnum()
             and unicodedata.name(chr(c), "").startswith(NO_SPACE_NAMES)}
    assert all(any(low <= c <= high for low, high in wildcard.NO_SPACE_SCRIPTS)
               for c in named)


def test_marks_lie_where_they_are_read():
    low, high = wildcard.MARKS_PLANE_14
    for c in range(wildcard.MARKS_BELOW, sys.maxunicode + 1):
        if unicodedata.category(chr(c))[0] == "M":
            assert low <= c <= high, hex(c)


def test_a_word_character_is_what_the_stand_ins_make_it_in_all_of_unicode():
    # terms and text are read with stand-ins (wildcard.read), so that an expression
    # names word characters without a class of thousands of code points
    # (but the stand-ins' own planes, where Unicode assigns nothing)
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1)
                         if not (0xD800 <= c < 0xE000 or wildcard.STAND_IN_NO_SPACE <= c
                                 <= wildcard.STAND_IN_LAST))
    read = wildcard.read(everything)
    assert len(read) == len(everything)
    words = {m.start() for m in re.finditer(wildcard._WORD, read)}

    def is_word(ch: str) -> bool:
        if any(low <= ord(ch) <= high for low, high in wildcard.NO_SPACE_SCRIPTS):
            return False
        return ch.isalnum() or unicodedata.category(ch).startswith("M")

    expected = {i for i, ch in enumerate(everything) if is_word(ch)}
    # U+0345, a mark with a letter case, keeps its case and is no word character
    assert {everything[i] for i in words ^ expected} == {"\u0345"}
    stood_in = {ord(b) for a, b in zip(everything, read) if a != b}
    assert all(unicodedata.category(chr(c)) == "Cn" for c in stood_in)
    assert len(stood_in) == sum(a != b for a, b in zip(everything, read))     # one for one
