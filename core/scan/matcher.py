"""Multi-pattern matching of body signatures over a buffer, with a cost that stays flat as
the number of signatures grows (docs/antivirus.md "How the builtin engine matches").

Three stages, as ClamAV itself does (a q-gram filter in front of Aho-Corasick):

1. Filter (numpy): every signature has an anchor, its longest literal run (<= 16 bytes).
   Anchors of 15+ bytes are keyed by the 8-byte grams at their offsets 0..7, so reading
   the buffer as aligned 8-byte words (stride 8) meets one of them wherever the anchor
   lies; anchors of 7-14 bytes likewise by 4-byte grams at offsets 0..3 (stride 4);
   anchors of 4-6 bytes by their first 4-byte gram at every position (stride 1, or
   bytes.find when there are only a few). A word is looked up in two bit tables (two
   hashes of the gram: a Bloom filter), then exactly in the sorted keys. Cost per byte is a few vector operations,
   whatever the signature count.
2. Aho-Corasick (pyahocorasick) over the small windows around the filter's hits: which
   anchors really occur, and where.
3. Verification: each signature whose anchor occurred is matched in full (its sub-patterns
   in order, `*` between them) under its offset rule (absolute, floating, EOF, PE entry
   point / sections). Signatures without a 4-byte literal ("weak") are verified on every
   buffer; loading counts them so an administrator can see the cost.

Rules: a buffer is scanned to the first verified signature (ClamAV's default, not
--allmatch); every signature is verified at most once per buffer. Nothing here reads
files or settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ahocorasick
import numpy as np

from core.scan.signatures import BodySignature

__all__ = ["Matcher", "CHUNK_OCTETS"]

CHUNK_OCTETS = 1 << 22            # the filter works on 4 MiB at a time (bounded temporaries)
TABLE_BITS = 24
MAX_FIND_ANCHORS = 4
_MULT64 = np.uint64(0x9E3779B97F4A7C15)
_MULT32 = np.uint32(2654435761)
_MULT64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_MULT32_2 = np.uint32(0x85EBCA6B)


class _Tier:
    """One filter tier: grams of `width` bytes read at `stride` (module stage 1)."""

    def __init__(self, width: int, stride: int, keys: set[int]):
        self.width, self.stride = width, stride
        dtype = np.uint64 if width == 8 else np.uint32
        self.dtype = np.dtype("<u8" if width == 8 else "<u4")
        self.keys = np.unique(np.fromiter(keys, dtype=dtype, count=len(keys)))
        self.mult = _MULT64 if width == 8 else _MULT32
        self.shift = (np.uint64 if width == 8 else np.uint32)(width * 8 - TABLE_BITS)
        self.index_dtype = np.int64 if width == 8 else np.int32
        self.mult2 = _MULT64_2 if width == 8 else _MULT32_2
        self.table = np.zeros(1 << TABLE_BITS, dtype=bool)
        self.table2 = np.zeros(1 << TABLE_BITS, dtype=bool)   # a second hash: Bloom, k=2
        if self.keys.size:
            with np.errstate(over="ignore"):
                self.table[(self.keys * self.mult) >> self.shift] = True
                self.table2[(self.keys * self.mult2) >> self.shift] = True

    def hits(self, data: bytes, base: int) -> np.ndarray:
        """Start positions (relative to data) of words that are keys."""
        out = []
        phases = range(self.width) if self.stride == 1 else (0,)
        for phase in phases:
            count = (len(data) - phase) // self.width
            if count <= 0:
                continue
            words = np.frombuffer(data, dtype=self.dtype, offset=phase, count=count)
            with np.errstate(over="ignore"):
                hashed = words * self.mult
            hashed >>= self.shift
            index = np.flatnonzero(self.table.take(hashed.view(self.index_dtype)))
            if not index.size:
                continue
            found = words[index]
            with np.errstate(over="ignore"):
                second = found * self.mult2
            second >>= self.shift
            keep = self.table2.take(second.view(self.index_dtype))
            index, found = index[keep], found[keep]
            if not index.size:
                continue
            where = np.searchsorted(self.keys, found)
            where[where >= self.keys.size] = 0
            index = index[self.keys[where] == found]
            if index.size:
                out.append(index * self.width + phase)
        if not out:
            return np.empty(0, dtype=np.int64)
        return np.concatenate(out)


class Matcher:
    def __init__(self, signatures: Sequence[BodySignature]):
        self.signatures = list(signatures)
        self.weak: list[int] = []
        anchor_ids: dict[bytes, int] = {}
        self.anchor_sigs: list[list[int]] = []
        self.anchor_len: list[int] = []
        grams = {8: set(), 4: set(), 1: set()}
        for index, sig in enumerate(self.signatures):
            anchor = sig.anchor
            if len(anchor) < 4:
                self.weak.append(index)
                continue
            aid = anchor_ids.get(anchor)
            if aid is None:
                aid = anchor_ids[anchor] = len(self.anchor_sigs)
                self.anchor_sigs.append([])
                self.anchor_len.append(len(anchor))
                if len(anchor) >= 15:
                    for o in range(8):
                        grams[8].add(int.from_bytes(anchor[o:o + 8], "little"))
                elif len(anchor) >= 7:
                    for o in range(4):
                        grams[4].add(int.from_bytes(anchor[o:o + 4], "little"))
                else:
                    grams[1].add(int.from_bytes(anchor[:4], "little"))
            self.anchor_sigs[aid].append(index)
        # few short anchors: bytes.find (C speed) beats a stride-1 filter pass
        self.short: list[tuple[bytes, int]] = []
        if len(grams[1]) <= MAX_FIND_ANCHORS:
            self.short = [(a, i) for a, i in anchor_ids.items() if len(a) < 7]
            grams[1] = set()
        self.tiers = [t for t in (_Tier(8, 8, grams[8]), _Tier(4, 4, grams[4]),
                                  _Tier(4, 1, grams[1])) if t.keys.size]
        self.max_anchor = max(self.anchor_len, default=0)
        self.automaton = ahocorasick.Automaton()
        for anchor, aid in anchor_ids.items():
            self.automaton.add_word(anchor.decode("latin-1"), aid)
        if anchor_ids:
            self.automaton.make_automaton()
        self.has_anchors = bool(anchor_ids)

    def __len__(self) -> int:
        return len(self.signatures)

    # --- stage 1 + 2 --------------------------------------------------------------------
    def anchor_hits(self, data: bytes):
        """Yield (anchor id, start) for anchors occurring in data (stages 1 and 2)."""
        if not self.has_anchors or len(data) < 4:
            return
        for anchor, aid in self.short:
            where = data.find(anchor)
            while where >= 0:
                yield aid, where
                where = data.find(anchor, where + 1)
        if not self.tiers:
            return
        span = self.max_anchor
        for start in range(0, len(data), CHUNK_OCTETS):
            # chunks overlap by one anchor so an anchor across the border is seen
            chunk = data[start:start + CHUNK_OCTETS + span]
            positions = [tier.hits(chunk, start) for tier in self.tiers]
            positions = np.unique(np.concatenate(positions)) if positions else positions
            if not len(positions):
                continue
            windows = _merge(positions, span, len(chunk))
            for lo, hi in windows:
                text = chunk[lo:hi].decode("latin-1")
                for end, aid in self.automaton.iter(text):
                    begin = lo + end - self.anchor_len[aid] + 1
                    if begin < CHUNK_OCTETS:     # else the next chunk reports it
                        yield aid, start + begin

    # --- stage 3 --------------------------------------------------------------------------
    def first_match(self, data: bytes, accept: Callable[[BodySignature], bool],
                    resolve: Callable) -> BodySignature | None:
        """The first signature that matches `data` (module rules). `accept(sig)` filters by
        target type; `resolve(offset)` turns an Offset into (start, end) bounds for the
        first sub-pattern's start, or None when it cannot apply (EP of a non-PE)."""
        tried: set[int] = set()
        for index in self.weak:
            sig = self.signatures[index]
            if accept(sig) and verify(sig, data, resolve):
                return sig
        for aid, _begin in self.anchor_hits(data):
            for index in self.anchor_sigs[aid]:
                if index in tried:
                    continue
                tried.add(index)
                sig = self.signatures[index]
                if accept(sig) and verify(sig, data, resolve):
                    return sig
        return None


def _merge(positions, span: int, limit: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for p in positions.tolist():
        lo, hi = max(0, p - span), min(limit, p + span + 8)
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def verify(sig: BodySignature, data: bytes, resolve: Callable) -> bool:
    """Does the whole signature match `data` under its offset rule?"""
    bounds = resolve(sig.offset, len(data))
    if bounds is None:
        return False
    lo, hi = bounds                       # first part must start within lo..hi
    if lo < 0 or lo > len(data):
        return False
    first = sig.parts[0]
    if lo == hi:
        match = first.match(data, lo)
    else:
        match = first.search(data, lo)
        if match is not None and hi is not None and match.start() > hi:
            match = None
    if match is None:
        return False
    position = match.end()
    for part in sig.parts[1:]:
        match = part.search(data, position)
        if match is None:
            return False
        position = match.end()
    return True
