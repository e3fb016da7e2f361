"""LZX decompression (the LZ77 + Huffman method of Microsoft cabinets and CHM files), ported
from libmspack's lzxd.c (Stuart Caie) so chm.py and the cabinet reader (installshield.py)
can hand the engine what a CHM or an LZX cabinet folder holds.

    decompress(data, window_bits, reset_interval_frames, length, limit) -> bytes
    frames(data, window_bits, reset_interval_frames, length, limit) -> Iterator[bytes]
                        the same stream one decoded frame at a time, so a caller can keep
                        the frames that precede damage (cabd.c extracts up to the bad block)

The stream is a run of 32 KiB frames (the last one may be shorter), each made of verbatim,
aligned-offset or uncompressed blocks; every `reset_interval_frames` frames the Huffman
lengths, the repeated offsets R0-R2 and the E8 header are reset. Bits are read MSB-first from
16-bit little-endian words; a frame ends on a 16-bit boundary.

Rules (the checks lzxd.c makes, each a ValueError here)
    1. Window 2**15..2**21; block types 1-3 only; every Huffman code complete (the length
       tree may be empty, as many cabinets have it, but then no match may need it).
    2. A match must not reach before the start of the stream or further back than the
       window, nor run over the window's end or past its frame; a block must end inside
       the frame that the stream says it does.
    3. Input is consumed from `data` only: a reader that runs past its end (beyond the few
       zero octets libmspack also fakes there) raises instead of inventing data.
    4. Output stops at min(length, limit) octets (frames() may overshoot by the rest of the
       frame that crosses the limit: at most one frame). Every Huffman symbol consumes at least one
       bit and every uncompressed octet one input octet, so the work is bounded by the input
       as well as by `limit`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from core.scan.unpackers.huffman import decode_table

__all__ = ["FRAME_OCTETS", "decompress", "frames"]

FRAME_OCTETS = 32768
_NUM_CHARS = 256
_MIN_MATCH = 2
_NUM_PRIMARY_LENGTHS = 7
_NUM_SECONDARY_LENGTHS = 249
_LENGTHS_SAFETY = 64                       # lzxd.c LZX_LENTABLE_SAFETY: runs may overshoot
_PAD_OCTETS = 4
_POSITION_SLOTS = (30, 32, 34, 36, 38, 42, 50)      # window bits 15..21
_EXTRA_BITS = tuple(0 if slot < 4 else min(slot // 2 - 1, 17) for slot in range(50))
_POSITION_BASE = [0]
for _slot in range(1, 50):
    _POSITION_BASE.append(_POSITION_BASE[-1] + (1 << _EXTRA_BITS[_slot - 1]))
_VERBATIM, _ALIGNED, _UNCOMPRESSED = 1, 2, 3


def _refill(src: bytes, ip: int, bb: int, bl: int) -> tuple[int, int, int]:
    """Load 16-bit words until at least 17 bits are buffered (enough for any one read)."""
    while bl < 17:
        if ip + 2 > len(src):
            raise ValueError("LZX stream truncated")
        bb = ((bb & ((1 << bl) - 1)) << 16) | src[ip] | src[ip + 1] << 8
        ip += 2
        bl += 16
    return ip, bb, bl


class _Bits:
    """readbits.h with BITS_ORDER_MSB over lzxd.c's 16-bit little-endian words. `bl` bits
    of `bb` are loaded and not yet used; `ip` is the next octet to load."""

    __slots__ = ("src", "end", "ip", "bb", "bl")

    def __init__(self, data: bytes):
        self.src = bytes(data) + bytes(_PAD_OCTETS)
        self.end = len(data)
        self.ip = self.bb = self.bl = 0

    def read(self, n: int) -> int:
        if self.bl < n:
            self.ip, self.bb, self.bl = _refill(self.src, self.ip, self.bb, self.bl)
        self.bl -= n
        return (self.bb >> self.bl) & ((1 << n) - 1)

    def symbol(self, tree: tuple[list[int], int]) -> int:
        table, bits = tree
        if self.bl < bits:
            self.ip, self.bb, self.bl = _refill(self.src, self.ip, self.bb, self.bl)
        entry = table[(self.bb >> (self.bl - bits)) & ((1 << bits) - 1)]
        self.bl -= entry & 31
        return entry >> 5

    def align(self, *, skip_if_aligned: bool) -> None:
        """Drop the buffer and move to the next 16-bit boundary of the stream: the frame-end
        realignment, or (skip_if_aligned) the 1-16 padding bits before an uncompressed
        block's header."""
        used = self.ip * 8 - self.bl
        if used % 16:
            used += 16 - used % 16
        elif skip_if_aligned:
            used += 16
        self.ip, self.bb, self.bl = used // 8, 0, 0

    def raw(self, count: int) -> bytes:
        """`count` octets straight from the input (the buffer is empty: after align())."""
        if self.ip + count > self.end:
            raise ValueError("LZX uncompressed block truncated")
        self.ip += count
        return self.src[self.ip - count:self.ip]


def _read_lengths(bits: _Bits, lengths: list[int], first: int, last: int) -> None:
    """lzxd_read_lens: a 20-symbol pretree, then deltas and runs for lengths[first:last]."""
    pretree = decode_table([bits.read(4) for _ in range(20)])
    x = first
    while x < last:
        z = bits.symbol(pretree)
        if z == 17:
            run = bits.read(4) + 4
            lengths[x:x + run] = [0] * run
        elif z == 18:
            run = bits.read(5) + 20
            lengths[x:x + run] = [0] * run
        elif z == 19:
            run = bits.read(1) + 4
            value = (lengths[x] - bits.symbol(pretree)) % 17
            lengths[x:x + run] = [value] * run
        else:
            lengths[x] = (lengths[x] - z) % 17
            run = 1
        x += run


def _e8_translate(frame: bytearray, offset: int, filesize: int) -> bytearray:
    """Undo the encoder's x86 CALL translation on one frame (not its last 10 octets)."""
    end = len(frame) - 10
    at = frame.find(0xE8, 0, end)
    while at >= 0:
        current = offset + at
        absolute = int.from_bytes(frame[at + 1:at + 5], "little", signed=True)
        if -current <= absolute < filesize:
            relative = absolute - current if absolute >= 0 else absolute + filesize
            frame[at + 1:at + 5] = (relative & 0xFFFFFFFF).to_bytes(4, "little")
        at = frame.find(0xE8, at + 5, end)
    return frame


def decompress(data: bytes, window_bits: int, reset_interval_frames: int, length: int,
               limit: int) -> bytes:
    """The first min(length, limit) octets of the LZX stream `data` (`length` is the
    stream's decoded length, which sets the size of its last frame). Raises ValueError for a
    damaged or truncated stream."""
    return b"".join(frames(data, window_bits, reset_interval_frames, length,
                           limit))[:max(0, min(length, limit))]


def frames(data: bytes, window_bits: int, reset_interval_frames: int, length: int,
           limit: int) -> Iterator[bytes]:
    """The LZX stream `data` decoded one frame (at most FRAME_OCTETS) at a time, E8
    translation undone, until min(length, limit) octets came out (rule 4). Raises
    ValueError, from the frame that is damaged, for a damaged or truncated stream."""
    if not 15 <= window_bits <= 21:
        raise ValueError("LZX window size out of range")
    if length <= 0 or reset_interval_frames < 0:
        raise ValueError("LZX stream without length")
    window = 1 << window_bits
    window_mask = window - 1
    main_symbols = _NUM_CHARS + (_POSITION_SLOTS[window_bits - 15] << 3)
    wanted = min(length, limit)
    bits = _Bits(data)
    out = bytearray()                   # the decoded stream; LZX's window is its tail
    r0 = r1 = r2 = 1
    main_lengths = [0] * (main_symbols + _LENGTHS_SAFETY)
    length_lengths = [0] * (_NUM_SECONDARY_LENGTHS + _LENGTHS_SAFETY)
    main_tree = length_tree = aligned_tree = None
    header_read = False
    block_type, block_remaining, block_length = None, 0, 0
    intel_filesize, intel_started = 0, False
    frame = 0
    while len(out) < wanted:
        if reset_interval_frames and frame % reset_interval_frames == 0:
            r0 = r1 = r2 = 1
            header_read = False
            block_type, block_remaining = None, 0
            main_lengths = [0] * (main_symbols + _LENGTHS_SAFETY)
            length_lengths = [0] * (_NUM_SECONDARY_LENGTHS + _LENGTHS_SAFETY)
        if not header_read:
            intel_filesize = 0
            if bits.read(1):
                high = bits.read(16)
                intel_filesize = struct.unpack("<i", struct.pack("<I", high << 16
                                                                 | bits.read(16)))[0]
            header_read = True
        frame_start = len(out)
        frame_end = frame_start + min(FRAME_OCTETS, length - frame_start)
        while len(out) < frame_end:
            if block_remaining == 0:
                if block_type == _UNCOMPRESSED and block_length & 1:
                    bits.raw(1)                          # pad octet after an odd block
                block_type = bits.read(3)
                high = bits.read(16)
                block_remaining = block_length = high << 8 | bits.read(8)
                if block_type == _ALIGNED:
                    aligned_tree = decode_table([bits.read(3) for _ in range(8)])
                if block_type in (_VERBATIM, _ALIGNED):
                    _read_lengths(bits, main_lengths, 0, _NUM_CHARS)
                    _read_lengths(bits, main_lengths, _NUM_CHARS, main_symbols)
                    main_tree = decode_table(main_lengths[:main_symbols])
                    if main_lengths[0xE8]:
                        intel_started = True
                    _read_lengths(bits, length_lengths, 0, _NUM_SECONDARY_LENGTHS)
                    length_tree = decode_table(length_lengths[:_NUM_SECONDARY_LENGTHS],
                                               allow_empty=True)
                elif block_type == _UNCOMPRESSED:
                    intel_started = True
                    bits.align(skip_if_aligned=True)
                    r0, r1, r2 = struct.unpack("<3I", bits.raw(12))
                else:
                    raise ValueError("bad LZX block type")
            run = min(block_remaining, frame_end - len(out))
            block_remaining -= run
            if block_type == _UNCOMPRESSED:
                out += bits.raw(run)
                continue
            target = len(out) + run
            r0, r1, r2 = _decode_run(bits, out, target, main_tree, length_tree,
                                     aligned_tree if block_type == _ALIGNED else None,
                                     window, window_mask, (r0, r1, r2))
            if len(out) != target:      # lzxd.c: matches never cross a block or a frame
                raise ValueError("LZX match past the end of its block or frame")
        bits.align(skip_if_aligned=False)
        chunk = out[frame_start:frame_end]
        if intel_started and intel_filesize and frame < 32768 and len(chunk) > 10:
            chunk = _e8_translate(chunk, frame_start, intel_filesize)
        yield bytes(chunk)
        frame += 1


def _decode_run(bits: _Bits, out: bytearray, target: int, main_tree, length_tree,
                aligned_tree, window: int, window_mask: int,
                repeats: tuple[int, int, int]) -> tuple[int, int, int]:
    """Decode verbatim/aligned symbols into `out` until it reaches `target` octets (the last
    match may go beyond: the caller checks the frame). Returns R0-R2."""
    r0, r1, r2 = repeats
    src, ip, bb, bl = bits.src, bits.ip, bits.bb, bits.bl
    main_table, main_bits = main_tree
    main_mask = (1 << main_bits) - 1
    extra_bits, position_base = _EXTRA_BITS, _POSITION_BASE
    append = out.append
    while len(out) < target:
        if bl < 17:
            ip, bb, bl = _refill(src, ip, bb, bl)
        entry = main_table[(bb >> (bl - main_bits)) & main_mask]
        bl -= entry & 31
        symbol = entry >> 5
        if symbol < _NUM_CHARS:
            append(symbol)
            continue
        symbol -= _NUM_CHARS
        match_length = symbol & _NUM_PRIMARY_LENGTHS
        if match_length == _NUM_PRIMARY_LENGTHS:
            if length_tree is None:
                raise ValueError("LZX length symbol needed but the length tree is empty")
            table, tbits = length_tree
            if bl < 17:
                ip, bb, bl = _refill(src, ip, bb, bl)
            entry = table[(bb >> (bl - tbits)) & ((1 << tbits) - 1)]
            bl -= entry & 31
            match_length += entry >> 5
        match_length += _MIN_MATCH
        slot = symbol >> 3
        if slot == 0:
            offset = r0
        elif slot == 1:
            offset, r1 = r1, r0
            r0 = offset
        elif slot == 2:
            offset, r2 = r2, r0
            r0 = offset
        else:
            extra = extra_bits[slot]
            offset = position_base[slot] - 2
            if bl < 17:
                ip, bb, bl = _refill(src, ip, bb, bl)
            if extra >= 3 and aligned_tree is not None:
                if extra > 3:
                    bl -= extra - 3
                    offset += ((bb >> bl) & ((1 << (extra - 3)) - 1)) << 3
                    if bl < 17:
                        ip, bb, bl = _refill(src, ip, bb, bl)
                table, tbits = aligned_tree
                entry = table[(bb >> (bl - tbits)) & ((1 << tbits) - 1)]
                bl -= entry & 31
                offset += entry >> 5
            elif extra:
                bl -= extra
                offset += (bb >> bl) & ((1 << extra) - 1)
            r2, r1, r0 = r1, r0, offset
        position = len(out)
        if offset == 0 or offset > position or offset > window:
            raise ValueError("LZX match offset beyond the stream")
        if (position & window_mask) + match_length > window:
            raise ValueError("LZX match runs over the window's end")
        start = position - offset
        if offset >= match_length:
            out += out[start:start + match_length]
        else:
            out += (out[start:position] * (match_length // offset + 1))[:match_length]
    bits.ip, bits.bb, bits.bl = ip, bb, bl
    return r0, r1, r2
