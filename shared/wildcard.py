"""`*` and `?` wildcard patterns, case-insensitive, with `\\` escapes (SPEC §3).

One matcher for every setting that takes such patterns: routing.local matches, subject lines,
file names, blacklist local parts, relay host patterns and content/spam rule terms. A pattern
matches the WHOLE text (so `*hot*` matches anywhere and `hot` only "hot"); `find` is the
"anywhere in the text" form that rule terms use, and `TermSet` answers `find` for many
patterns at once.

`*` is 0 or more characters, `?` exactly one (any letter, accented ones too), and `\\`
takes the special meaning from a `*` or `?` right after it and from nothing else (guide §5
and §6, "Escapes any special meaning for * and ? only"): every other character, a `\\`
before anything else included, is itself, so `c:\\temp` and `\\\\server\\share` are the paths
they look like.

Time is linear in the text for any pattern. A pattern is cut at its `*`s into pieces of
fixed length (`?` is one character); each piece is found at its leftmost place after the
previous one, which is all a `*` needs — the earliest place for a piece never rules out a
place for the pieces after it. (Translating `*` to a backtracking `.*` instead costs time
cubic in the text for `a*b*c` on text without "c": a 22 KB message held a worker for minutes.)

`TermSet` keeps that rule for thousands of patterns while reading the text once, not once
per pattern (the maximal rule set, 5000 terms, held a worker past its limit on a 3 MB
attachment): every piece has an anchor, its longest run of plain characters; one
Aho-Corasick pass (pyahocorasick) over the letter-case-folded text reports where anchors
end, in text order, and each pattern waits for the anchor of its next piece only. An
occurrence far enough on is checked with the piece's own expression — the one `find` uses,
so case and `?` mean exactly the same; a piece that is all plain ASCII is its anchor and
needs no check — and moves the pattern to its next piece. The cost is the text, plus the
anchor occurrences, plus the checks of the patterns waiting on them (patterns share the
waiting only when their pieces' longest plain runs are the same). Anchors no pattern can
still come to are dropped between chunks when they cost more than the text, so a found word
is not reported on to the end of the text.

Checks that fail are bounded too: the anchor of `s?x` is one letter, and a text of "sss…" had
every character checked, half a second per MB, past the worker's limit on 50 MB. A piece
refused at one place for every CHARS_PER_CHECK characters still ahead stops waiting: one
search of its expression over the rest (in C, the scan `find` does) gives its next place or
none, and its anchor, waited on by nobody, is dropped. As in renting until renting has cost
the price of buying, this costs at most about twice the cheaper of checking every place and
searching at once, whatever the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

__all__ = ["matches", "find", "TermSet"]

_ESCAPABLE = ("*", "?")        # what a `\\` can escape (module docstring)
FIRST_CHUNK_CHARS = 1 << 16         # TermSet reads the text in chunks doubling from this
# One failed check of a piece at an anchor (a turn of TermSet's loop and a fullmatch) costs
# what a search of the piece's expression costs over about this many characters (measured:
# ~550 ns against ~9 ns a character for `s.x`); module docstring, last paragraph.
CHARS_PER_CHECK = 64
# An anchor occurrence nobody waits for costs a turn of that loop, what the automaton's
# reading of about this many characters costs; unused anchors are dropped once they cost
# more than the chunk (counted one per character, a one-letter anchor on a text of that
# letter never outnumbered the characters and was read to the end).
CHARS_PER_IDLE_ANCHOR = 16


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


def find(pattern: str, text: str) -> bool:
    """True when `pattern` matches somewhere in `text`."""
    return _in_order(_compile(pattern).pieces, text, 0, len(text))


# --- many patterns at once ------------------------------------------------------------------

# Planes 2-16 hold no letter with a case (CJK ideographs, tags, private use); the fold
# table is read from below this, and a test reads all of Unicode to hold us to it.
CASED_BELOW = 0x20000


@functools.cache
def _fold_table(below: int = CASED_BELOW) -> dict[int, int]:
    """Code point -> the one standing for its letter-case class, for str.translate.

    A class holds a character, its lower case and the characters sharing an upper case
    (i, I, ı and İ; s, S and ſ; σ, ς and Σ), which is at least every pair that re's
    IGNORECASE takes as equal: folded text can show an anchor where the piece's expression
    then says no, never miss one. Lengths are kept (one code point each), so positions in
    the folded text are positions in the text. Built once per process, in tens of
    milliseconds: blocks without a cased character are skipped whole."""
    parent: dict[str, str] = {}

    def root(ch: str) -> str:
        while parent.setdefault(ch, ch) != ch:
            parent[ch] = parent[parent[ch]]
            ch = parent[ch]
        return ch

    def join(a: str, b: str) -> None:
        a, b = root(a), root(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    sharing_upper: dict[str, str] = {}
    for low in range(0, below, 256):
        block = "".join(map(chr, range(low, min(low + 256, below))))
        if block.lower() == block and block.upper() == block:
            continue
        for ch in block:
            lower, upper = ch.lower(), ch.upper()
            if lower == ch and upper == ch:
                continue
            join(ch, lower[0])          # İ lowers to "i̇": re takes its simple mapping, i
            join(ch, sharing_upper.setdefault(upper, ch))
    members: dict[str, list[str]] = {}
    for ch in parent:
        members.setdefault(root(ch), []).append(ch)
    table: dict[int, int] = {}
    for group in members.values():
        # a lower-case member stands for the class, so ASCII text stays ASCII ("A" -> "a")
        stand = min([ch for ch in group if ch.lower() == ch] or group)
        table.update((ord(ch), ord(stand)) for ch in group if ch != stand)
    return table


def _fold(text: str) -> str:
    return text.translate(_fold_table())


@dataclass(frozen=True)
class _Piece:
    length: int
    anchor: int | None          # id of its longest plain run; None: only `?`s, or empty
    offset: int                 # where the anchor starts in the piece
    # the anchor is the whole piece, in ASCII, whose letter-case classes are exactly re's
    # (a, A; i, I, ı, İ; k, K, K; s, S, ſ): where the anchor is, the piece is
    is_anchor: bool


class TermSet:
    """Many patterns, each to be found anywhere in a text (`find`), with one reading of the
    text (module docstring). One set serves every message of a settings snapshot: `found`
    keeps its state in locals, and the set only adds a piece's expression the first time a
    check needs it (compiling 5000 of them up front cost more than a 1 MB text)."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        anchors: dict[str, int] = {}
        self._pieces: list[tuple[_Piece, ...]] = []
        for pattern in self.patterns:
            pieces = []
            for tokens in _tokens(pattern):
                run, at = _longest_plain_run(tokens)
                anchor = anchors.setdefault(_fold(run), len(anchors)) if run else None
                pieces.append(_Piece(len(tokens), anchor, at,
                                     len(run) == len(tokens) and run.isascii()))
            self._pieces.append(tuple(pieces))
        self._anchors = tuple(anchors)                  # id -> folded anchor
        self._automaton = _automaton(anchors.items())
        self._expressions: dict[tuple[int, int], re.Pattern] = {}

    def _expression(self, term: int, k: int) -> re.Pattern:
        """Piece k of pattern `term` as `find` compiles it."""
        expression = self._expressions.get((term, k))
        if expression is None:
            expression = _compile(self.patterns[term]).pieces[k]
            self._expressions[term, k] = expression
        return expression

    def _is_at(self, term: int, k: int, text: str, at: int) -> bool:
        """Piece k of pattern `term` matches `text` at `at` (where its anchor was seen), as
        `find` would say: with the same compiled expression."""
        piece = self._pieces[term][k]
        if piece.is_anchor:
            return True
        return self._expression(term, k).fullmatch(text, at, at + piece.length) is not None

    def found(self, text: str) -> set[str]:
        """The patterns that `find` would find in `text`."""
        size = len(text)
        hits: set[int] = set()
        # anchor -> (pattern, piece, from, checks failed)
        waiting: dict[int, list[tuple[int, int, int, int]]] = {}
        pending = 0

        def advance(term: int, k: int, start: int) -> None:
            """Pieces before k matched; the next may start at `start`."""
            nonlocal pending
            pieces = self._pieces[term]
            while k < len(pieces):
                piece = pieces[k]
                if piece.anchor is not None:
                    waiting.setdefault(piece.anchor, []).append((term, k, start, 0))
                    pending += 1
                    return
                if start + piece.length > size:     # `?`s past the end: never
                    return
                start, k = start + piece.length, k + 1
            hits.add(term)

        for term in range(len(self.patterns)):
            advance(term, 0, 0)
        if pending:
            folded = _fold(text)
            automaton, chunk, begin = self._automaton, FIRST_CHUNK_CHARS, 0
            longest = max(len(a) for a in self._anchors)
            while begin < size and pending:
                end = min(size, begin + chunk)
                idle = 0
                # an anchor ending in this chunk may start in the last one: read back for it
                for last, anchor in automaton.iter(folded, max(0, begin - longest + 1), end):
                    if last < begin:
                        continue                    # the last chunk reported it
                    waiters = waiting.pop(anchor, None)
                    if not waiters:
                        idle += 1
                        continue
                    stay = []
                    anchor_start = last + 1 - len(self._anchors[anchor])
                    for waiter in waiters:
                        term, k, start, failed = waiter
                        piece = self._pieces[term][k]
                        at = anchor_start - piece.offset
                        if at < start:
                            stay.append(waiter)
                        elif self._is_at(term, k, text, at):
                            pending -= 1
                            advance(term, k + 1, at + piece.length)
                        elif (failed + 1) * CHARS_PER_CHECK < size - at:
                            stay.append((term, k, start, failed + 1))
                        else:
                            # as many failures as the rest of the text: search it instead
                            # (module docstring); no place after `at` is none at all
                            pending -= 1
                            place = self._expression(term, k).search(text, at + 1)
                            if place is not None:
                                advance(term, k + 1, place.end())
                    if stay:
                        waiting.setdefault(anchor, []).extend(stay)
                    if not pending:
                        break
                if idle * CHARS_PER_IDLE_ANCHOR > end - begin:
                    # anchors nobody waits for any more cost more than the text: drop the
                    # ones no pattern can come to (a found word, the long tail of "a", "aa"…,
                    # the one letter of a `?` piece that searched the rest)
                    automaton = self._narrowed(automaton, waiting)
                begin, chunk = end, chunk * 2
        return {self.patterns[term] for term in hits}

    def _narrowed(self, automaton, waiting):
        live = {piece.anchor for waiters in waiting.values() for term, k, *_ in waiters
                for piece in self._pieces[term][k:] if piece.anchor is not None}
        if len(live) == len(automaton):
            return automaton
        return _automaton((self._anchors[a], a) for a in live)


def _longest_plain_run(tokens: list[str | None]) -> tuple[str, int]:
    """The longest run of plain characters in a piece, and where it starts ("" when none)."""
    best, at, run_start = "", 0, 0
    for i, token in enumerate(tokens + [None]):
        if token is None:
            if i - run_start > len(best):
                best, at = "".join(tokens[run_start:i]), run_start
            run_start = i + 1
    return best, at


def _automaton(anchors: Iterable[tuple[str, int]]):
    automaton = ahocorasick.Automaton()
    for anchor, ident in anchors:
        automaton.add_word(anchor, ident)
    if len(automaton):
        automaton.make_automaton()
    return automaton
