"""Many content and spam rule terms looked for in one text at once: each term means exactly
what shared/wildcard.py `find` makes of it, in time linear in the text as there.

`TermSet` keeps that for thousands of terms while reading the text once, not once per term
(the maximal rule set, 5000 terms, held a worker past its limit on a 3 MB attachment). A
term's locator is its piece with the longest run of plain characters; one Aho-Corasick pass
(pyahocorasick) over the text, letter case folded and white space read as a space, reports
where runs end, in text order. Each term waits for its locator's run; where it is, the piece
itself is checked, with the expression `find` would use for it (so case, `?` and word ends
mean exactly the same; a piece that is its run in plain ASCII, with no word end to ask,
needs none); the pieces before it are looked for from the start of the word, once per word
(one expression, `left`), and the pieces after it wait for their runs in turn, each at its
leftmost place in the rest of the word, the last anywhere there that ends at a word end.
Once a term has begun in a word, its later locators there are passed over. A term without
`*` is one piece: its locator's run gives its one place. The cost is the text, plus the run
occurrences, plus the checks of the terms waiting on them, plus the words read before a
locator. Runs no term waits for any more are dropped between chunks when they cost more than
the text, so a found word is not reported on to the end of the text.

Checks that fail are bounded too: the run of `s?x` is one letter, and a text of "sss…" had
every character checked, half a second per MB, past the worker's limit on 50 MB; a long
word full of a term's locator is passed over character by character. A term that has spent
(CHARS_PER_CHECK a check or a pass, the characters of a word read) what a search from where
a match may still begin would cost stops waiting and searches (in C, the scan `find` does:
its attempts' pieces in the rest of their words, its expression from the first word its
locator may be in). As in renting until renting has cost the price of buying, this costs at
most about twice the cheaper of checking every place and searching at once, whatever the
text.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from shared.wildcard import expression_source, read, term_expression, term_tokens

__all__ = ["TermSet"]

FIRST_CHUNK_CHARS = 1 << 16         # TermSet reads the text in chunks doubling from this
# One failed try of a term at a locator (a turn of TermSet's loop and a match) costs what
# a search of the term's expression costs over about this many characters (measured: ~550
# ns against ~9 ns a character for `s.x`); module docstring, last paragraph.
CHARS_PER_CHECK = 64
# An anchor occurrence nobody waits for costs a turn of that loop, what the automaton's
# reading of about this many characters costs; unused anchors are dropped once they cost
# more than the chunk (counted one per character, a one-letter anchor on a text of that
# letter never outnumbered the characters and was read to the end).
CHARS_PER_IDLE_ANCHOR = 16


# Planes 2-16 hold no letter with a case (CJK ideographs, tags, private use); the fold
# table is read from below this, and a test reads all of Unicode to hold us to it.
CASED_BELOW = 0x20000
# No white-space character (str.isspace, what re's \s and str.split take) is above this;
# a test reads all of Unicode.
SPACES_BELOW = 0x3001


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


@functools.cache
def _space_fold_table() -> dict[int, int]:
    """`_fold_table`, and every white-space character a space: in the folded text a
    locator with a space is found across any white space, and a word ends at " "."""
    table = dict(_fold_table())
    table.update((c, 0x20) for c in range(SPACES_BELOW) if chr(c).isspace() and c != 0x20)
    return table


def _fold(text: str) -> str:
    return text.translate(_space_fold_table())


@functools.lru_cache(maxsize=32768)
def _piece(source: str) -> re.Pattern:
    return re.compile(source, re.IGNORECASE)


@dataclass(frozen=True)
class _Piece:
    """A piece of a term between `*`s (one that is not empty)."""
    anchor: int                 # id of its longest plain run (folded); -1 before the locator
    offset: int                 # where the run starts in the piece
    length: int
    fits: int                   # characters before its first space (else its length): it
    #                             begins at most this far before the end of its word
    # its expression (with the term's word end where the term begins or ends), None when
    # the run is all of it in ASCII, whose letter-case classes are exactly re's (a, A; i, I,
    # ı, İ; k, K, K; s, S, ſ), and no word end is asked: where the run is, the piece is
    source: str | None


@dataclass(frozen=True)
class _Term:
    pieces: tuple[_Piece, ...]  # the term's pieces that are not empty
    locator: int                # the piece with the longest run: where the term is looked for
    words_back: int             # 1 + the spaces in the pieces before the locator
    starred: bool
    tokens: tuple[list[str | None], ...]                # of the pieces
    edges: tuple[bool, bool]    # the term begins, ends, at a word end (no `*` there)

    @functools.cached_property
    def left(self) -> str | None:
        """The pieces before the locator, from a word start."""
        return "".join(rf"(?>\S*?{expression_source(p, self.edges[0] and k == 0, False)})"
                       for k, p in enumerate(self.tokens[:self.locator])) or None

    @functools.cached_property
    def rests(self) -> tuple[str, ...]:
        """Piece k's: the pieces from k on, from where k may begin."""
        last = expression_source(self.tokens[-1], False, self.edges[1])
        return tuple("".join(rf"(?>\S*?{expression_source(p, False, False)})" for p in self.tokens[k:-1])
                     + rf"\S*?{last}" for k in range(len(self.tokens)))


def _term_parts(term: str, anchors: dict[str, int]) -> _Term | None:
    """How TermSet looks for `term`; None when it cannot wait for an anchor (no plain
    character at all, or a piece after the locator with `?`s and spaces only): such a term
    is searched for at once."""
    tokens = term_tokens(term)
    begins, ends = bool(tokens[0]), bool(tokens[-1])
    kept = [p for p in tokens if p]
    runs = [_longest_plain_run(p) for p in kept]
    j = max(range(len(kept)), key=lambda k: len(runs[k][0]), default=0)
    if not kept or not all(run for run, _ in runs[j:]):
        return None
    pieces = []
    for k, (p, (run, at)) in enumerate(zip(kept, runs)):
        edges = (begins and k == 0, ends and k == len(kept) - 1)
        plain = len(run) == len(p) and run.isascii() and not any(edges)
        # the pieces before the locator are read with `left`, and need no anchor
        anchor = anchors.setdefault(_fold(run), len(anchors)) if k >= j else -1
        pieces.append(_Piece(anchor, at, len(p), p.index(" ") if " " in p else len(p),
                             None if plain else expression_source(p, *edges)))
    return _Term(tuple(pieces), j, 1 + sum(p.count(" ") for p in kept[:j]), len(tokens) > 1,
                 tuple(kept), (begins, ends))


class TermSet:
    """Many rule terms, each to be found in a text as `find` finds it, with one reading of
    the text (module docstring). One set serves every message of a settings snapshot:
    `found` keeps its state in locals, and a piece's expression is compiled the first time
    a check needs it (compiling 5000 of them up front cost more than a 1 MB text)."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        anchors: dict[str, int] = {}
        self._terms = [_term_parts(p, anchors) for p in self.patterns]
        self._anchors = tuple(anchors)                  # id -> folded anchor
        self._automaton = _automaton(anchors.items())

    def found(self, text: str) -> set[str]:
        """The terms that `find` would find in `text`."""
        text = read(text)
        size, count = len(text), len(self.patterns)
        hits: set[int] = set()
        decided: set[int] = set()
        # per term: where its locator's piece may be next (earlier places are ruled out or
        # in a word an attempt began in); what its checks and reads have cost, in
        # characters; its pieces before the locator in the last word they were looked for
        # in (where they are looked for from, where they end or -1, up to where they were
        # looked for, where that locator's word ends); where its search would begin
        # (search_from); and its attempts: piece -> [(first place, last place)], one per
        # word, in text order
        since, spent, lefts, froms = [0] * count, [0] * count, [None] * count, [None] * count
        attempts: list[dict[int, deque[tuple[int, int]]]] = [{} for _ in range(count)]
        waiting: dict[int, list[tuple[int, int]]] = {}  # anchor -> (term, piece)
        listed: set[tuple[int, int]] = set()
        for term, parts in enumerate(self._terms):
            if parts is None:
                decided.add(term)
                if term_expression(self.patterns[term]).search(text):
                    hits.add(term)
            else:
                entry = (term, parts.locator)
                waiting.setdefault(parts.pieces[parts.locator].anchor, []).append(entry)
                listed.add(entry)
        pending = len(listed)
        if not pending:
            return {self.patterns[term] for term in hits}
        folded = _fold(text)
        word = [0, -1]                  # [p, q]: no space in folded[p:q], q a space or the end

        def word_end(at: int) -> int:
            if not word[0] <= at <= word[1]:
                end = folded.find(" ", at)
                word[:] = at, size if end < 0 else end
            return word[1]

        compiled: dict[str, re.Pattern] = {}

        def is_at(piece: _Piece, at: int) -> bool:
            source = piece.source
            if source is None:
                return True
            expression = compiled.get(source)
            if expression is None:
                expression = compiled[source] = _piece(source)
            return at >= 0 and expression.match(text, at) is not None

        def left_end(term: int, parts: _Term, at: int) -> int:
            """Where the term's pieces before the locator end at the earliest in the word
            (or words) before a locator at `at`; -1 when not before `at`."""
            cached = lefts[term]
            if cached is not None and cached[3] >= at:             # the same word
                start, end, tried = cached[:3]
                if end >= 0 or tried >= at:
                    return end
            else:
                start = _word_start(folded, at, parts.words_back)
            found = _piece(parts.left).match(text, start, at)
            spent[term] += at - start
            end = found.end() if found else -1
            lefts[term] = (start, end, at, word_end(at))
            return end

        def begin(term: int, k: int, lo: int, hi: int) -> None:
            """An attempt of `term` waits for its piece k in [lo, hi]."""
            queue = attempts[term].setdefault(k, deque())
            if queue and queue[-1][1] == hi:
                return                  # one that began earlier in this word holds it
            queue.append((lo, hi))
            if (term, k) not in listed:
                listed.add((term, k))
                waiting.setdefault(self._terms[term].pieces[k].anchor, []).append((term, k))

        def step(term: int, k: int, at: int) -> bool | None:
            """An anchor of piece k of `term` at `at`: True found, False the entry leaves
            its anchor, None it stays."""
            parts = self._terms[term]
            piece = parts.pieces[k]
            last = len(parts.pieces) - 1
            if k == parts.locator:
                if at < since[term]:
                    spent[term] += CHARS_PER_CHECK
                    return None
                spent[term] += CHARS_PER_CHECK
                if not is_at(piece, at):
                    since[term] = at + 1
                    return None
                if parts.left is not None and left_end(term, parts, at) < 0:
                    return None
                if k == last:
                    return True
                after = at + piece.length
                since[term] = word_end(at) if piece.fits == piece.length else at + 1
                begin(term, k + 1, after, word_end(after))
                return None
            queue = attempts[term].get(k)
            while queue and at > queue[0][1] - piece.fits:
                queue.popleft()         # its word ended without this piece
            if not queue:
                return False
            lo, hi = queue[0]
            if at < lo or not is_at(piece, at):
                spent[term] += CHARS_PER_CHECK
                return None
            if k == last:
                return True
            queue.popleft()             # the leftmost place is all the next pieces need
            after = at + piece.length
            begin(term, k + 1, after, hi if piece.fits == piece.length else word_end(after))
            return None if queue else False

        def search_from(term: int) -> int:
            """Where a search for `term` has to begin: the first word a match whose
            locator is not ruled out yet may begin in."""
            parts = self._terms[term]
            start = since[term]
            if start < size and folded[start] == " " and parts.pieces[parts.locator].fits:
                start += 1              # where the locator cannot begin
            if not parts.starred:
                return start
            cached = froms[term]        # (a place, the end of its word, where to begin)
            if cached is None or not cached[0] <= start <= cached[1]:
                cached = froms[term] = (start, word_end(start),
                                        _word_start(folded, start, parts.words_back))
            return cached[2]            # its expression begins at the start of a word

        def buy(term: int, start: int) -> bool:
            """The rest searched at once (module docstring): each attempt's pieces in the
            rest of its word, and the term from `start` (search_from)."""
            parts = self._terms[term]
            if any(_piece(parts.rests[k]).match(text, lo) for k, queue in
                   attempts[term].items() for lo, _ in queue):
                return True
            return term_expression(self.patterns[term]).search(text, start) is not None

        automaton, chunk, begin_at = self._automaton, FIRST_CHUNK_CHARS, 0
        longest = max(len(a) for a in self._anchors)
        while begin_at < size and pending:
            end = min(size, begin_at + chunk)
            idle = 0
            # an anchor ending in this chunk may start in the last one: read back for it
            for last, anchor in automaton.iter(folded, max(0, begin_at - longest + 1), end):
                if last < begin_at:
                    continue                    # the last chunk reported it
                waiters = waiting.pop(anchor, None)
                if not waiters:
                    idle += 1
                    continue
                stay = []
                anchor_start = last + 1 - len(self._anchors[anchor])
                for term, k in waiters:
                    if term in decided:
                        listed.discard((term, k))
                        continue
                    at = anchor_start - self._terms[term].pieces[k].offset
                    outcome = step(term, k, at)
                    if outcome is None and spent[term] >= size - at:
                        # as much spent as the search would cost: search instead
                        start = search_from(term)
                        if spent[term] >= size - start:
                            outcome = buy(term, start)
                            decided.add(term)
                    if outcome is None:
                        stay.append((term, k))
                        continue
                    listed.discard((term, k))
                    if outcome or term in decided:
                        decided.add(term)
                        pending -= 1
                        if outcome:
                            hits.add(term)
                if stay:
                    waiting.setdefault(anchor, []).extend(stay)
                if not pending:
                    break
            if idle * CHARS_PER_IDLE_ANCHOR > end - begin_at:
                # anchors nobody waits for any more cost more than the text: drop them (a
                # found word, the long tail of "a", "aa"…, a term that searched the rest)
                automaton = self._narrowed(automaton, decided)
            begin_at, chunk = end, chunk * 2
        return {self.patterns[term] for term in hits}

    def _narrowed(self, automaton, decided):
        """The automaton of the anchors of terms not decided yet (their locator's and the
        pieces' after it: a term may begin again in every word)."""
        live = {piece.anchor for term, parts in enumerate(self._terms)
                if parts is not None and term not in decided
                for piece in parts.pieces[parts.locator:]}
        if len(live) == len(automaton):
            return automaton
        return _automaton((self._anchors[a], a) for a in live)


def _word_start(folded: str, at: int, words: int) -> int:
    """Where the word `words` - 1 words before the one `at` is in begins (0: the text's)."""
    for _ in range(words):
        at = folded.rfind(" ", 0, at)
        if at < 0:
            return 0
    return at + 1


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
