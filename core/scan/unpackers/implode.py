"""PKWARE "implode" (zip method 6, PKZIP 1.x): the decompressor as ClamAV's explode.c writes
it from PKWARE's APPNOTE, and the zip members that use it, which Python's zipfile refuses.

    explode(data, size, flags, limit) -> bytes    one member's compressed data
    imploded_members(data, limit, total) -> list[bytes]   every imploded member of a zip

Format (APPNOTE 5.3)
    The member starts with two or three Shannon-Fano trees, each stored as <count - 1> and
    then octets of (bit length - 1) | (number of symbols - 1) << 4: the literal tree (256
    symbols, when general-purpose flag bit 2 is set), the length tree and the distance tree
    (64 symbols each). Codes are assigned from the longest length down (explode.c
    unpack_tree) and read from the stream first bit first, the stream itself LSB-first.
    Then: 1 + literal (8 bits, or a literal-tree code) | 0 + distance (6 low bits, 7 with
    flag bit 1's 8 KiB dictionary, then a distance code) + length code (63 = 8 more bits),
    plus 2 (3 with a literal tree). A distance before the start of the file reads zeros.

Rules
    1. A tree that does not describe exactly its number of symbols, a code that matches no
       symbol and input that ends before `size` octets came out raise ValueError (explode).
       imploded_members skips such a member and goes on with the next; it raises the
       ValueError only when no member came out. A member that decodes in full but whose
       CRC-32 (from the zip directory) does not match is returned as CrcMismatch
       (core/scan/unpackers/__init__.py): a flipped checksum must not hide content.
    2. Output stops at min(size, limit) octets; every step reads at least two bits, so the
       work is bounded by the input. All members stop at `total` octets (what the budget has
       left), charged with what each member produced — a damaged one too, up to its damage
       (every step produces at least one octet, so the charge bounds the work). At most
       MAX_ITEMS members are tried; encrypted ones are skipped.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from core.scan.unpackers import CrcMismatch

__all__ = ["IMPLODE_METHOD", "MAX_ITEMS", "explode", "imploded_members"]

IMPLODE_METHOD = 6
MAX_ITEMS = 200
MAX_TOTAL_OCTETS = 64 * 2**20           # core/scan/unpack.py's budget
_LARGE_WINDOW, _LITERAL_TREE, _ENCRYPTED = 0x02, 0x04, 0x01
_PAD_OCTETS = 4


def _tree(data: bytes, at: int, symbols: int) -> tuple[tuple[list[int], int], int]:
    """Read one stored tree at `at`: ((lookup table, bits), offset after it). The table is
    indexed by the next `bits` stream bits LSB-first; entries are symbol << 5 | length."""
    if at >= len(data):
        raise ValueError("implode tree truncated")
    count = data[at] + 1
    packed = data[at + 1:at + 1 + count]
    if len(packed) != count:
        raise ValueError("implode tree truncated")
    lengths: list[int] = []
    for octet in packed:
        lengths.extend([(octet & 15) + 1] * ((octet >> 4) + 1))
        if len(lengths) > symbols:
            raise ValueError("implode tree has too many symbols")
    if len(lengths) != symbols:
        raise ValueError("implode tree has too few symbols")
    order = sorted(range(symbols), key=lengths.__getitem__)      # stable, as explode.c bs()
    codes = [0] * symbols
    code = increment = last = 0
    for symbol in reversed(order):
        code = (code + increment) & 0xFFFF
        if lengths[symbol] != last:
            last = lengths[symbol]
            increment = 1 << (16 - last)
        codes[symbol] = code
    bits = max(lengths)
    table = [0] * (1 << bits)
    for symbol in reversed(order):      # later writes win: the shortest code, then the
        length = lengths[symbol]        # lowest symbol, as explode.c's bit-by-bit
        code = codes[symbol]            # lookup_tree finds it
        if code & ((1 << (16 - length)) - 1):
            continue                    # low bits set: lookup_tree can never match it
        reverse = int(format(code >> (16 - length), f"0{length}b")[::-1], 2)
        step = 1 << length
        table[reverse::step] = [symbol << 5 | length] * len(range(reverse, len(table), step))
    return (table, bits), at + 1 + count


def explode(data: bytes, size: int, flags: int, limit: int,
            out: bytearray | None = None) -> bytes:
    """The first min(size, limit) octets of one imploded member (`flags`: the zip general
    purpose flags), decoded into `out` when given (so a caller sees how far a damaged member
    got). Raises ValueError for damaged or truncated data."""
    at = 0
    literal_tree = None
    if flags & _LITERAL_TREE:
        literal_tree, at = _tree(data, at, 256)
    length_tree, at = _tree(data, at, 64)
    distance_tree, at = _tree(data, at, 64)
    minimum = 3 if literal_tree else 2
    low_bits = 7 if flags & _LARGE_WINDOW else 6
    src = bytes(data) + bytes(_PAD_OCTETS)
    end = len(data)
    wanted = min(size, limit)
    out = bytearray() if out is None else out
    bb = bl = 0                         # LSB-first bit buffer: `bl` bits of `bb` unread

    def fill(bb: int, bl: int, at: int) -> tuple[int, int, int]:
        while bl < 24:
            if at >= len(src):
                raise ValueError("implode data truncated")
            bb |= src[at] << bl
            at += 1
            bl += 8
        return bb, bl, at

    def decode(tree, bb: int, bl: int) -> tuple[int, int, int]:
        table, bits = tree
        entry = table[bb & ((1 << bits) - 1)]
        if not entry:
            raise ValueError("implode code matches no symbol")
        return entry >> 5, bb >> (entry & 31), bl - (entry & 31)

    while len(out) < wanted:
        if bl < 24:
            bb, bl, at = fill(bb, bl, at)
            if at - (bl >> 3) > end:
                raise ValueError("implode data truncated")
        flag = bb & 1
        bb >>= 1
        bl -= 1
        if flag:
            if literal_tree is not None:
                value, bb, bl = decode(literal_tree, bb, bl)
            else:
                value = bb & 0xFF
                bb >>= 8
                bl -= 8
            out.append(value)
            continue
        distance = bb & ((1 << low_bits) - 1)
        bb >>= low_bits
        bl -= low_bits
        if bl < 16:
            bb, bl, at = fill(bb, bl, at)
        high, bb, bl = decode(distance_tree, bb, bl)
        distance = (high << low_bits | distance) + 1
        if bl < 24:
            bb, bl, at = fill(bb, bl, at)
        length, bb, bl = decode(length_tree, bb, bl)
        if length == 63:
            length += bb & 0xFF
            bb >>= 8
            bl -= 8
        length += minimum
        start = len(out) - distance
        if start >= 0 and distance >= length:
            out += out[start:start + length]
        else:
            for index in range(start, start + length):
                out.append(out[index] if index >= 0 else 0)
    if at - (bl >> 3) > end:
        raise ValueError("implode data truncated")
    return bytes(out[:wanted])


def _entries(data: bytes):
    """(flags, method, crc, compressed size, size, local header offset) of each member:
    from the central directory when zipfile can read it, else from the local headers."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error, OSError,
            EOFError):                  # what zipfile raises on a damaged directory
        infos = None
    if infos is not None:
        for info in infos:
            yield (info.flag_bits, info.compress_type, info.CRC, info.compress_size,
                   info.file_size, info.header_offset)
        return
    at = 0
    while True:
        at = data.find(b"PK\x03\x04", at)
        if at < 0 or at + 30 > len(data):
            return
        flags, method = struct.unpack_from("<HH", data, at + 6)
        crc, compressed, size = struct.unpack_from("<III", data, at + 14)
        yield flags, method, crc, compressed, size, at
        at += 4


def _member(data: bytes, offset: int, compressed: int, size: int, flags: int,
            limit: int, out: bytearray) -> bytes:
    """One imploded member, exploded into `out`; ValueError when it is damaged."""
    if data[offset:offset + 4] != b"PK\x03\x04" or offset + 30 > len(data):
        raise ValueError("zip local header expected")
    name_length, extra_length = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_length + extra_length
    body = data[start:start + compressed]
    if len(body) != compressed:
        raise ValueError("imploded member truncated")
    return explode(body, size, flags, limit, out)


def imploded_members(data: bytes, limit: int,
                     total: int = MAX_TOTAL_OCTETS) -> list[bytes]:
    """The imploded members of the zip file `data` (rules 1-2), one whose CRC-32 does not
    match as CrcMismatch. Raises ValueError when members were damaged and none came out."""
    out: list[bytes] = []
    damage: ValueError | None = None
    tries = 0
    for flags, method, crc, compressed, size, offset in _entries(data):
        if method != IMPLODE_METHOD or flags & _ENCRYPTED or size == 0:
            continue
        wanted = min(size, limit, total)
        if wanted <= 0 or tries >= MAX_ITEMS:
            break
        tries += 1
        decoded = bytearray()
        try:
            item = _member(data, offset, compressed, size, flags, wanted, decoded)
        except ValueError as error:
            item, damage = None, damage or error
        total -= len(decoded)
        if item is None:
            continue
        if len(item) == size and zlib.crc32(item) != crc:
            item = CrcMismatch(item)
        out.append(item)
    if damage is not None and not out:
        raise damage
    return out
