"""`*` and `?` wildcard patterns, case-insensitive, with `\\` escapes (SPEC §3).

One escape and one letter case for every setting that takes such patterns: routing.local
matches, subject lines, file names, blacklist local parts, relay host patterns and
content/spam rule terms. Two readings:

- `matches`: a pattern matches the WHOLE text (so `*hot*` matches anywhere and `hot` only
  "hot"), `*` is 0 or more characters and `?` exactly one (any letter, accented ones too).
  Subject lines, file names and the address and host patterns read so.
- `find` (and `TermSet`, many terms at once): a content or spam rule term is a word or
  phrase found in a text (guide §5 and §6: "If you are typing phrases, type all words in
  the phrase"), as an administrator means it. Its ends are word ends: where the match begins (ends) with a letter, digit or mark,
  the text character before (after) it must not be one, so `sex` is not found in "Sussex"
  nor `c?alis` in "specialist", while "VIAGRA!" and "(viagra)" have `viagra`. `*` is a run
  of characters within a word and `?` one character, never white space, so `v*agra` is
  one word ("v1agra", "v-i-agra") and not "Vendor …" a page before "Agra". A term that
  begins (ends) with `*` is found inside a word at that end, as written (`*agra` in
  "viagra"). A space in a term is one white-space character of the text (callers read runs
  of white space as one space, in the text and in the term: core/pipeline/rules.py, so a
  phrase matches across a wrapped line). Scripts written without spaces between words
  (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar: NO_SPACE_SCRIPTS) have no word ends
  to ask for: a letter of theirs is never a letter for that rule, on either side, so
  `東京` is found in "私は東京に住む" and "ABC" in "東京ABC社"; Hangul is written with spaces
  and keeps them.

`\\` takes the special meaning from a `*` or `?` right after it and from nothing else (guide
§5 and §6, "Escapes any special meaning for * and ? only"): every other character, a `\\`
before anything else included, is itself, so `c:\\temp` and `\\\\server\\share` are the paths
they look like.
A `\\` before another punctuation mark (`100\\%`, `www\\.site\\.com`) is an escape from
another syntax that this one does not have: it would look for the backslash, so the text
meant is never found. Rule terms that hold one are refused at save
(shared/settings_cross_rules.py, with `misread_escapes`); those stored before are matched as
written, a backslash and the mark. But a file or folder name may begin with a mark
(`.ssh`, `$Recycle.Bin`, `~tmp`, `_build`), and in a path the `\\` before it is the path's.
Nothing in the pair tells the two apart (`users\\.ssh`, `site\\.com`), nor does a `\\`
between letters (a path's in `users\\me`, a regular expression's `\\s` in `buy\\snow`); a
term that holds a Windows path's start does: a drive (`c:\\`) or a server (`\\\\fs`) at a
word start. Every `\\` of such a term is the path's and kept (`c:\\users\\.ssh`,
`\\\\fs\\$Recycle.Bin`). Elsewhere the refusal's advice holds for a name too: the mark
alone (`.ssh`) is found in any path, "c:\\users\\.ssh" included, as `\\` and the mark are
no word characters; for the backslash itself, `?` (`users?.ssh`).

Time is linear in the text for any pattern. For `matches`, a pattern is cut at its `*`s
into pieces of fixed length (`?` is one character); each piece is found at its leftmost
place after the previous one, which is all a `*` needs — the earliest place for a piece
never rules out a place for the pieces after it. (Translating `*` to a backtracking `.*`
instead costs time cubic in the text for `a*b*c` on text without "c": a 22 KB message held
a worker for minutes.) A term's `*` stays in its word, and the same holds word by word: in a
word, the leftmost place where the first piece begins at a word end, then the leftmost
place of each further piece, is the one to try; only the last piece, which must end at a
word end, may be anywhere in the rest of its word. So a term is one expression (`term_expression`)
that tries each word's start once, its pieces in atomic groups (`(?>…)`, nothing given back),
and reads a word once per space the term holds.

Many terms at once, reading the text once: shared/term_set.py `TermSet`.

Marks (`without_marks`): where a pattern is read against text a person wrote — content and
spam rule terms, subject lines, file names — letters compare without their accents and the
other marks written over or under them (the combining diacritical marks, which canonical
decomposition splits from an accented Latin, Greek or Cyrillic letter; Hebrew points and
cantillation; Arabic vowel signs and the tatweel that stretches a word), on both sides, as
an accent-insensitive search does: `resume` matches "résumé" and `résumé` "resume",
`ΠΡΟΣΦΟΡΑ` "Προσφορά" (Greek capitals are written without the tonos), `סודי` "סוֹדִי" (tester
i18n19 B1, B2). So a rule cannot tell "año" from "ano", nor "й" from "и", nor the
Vietnamese tones of "mà", "má" and "ma". The marks other scripts write as part of the
letter are kept: the kana voicing marks of "ガ", Indic and Thai vowel signs, and Arabic
hamza and madda (U+0653-0655, U+065F), which seat a letter: "أ", "إ", "آ" are not "ا", nor
"ؤ" "و", nor "ئ" "ي", and `سأل` ("asked") does not find "سال" ("flowed"); review19 r4 D2.
Addresses and host names are identifiers and keep theirs (`matches` alone).
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["matches", "find", "read", "term_tokens", "expression_source", "term_expression",
           "misread_escapes", "without_marks"]

_ESCAPABLE = ("*", "?")        # what a `\\` can escape (module docstring)
# Punctuation that a `\\` before it seems to escape and does not (module docstring). A `\\`
# before a letter, a digit, a space or another `\\` is taken as written, most often a path's
# (`c:\\temp`, `\\\\fs`): refusing it would refuse paths. One before a comma was typed on
# purpose: the consoles' term lines read `\\,` as a comma (console/rule_terms.py), so a
# term holds `\\,` only when `\\\\\\,` was typed for it. A path's `\\` before a mark
# (`users\\.ssh`) is told from an escape only in a term that holds a path's start.
_NOT_ESCAPABLE = frozenset(string.punctuation) - {"\\", ",", *_ESCAPABLE}
# A drive (`c:\\`) or a server (`\\\\fs`) at a word start: the term holds a Windows path.
_PATH_START = re.compile(r"(?<![^\W_])[a-z]:\\|(?<![^\W_\\])\\\\[^\W_]", re.IGNORECASE)


def misread_escapes(pattern: str) -> list[str]:
    """The `\\` + punctuation pairs of `pattern` that look like escapes and are not
    (module docstring): `["\\%"]` for `100\\% pure`, in order, each once; none in a term
    that holds a Windows path's start (`c:\\users\\.ssh`)."""
    if _PATH_START.search(pattern):
        return []
    found = [pattern[i:i + 2] for i, ch in enumerate(pattern)
             if ch == "\\" and pattern[i + 1:i + 2] in _NOT_ESCAPABLE]
    return list(dict.fromkeys(found))


# The marks `without_marks` drops (module docstring, "Marks"): every mark of the blocks of
# combining diacritical marks, and the nonspacing marks of the Hebrew and Arabic blocks, with
# the Arabic tatweel (a letter to Unicode, a stroke that stretches a word to a reader), but
# not the Arabic hamza and madda that make a letter of alef, waw, yeh or heh (LETTER_MARKS).
_COMBINING_BLOCKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                     (0xFE20, 0xFE2F))
_POINTED_SCRIPT_BLOCKS = ((0x0590, 0x05FF), (0x0600, 0x06FF), (0x0750, 0x077F),
                          (0x0870, 0x08FF))
TATWEEL = 0x0640
# maddah above, hamza above, hamza below, wavy hamza below: أ إ آ ؤ ئ ۀ decompose to them
LETTER_MARKS = frozenset((0x0653, 0x0654, 0x0655, 0x065F))


@functools.cache
def _mark_searches() -> tuple[re.Pattern, re.Pattern]:
    """(a run of the marks dropped, a character holding one: one of the marks or a letter
    whose canonical decomposition has one). Built once per process (~60 ms). The second
    is one character: a search for a run of them costs three times as much in text that
    has none (Japanese, 7 ms a MB)."""
    marks = {c for low, high in _COMBINING_BLOCKS for c in range(low, high + 1)
             if unicodedata.category(chr(c))[0] == "M"}
    marks |= {c for low, high in _POINTED_SCRIPT_BLOCKS for c in range(low, high + 1)
              if unicodedata.category(chr(c)) == "Mn" and c not in LETTER_MARKS}
    marks.add(TATWEEL)
    holding = set(marks)
    for c in range(CANONICAL_DECOMPOSITIONS_BELOW):
        decomposition = unicodedata.decomposition(chr(c))
        if decomposition and not decomposition.startswith("<") and any(
                ord(d) in marks for d in unicodedata.normalize("NFD", chr(c))):
            holding.add(c)

    def one_of(points: set[int]) -> str:
        ranges = _ranges(sorted(points))
        return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]"
    return re.compile(one_of(marks) + "+"), re.compile(one_of(holding))


# No character with a canonical decomposition is above this (the CJK compatibility
# ideographs of plane 2 end at U+2FA1D); a test reads all of Unicode.
CANONICAL_DECOMPOSITIONS_BELOW = 0x30000


def without_marks(text: str) -> str:
    """`text` without the marks of the module docstring ("Marks"), in canonical composition
    (NFC) when it held one: "Προσφορά" -> "Προσφορα", "résumé" -> "resume", "İ" -> "I"."""
    if text.isascii():
        return text
    marks, holding = _mark_searches()
    if holding.search(text) is None:
        return text
    return unicodedata.normalize("NFC", marks.sub("", unicodedata.normalize("NFD", text)))


def _tokens(pattern: str) -> list[list[str | None]]:
    """The pieces between unescaped `*`s: each a list of characters, None for a `?`."""
    pieces: list[list[str | None]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and pattern[i + 1:i + 2] in _ESCAPABLE:
            pieces[-1].append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            pieces.append([])
        else:
            pieces[-1].append(None if ch == "?" else ch)
        i += 1
    return pieces


@dataclass(frozen=True)
class _Pattern:
    pieces: tuple[re.Pattern, ...]      # the parts between `*`s, each of fixed length
    lengths: tuple[int, ...]
    starred: bool                       # at least one `*`


# Bigger than the longest list a pattern setting may hold (routing.local, relay.allowed:
# 10,000): a cache smaller than a list walked in order misses every time, 25 µs a pattern,
# a quarter of a second per recipient on the event loop.
@functools.lru_cache(maxsize=32768)
def _compile(pattern: str) -> _Pattern:
    pieces = _tokens(pattern)
    compiled = tuple(re.compile("".join("." if t is None else re.escape(t) for t in p),
                                re.IGNORECASE | re.DOTALL) for p in pieces)
    return _Pattern(compiled, tuple(len(p) for p in pieces), len(pieces) > 1)


def _in_order(pieces, text: str, start: int, end: int) -> bool:
    """Each piece found after the previous one within text[start:end]."""
    for piece in pieces:
        found = piece.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True


def matches(pattern: str, text: str) -> bool:
    """True when `pattern` matches all of `text`."""
    p = _compile(pattern)
    if not p.starred:
        return len(text) == p.lengths[0] and p.pieces[0].fullmatch(text) is not None
    first, last = p.lengths[0], p.lengths[-1]
    if first + last > len(text):
        return False
    if p.pieces[0].match(text, 0, first) is None:
        return False
    if p.pieces[-1].match(text, len(text) - last) is None:
        return False
    return _in_order(p.pieces[1:-1], text, first, len(text) - last)


# --- rule terms: words and phrases (find) ----------------------------------------------------

# Scripts written without spaces between words (module docstring): Thai, Lao, Myanmar,
# Khmer, Han (radicals, ideographs, their marks: 々, 〇, and counting rods), Hiragana and
# Katakana, by block; a test holds them to every letter and digit named for these scripts.
NO_SPACE_SCRIPTS = (
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x19E0, 0x19FF),
    (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3190, 0x319F), (0x31C0, 0x31FF),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),
    (0xF900, 0xFAFF), (0xFF65, 0xFF9F), (0x16FE0, 0x16FFF), (0x1AFF0, 0x1B16F),
    (0x1D360, 0x1D37F), (0x20000, 0x3FFFF))
# Combining marks (Unicode category M) are read below MARKS_BELOW and in plane 14 (its
# variation selectors); a test reads all of Unicode to hold us to it.
MARKS_BELOW = 0x20000
MARKS_PLANE_14 = (0xE0000, 0xE0FFF)
# A word character is a letter, digit or mark (re's \w without "_", and marks) of a script
# written with spaces. An expression cannot name those in a class of its own: re reads a
# class code point by code point, 9 ms for each term's. So where a text or term holds a
# letter or digit of NO_SPACE_SCRIPTS or a mark, both are read with a stand-in for it
# (`read`), one character for one, from planes 4-10, where Unicode assigns nothing: a
# letter's (STAND_IN_NO_SPACE + its code point) is no word character to re, and a mark's
# (STAND_IN_MARK + its place) is one by the range below. Lengths and places are kept, and
# a stand-in matches only itself, as the character did (none of them has a letter case).
STAND_IN_NO_SPACE = 0x40000
STAND_IN_MARK = 0x80000                 # marks below MARKS_BELOW; plane 14's follow them
STAND_IN_LAST = STAND_IN_MARK + MARKS_BELOW + MARKS_PLANE_14[1] - MARKS_PLANE_14[0]
_WORD = rf"(?-i:[^\W_]|[\U{STAND_IN_MARK:08x}-\U{STAND_IN_LAST:08x}])"


def _ranges(points: Iterable[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for c in points:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [(a, b) for a, b in out]


@functools.cache
def _stand_in_searches() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(one of the characters `read` stands in for in the basic plane, any character
    beyond it, a run of the characters `read` stands in for). Built once per process
    (~50 ms). A class with characters beyond the basic plane is read range by range at
    every character, 30 ms a MB: the first two tell in ~3 ms a MB each that European text
    has nothing to stand in for, and the run's class looks beyond only for such a one."""
    letters = (c for low, high in NO_SPACE_SCRIPTS for c in range(low, high + 1)
               if chr(c).isalnum())
    marks = (c for low, high in ((0, MARKS_BELOW - 1), MARKS_PLANE_14)
             for c in range(low, high + 1)
             if unicodedata.category(chr(c))[0] == "M" and not _no_space(c)
             and chr(c).lower() == chr(c) == chr(c).upper())     # U+0345 has a case
    ranges = _ranges(sorted({*letters, *marks}))

    def among(low: int, high: int) -> str:
        return "[" + "".join(f"\\U{max(a, low):08x}-\\U{min(b, high):08x}"
                             for a, b in ranges if a <= high and b >= low) + "]"

    basic, beyond = among(0, 0xFFFF), "[\\U00010000-\\U0010ffff]"
    return (re.compile(basic), re.compile(beyond),
            re.compile(f"(?:{basic}|(?={beyond}){among(0x10000, 0x10FFFF)})+"))


def _no_space(c: int) -> bool:
    return any(low <= c <= high for low, high in NO_SPACE_SCRIPTS)


class _StandIns(dict):
    """Code point -> its stand-in, for str.translate; filled as characters are met."""

    def __missing__(self, c: int) -> int:
        if _no_space(c):
            stand = STAND_IN_NO_SPACE + c
        else:
            stand = STAND_IN_MARK + (c if c < MARKS_BELOW else
                                     MARKS_BELOW + c - MARKS_PLANE_14[0])
        self[c] = stand
        return stand


_STAND_INS = _StandIns()


def read(text: str) -> str:
    """`text` with the stand-ins of `_WORD`'s comment (itself when it has none)."""
    if text.isascii():
        return text
    basic, beyond, runs = _stand_in_searches()
    if basic.search(text) is None and beyond.search(text) is None:
        return text
    return runs.sub(lambda run: run[0].translate(_STAND_INS), text)


def term_tokens(term: str) -> list[list[str | None]]:
    """`_tokens`, read as `read` reads text, every white-space character " " (it matches
    any: `expression_source`)."""
    return [[None if t is None else " " if t.isspace() else read(t) for t in piece]
            for piece in _tokens(term)]


def expression_source(tokens: list[str | None], begins: bool, ends: bool) -> str:
    """A piece as an expression: `?` is one character and a space one white-space
    character; `begins`/`ends`: the match begins (ends) here, at a word end."""
    out = [r"\S" if t is None else r"\s" if t == " " else re.escape(t) for t in tokens]
    if not out:
        return ""
    if begins:          # not a word character on both sides of the first one, looked
        # at once the piece is there (a letter's mismatch is cheaper than two lookups)
        out.append(f"(?<!{_WORD}{_WORD}" + (rf"[\s\S]{{{len(out) - 1}}}" if len(out) > 1
                                            else "") + ")")
    if ends:
        out.append(f"(?:(?<!{_WORD})|(?!{_WORD}))")
    return "".join(out)


@functools.lru_cache(maxsize=32768)
def term_expression(term: str) -> re.Pattern:
    """The expression that finds `term` in text as `read` reads it (module docstring)."""
    pieces = term_tokens(term)
    if len(pieces) == 1:
        return re.compile(expression_source(pieces[0], True, True), re.IGNORECASE)
    # from the start of a word: the leftmost place of each piece but the last, kept
    # (atomic), then the last anywhere in the rest of its word that ends at a word end
    parts = [r"(?<!\S)"]
    parts += [rf"(?>\S*?{expression_source(p, k == 0, False)})" for k, p in enumerate(pieces[:-1])]
    parts.append(rf"\S*?{expression_source(pieces[-1], False, True)}")
    return re.compile("".join(parts), re.IGNORECASE)


def find(term: str, text: str) -> bool:
    """True when the rule term `term` is found in `text` as a word or phrase (module
    docstring)."""
    return term_expression(term).search(read(text)) is not None
