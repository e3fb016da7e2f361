"""Canonical Huffman decoding tables for the LZH-family decoders (arj.py, lzx.py).

A code is canonical in the usual sense (libmspack readhuff.h make_decode_table, unarj
decode.c make_table): shorter codes first, codes of one length in symbol order, read
most-significant bit first. The table is indexed by the next `bits` bits of the stream (the
longest code length); each entry is `symbol << 5 | code length`.

Rules
    1. A table is built only from a complete code (Kraft sum exactly 1); an over-subscribed
       or incomplete set of lengths raises ValueError, as both references refuse it. A set of
       all-zero lengths is "empty" (None) where the caller allows it (LZX's length tree).
    2. Lengths above MAX_CODE_BITS raise ValueError; the table never exceeds 2**16 entries.
"""

from __future__ import annotations

__all__ = ["MAX_CODE_BITS", "decode_table"]

MAX_CODE_BITS = 16


def decode_table(lengths, *, allow_empty: bool = False) -> tuple[list[int], int] | None:
    """(table, bits) for these code lengths (index = symbol); None for an all-zero set when
    `allow_empty`. Raises ValueError for a set no decoder could use."""
    bits = max(lengths, default=0)
    if bits == 0:
        if allow_empty:
            return None
        raise ValueError("Huffman code without symbols")
    if bits > MAX_CODE_BITS:
        raise ValueError("Huffman code length above 16")
    by_length: list[list[int]] = [[] for _ in range(bits + 1)]
    for symbol, length in enumerate(lengths):
        if length:
            by_length[length].append(symbol)
    kraft = sum(len(symbols) << (bits - length) for length, symbols in enumerate(by_length))
    if kraft != 1 << bits:
        raise ValueError("incomplete or over-subscribed Huffman code")
    table = [0] * (1 << bits)
    code = 0
    for length in range(1, bits + 1):
        span = 1 << (bits - length)
        for symbol in by_length[length]:
            start = code * span
            table[start:start + span] = [symbol << 5 | length] * span
            code += 1
        code <<= 1
    return table, bits
