"""ARJ archives (Robert Jung): headers as ClamAV's unarj.c reads them, decompression ported
from ARJ's decode.c (the open-source ARJ / unarj sources).

    arj_members(data, limit, total) -> list[bytes]   the contents of the archive's files
    arj_files(data) -> Iterator[ArjFile]             its file headers: names, sizes, data
    arj_read(file, limit) -> bytes                   one file's content

The builtin engine reads archives with arj_members (core/scan/unpack.py), the decomposer
(core/pipeline/decompose/engine_archives.py) lists them with arj_files and reads each file
with arj_read under its container budget: the same walk and decoders for both.

Layout
    Every header: 0x60 0xEA, u16 basic header size (0 = end of archive), the basic header
    (first_hdr_size octets of fixed fields, then the name and comment, NUL-terminated), its
    CRC-32, then extended headers (u16 size, data, CRC-32) up to a size of 0. The first
    header is the archive's main header; each file header is followed by its compressed data.
    Methods: 0 stored; 1-3 LZH with static Huffman blocks over a 26,624-octet dictionary
    (decode.c decode); 4 "fastest", unary-coded lengths and positions (decode_f).

Rules
    1. Checksums never hide content: a member that decodes in full but whose CRC-32, or its
       header's, does not match is returned as CrcMismatch (core/scan/unpackers/__init__.py);
       ClamAV's unarj.c checks neither. A member whose data is damaged — a bad Huffman
       table, a match reaching before the start of the file, data that runs out — is
       skipped (its header says where the next one starts); a header that cannot be read,
       or a member cut short by the end of the file, ends the archive. The members read
       before are returned; ValueError is raised only when there are none. Garbled
       (password) members, continued-volume members and unknown methods are skipped.
    2. Output per member stops at min(original size, limit) octets, and all members stop
       at `total` octets (what the budget has left), charged with what each member produced
       — a damaged one too, up to its damage. At most MAX_ITEMS members. The LZH decoder
       reads zero bits past the end of the compressed data, as ARJ does, but never more
       than a few octets' worth before raising ValueError; a block whose only symbol is a
       literal is written in one step, so hostile input cannot make it spin one octet at a
       time (nor one that repeats a single zero-bit match): every other step reads at least
       one bit.
    3. An archive is found at offset 0 or, in a self-extracting .exe, at the first of at
       most MAX_SFX_TRIES "60 EA" marks in the first MAX_SFX_SCAN_OCTETS whose main header's
       CRC-32 checks — failing that, at the first main header (type 2) that is followed by
       another header mark, so a flipped main-header CRC does not hide the archive either.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from core.scan.unpackers import CrcMismatch
from core.scan.unpackers.huffman import decode_table

__all__ = ["ARJ_MAGIC", "MAX_ITEMS", "ArjFile", "arj_files", "arj_members", "arj_read",
           "find_archive"]

ARJ_MAGIC = b"\x60\xea"
MAX_ITEMS = 200
MAX_TOTAL_OCTETS = 64 * 2**20           # core/scan/unpack.py's budget
MAX_SFX_SCAN_OCTETS = 1 << 20
MAX_SFX_TRIES = 32
MAX_BASIC_HEADER_OCTETS = 2600          # unarj.c HEADERSIZE_MAX: 30 + 10 + 512 + 2048
DICTIONARY_OCTETS = 26624               # DDICSIZ
_GARBLED, _EXTFILE = 0x01, 0x08
_MAIN_HEADER_TYPE = 2
_THRESHOLD = 3
_NC = 255 + 256 + 2 - _THRESHOLD        # literal/length symbols
_NP = 17                                # position symbols (MAXDICBIT + 1)
_NT = 19                                # code-length symbols (CODE_BIT + 3)
_CBIT, _PBIT, _TBIT = 9, 5, 5
_SLACK_OCTETS = 8


def _fill(src: bytes, ip: int, bb: int, bl: int) -> tuple[int, int, int]:
    """Load octets until at least 24 bits are buffered (enough for any one read)."""
    while bl < 24:
        if ip >= len(src):
            raise ValueError("ARJ data truncated")
        bb = ((bb & ((1 << bl) - 1)) << 8) | src[ip]
        ip += 1
        bl += 8
    return ip, bb, bl


class _Bits:
    """decode.c fillbuf/getbits, MSB first: `bl` bits of `bb` are loaded and unread, `ip`
    is the next octet to load. Past the compressed data the stream reads as zeros, for at
    most _SLACK_OCTETS (the decoders peek up to 16 bits ahead of what they use)."""

    __slots__ = ("src", "ip", "bb", "bl")

    def __init__(self, data: bytes):
        self.src = bytes(data) + bytes(_SLACK_OCTETS)
        self.ip = self.bb = self.bl = 0

    def peek(self) -> int:
        """The next 16 bits (decode.c's bitbuf)."""
        if self.bl < 16:
            self.ip, self.bb, self.bl = _fill(self.src, self.ip, self.bb, self.bl)
        return (self.bb >> (self.bl - 16)) & 0xFFFF

    def skip(self, n: int) -> None:
        if self.bl < n:
            self.ip, self.bb, self.bl = _fill(self.src, self.ip, self.bb, self.bl)
        self.bl -= n

    def get(self, n: int) -> int:
        value = self.peek() >> (16 - n)
        self.bl -= n
        return value

    def symbol(self, tree: tuple[list[int], int]) -> int:
        table, bits = tree
        entry = table[self.peek() >> (16 - bits)]
        self.bl -= entry & 31
        return entry >> 5


def _constant(symbol: int) -> tuple[list[int], int]:
    """A table that yields `symbol` and consumes no bits (the n == 0 case of decode.c)."""
    return [symbol << 5], 0


def _read_pt_len(bits: _Bits, nn: int, nbit: int, special: int) -> tuple[list[int], int]:
    n = bits.get(nbit)
    if n == 0:
        symbol = bits.get(nbit)
        if symbol >= nn:
            raise ValueError("ARJ table symbol out of range")
        return _constant(symbol)
    lengths: list[int] = []
    n = min(n, _NT)                             # decode.c: "fix to prevent overrun"
    while len(lengths) < n:
        buf = bits.peek()
        c = buf >> 13
        if c == 7:
            mask = 1 << 12
            while mask & buf:
                mask >>= 1
                c += 1
        bits.skip(3 if c < 7 else c - 3)
        lengths.append(c)
        if len(lengths) == special:
            lengths.extend([0] * bits.get(2))
    return decode_table((lengths + [0] * nn)[:nn])


def _read_c_len(bits: _Bits, pt: tuple[list[int], int]) -> tuple[list[int], int]:
    n = bits.get(_CBIT)
    if n == 0:
        symbol = bits.get(_CBIT)
        if symbol >= _NC:
            raise ValueError("ARJ table symbol out of range")
        return _constant(symbol)
    lengths: list[int] = []
    while len(lengths) < n:
        c = bits.symbol(pt)
        if c == 0:
            lengths.append(0)
        elif c == 1:
            lengths.extend([0] * (bits.get(4) + 3))
        elif c == 2:
            lengths.extend([0] * (bits.get(_CBIT) + 20))
        else:
            lengths.append(c - 2)
    if len(lengths) > _NC:
        raise ValueError("ARJ table overrun")
    return decode_table(lengths + [0] * (_NC - len(lengths)))


def _copy(out: bytearray, distance: int, length: int) -> None:
    position = len(out)
    if distance > position or distance > DICTIONARY_OCTETS:
        raise ValueError("ARJ match before the start of the file")
    start = position - distance
    if distance >= length:
        out += out[start:start + length]
    else:
        out += (out[start:position] * (length // distance + 1))[:length]


def _decode_lzh(data: bytes, wanted: int, out: bytearray) -> bytearray:
    """Methods 1-3 (decode.c decode) into `out`. The per-symbol work is inlined: bits.* on
    the block headers only."""
    bits = _Bits(data)
    src, ip, bb, bl = bits.src, 0, 0, 0
    append = out.append
    remaining = 0                               # symbols left in the current block
    c_table, c_bits, p_table, p_bits = [0], 0, [0], 0
    while len(out) < wanted:
        if remaining == 0:
            bits.ip, bits.bb, bits.bl = ip, bb, bl
            remaining = bits.get(16) or 65536   # a short counter: 0 means 65,536
            pt = _read_pt_len(bits, _NT, _TBIT, 3)
            c_table, c_bits = _read_c_len(bits, pt)
            p_table, p_bits = _read_pt_len(bits, _NP, _PBIT, -1)
            ip, bb, bl = bits.ip, bits.bb, bits.bl
            if c_bits == 0:                     # one symbol, zero bits each (rule 2)
                symbol = c_table[0] >> 5
                if symbol < 256:
                    run = min(remaining, wanted - len(out))
                    out += bytes((symbol,)) * run
                    remaining -= run
                    continue
                if p_bits == 0 and p_table[0] >> 5 <= 1:   # and one 0-bit distance
                    run = min(remaining * (symbol - (256 - _THRESHOLD)), wanted - len(out))
                    _copy(out, (p_table[0] >> 5) + 1, run)
                    remaining = 0
                    continue
        remaining -= 1
        if bl < 16:
            ip, bb, bl = _fill(src, ip, bb, bl)
        entry = c_table[(bb >> (bl - c_bits)) & ((1 << c_bits) - 1)]
        bl -= entry & 31
        symbol = entry >> 5
        if symbol < 256:
            append(symbol)
            continue
        if bl < 16:
            ip, bb, bl = _fill(src, ip, bb, bl)
        entry = p_table[(bb >> (bl - p_bits)) & ((1 << p_bits) - 1)]
        bl -= entry & 31
        position = entry >> 5
        if position:                            # (1 << (j - 1)) + getbits(j - 1)
            extra = position - 1
            if bl < extra:
                ip, bb, bl = _fill(src, ip, bb, bl)
            bl -= extra
            position = (1 << extra) + ((bb >> bl) & ((1 << extra) - 1))
        _copy(out, position + 1, symbol - (256 - _THRESHOLD))
    return out


def _decode_fastest(data: bytes, wanted: int, out: bytearray) -> bytearray:
    """Method 4 (decode.c decode_f) into `out`: lengths and positions as a unary prefix
    (decode_len, decode_ptr) plus that many bits; every step reads at least one bit."""
    src, ip, bb, bl = bytes(data) + bytes(_SLACK_OCTETS), 0, 0, 0
    while len(out) < wanted:
        if bl < 24:
            ip, bb, bl = _fill(src, ip, bb, bl)
        width = 0                               # decode_len: up to 7 one-bits, then a 0
        while width < 7 and (bb >> (bl - 1)) & 1:
            bl -= 1
            width += 1
        if width < 7:
            bl -= 1
        bl -= width
        length = (1 << width) - 1 + ((bb >> bl) & ((1 << width) - 1))
        if length == 0:
            bl -= 8
            out.append((bb >> bl) & 0xFF)
            continue
        if bl < 24:
            ip, bb, bl = _fill(src, ip, bb, bl)
        width = 9                               # decode_ptr: widths 9..13
        while width < 13 and (bb >> (bl - 1)) & 1:
            bl -= 1
            width += 1
        if width < 13:
            bl -= 1
        bl -= width
        position = (1 << width) - 512 + ((bb >> bl) & ((1 << width) - 1))
        _copy(out, position + 1, length - 1 + _THRESHOLD)
    return out


def _header(data: bytes, at: int) -> tuple[bytes | None, int, bool]:
    """(basic header or None at the end marker, offset after the header, whether the basic
    header's CRC-32 matches). Raises ValueError for a header that cannot be read."""
    if data[at:at + 2] != ARJ_MAGIC or at + 4 > len(data):
        raise ValueError("ARJ header expected")
    size, = struct.unpack_from("<H", data, at + 2)
    if size == 0:
        return None, at + 4, True
    if size > MAX_BASIC_HEADER_OCTETS:
        raise ValueError("ARJ header too large")
    basic = data[at + 4:at + 4 + size]
    at += 4 + size
    if len(basic) != size or at + 4 > len(data):
        raise ValueError("ARJ header truncated")
    crc_ok = zlib.crc32(basic) == struct.unpack_from("<I", data, at)[0]
    if size < 30 or basic[0] < 30:
        raise ValueError("ARJ header too short")
    at += 4
    while True:                                  # extended headers
        if at + 2 > len(data):
            raise ValueError("ARJ header truncated")
        extended, = struct.unpack_from("<H", data, at)
        at += 2
        if extended == 0:
            return basic, at, crc_ok
        at += extended + 4


def find_archive(data: bytes) -> int:
    """Offset of the main header (rule 3); raises ValueError when there is none."""
    if data.startswith(ARJ_MAGIC):
        return 0
    at, tries, unchecked = 0, 0, None
    while tries < MAX_SFX_TRIES:
        at = data.find(ARJ_MAGIC, at + 1, MAX_SFX_SCAN_OCTETS)
        if at < 0:
            break
        tries += 1
        try:
            basic, after, crc_ok = _header(data, at)
        except (ValueError, struct.error):
            continue
        if basic is None or basic[6] != _MAIN_HEADER_TYPE:
            continue
        if crc_ok:
            return at
        if unchecked is None and data[after:after + 2] == ARJ_MAGIC:
            unchecked = at
    if unchecked is not None:
        return unchecked
    raise ValueError("no ARJ archive")


class ArjFile(NamedTuple):
    """One file header of an archive and its compressed data."""
    name: str
    flags: int
    method: int
    size: int               # original
    packed: int             # compressed
    crc: int
    header_ok: bool         # the basic header's CRC-32 matched
    body: bytes

    @property
    def is_encrypted(self) -> bool:
        return bool(self.flags & _GARBLED)

    @property
    def problem(self) -> str:
        """Why its content cannot be read here ("" when it can)."""
        if self.flags & _EXTFILE:
            return "continued from another volume"
        if self.method > 4:
            return f"unsupported compression method ({self.method})"
        return ""


def _name(basic: bytes) -> str:
    """The file name after the fixed fields, NUL-terminated, in the DOS code page ARJ
    writes (cp437), with "/" for the path separator."""
    name = basic[basic[0]:].split(b"\0", 1)[0]
    return name.decode("cp437").replace("\\", "/")


def arj_files(data: bytes) -> Iterator[ArjFile]:
    """The file headers of the archive in `data`, in order, each with its compressed data
    (read by `arj_read`). A header that cannot be read, or data cut short by the end of the
    file, ends the walk with ValueError after the files before it (rule 1)."""
    main, at, _ = _header(data, find_archive(data))
    if main is None:
        return
    while True:
        basic, at, header_ok = _header(data, at)
        if basic is None:
            return
        flags, method = basic[4], basic[5]
        compressed, original, crc = struct.unpack_from("<III", basic, 12)
        body = data[at:at + compressed]
        at += compressed
        if len(body) != compressed:
            raise ValueError("ARJ member truncated")
        yield ArjFile(_name(basic), flags, method, original, compressed, crc, header_ok, body)


def arj_read(item: ArjFile, limit: int, out: bytearray | None = None) -> bytes:
    """The first min(original size, limit) octets of a file, as CrcMismatch when the whole
    file was decoded and its CRC-32 (or its header's) does not match. Raises ValueError for
    damaged data (what decoded before the damage is in `out`, when given)."""
    wanted = min(item.size, limit)
    decoded = bytearray() if out is None else out
    if item.method == 0:
        data = item.body[:wanted]
    elif item.method == 4:
        data = bytes(_decode_fastest(item.body, wanted, decoded)[:wanted])
    elif item.method <= 3:
        data = bytes(_decode_lzh(item.body, wanted, decoded)[:wanted])
    else:
        raise ValueError(item.problem)
    if not item.header_ok or (wanted == item.size and zlib.crc32(data) != item.crc):
        return CrcMismatch(data)
    return data


def arj_members(data: bytes, limit: int, total: int = MAX_TOTAL_OCTETS) -> list[bytes]:
    """The files of the archive in `data` (rules 1-2), a member whose CRC-32 does not match
    as CrcMismatch. Raises ValueError for damage that leaves no member at all."""
    out: list[bytes] = []
    damage: ValueError | None = None
    files = arj_files(data)
    while len(out) < MAX_ITEMS:
        try:
            item = next(files, None)
        except ValueError as error:             # the walk cannot go on
            damage = error
            break
        if item is None:
            break
        if item.is_encrypted or item.problem or item.size == 0:
            continue
        wanted = min(item.size, limit, total)
        if wanted <= 0:
            break
        decoded = bytearray()
        try:
            member = arj_read(item, wanted, decoded)
        except ValueError as error:             # this member only: the next header is known
            member, damage = None, damage or error
        total -= max(len(decoded), len(member or b""))
        if member is None:
            continue
        out.append(member)
    if damage is not None and not out:
        raise damage
    return out
