"""InstallShield installers and the Microsoft cabinets inside them, as libclamav reads them
(ishield.c, cab.c; docs/antivirus.md "What it unpacks").

    installshield_msi(data)  the payload of MSI-based setups (ClamAV's ISHIELD-MSI: setup.exe
                             with files appended after an "InstallShield\\0" header): each file
                             nibble-swapped, XOR-ed with its own name and zlib-compressed —
                             ishield.c cli_scanishield_msi
    installshield(data)      the PE overlay of older setups: <name\\0path\\0version\\0size\\0>
                             records; data1.hdr + dataN.cab ("ISc(") are opened and their
                             internal files inflated chunk by chunk — cli_scanishield,
                             is_parse_hdr, is_extract_cab
    cabinet(data, total)     Microsoft cabinet (MSCF) files: stored, MSZIP and LZX folders
                             (lzx.py, as libmspack's cabd.c drives lzxd.c); Quantum folders
                             are skipped
    cabinet_layout(data), folder_chunks(...)
                             a cabinet's folders and named files, and one folder's bytes a
                             piece at a time: the decomposer opens cabinets with these
                             (core/pipeline/decompose/engine_archives.py)

Rules
    1. Each function returns the files it could extract, in the order found; damaged input
       raises ValueError or yields fewer files — never more than MAX_ITEMS files, each at most
       MAX_ITEM_OCTETS, MAX_TOTAL_OCTETS in all.
    2. Work is bounded by the input: every length read from the data is checked against the
       bytes that are there before anything is allocated or inflated. A cabinet decompresses
       at most `total` octets (what the budget has left), and all its folders together walk
       at most as many octets of CFDATA blocks (headers and data) as the cabinet has: enough
       for folders that do not overlap, as in any real cabinet, however many hostile folders
       point at the same blocks.
    3. Checksums never hide content: CFDATA checksums are not checked (nor does cab.c), and
       a damaged MSZIP or LZX folder keeps what decoded before the damage.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from core.scan.filetypes import pe_layout
from core.scan.unpackers import lzx

__all__ = ["ISHIELD_MSI_PATTERN", "installshield_msi", "installshield", "cabinet",
           "cabinet_layout", "folder_chunks", "CabFile", "CabLayout", "pe_overlay"]

MAX_ITEMS = 200                                   # the same budget as core/scan/unpack.py
MAX_ITEM_OCTETS = 32 * 2**20
MAX_TOTAL_OCTETS = 64 * 2**20

# ClamAV's filetype magic "ISHIELD-MSI" (daily.ftm):
#   496e7374616c6c536869656c6400 {292} 0600000000000000 ???????????????? 0000000001
# — the header is followed by a file block whose unk1 is 6 and unk4 is 1.
ISHIELD_MSI_PATTERN = re.compile(
    rb"InstallShield\x00.{292}\x06\x00\x00\x00\x00\x00\x00\x00.{8}\x00\x00\x00\x00\x01",
    re.DOTALL)
_MSI_KEY = bytes([0xEC, 0xCA, 0x79, 0xF8])      # ~0x13, ~0x35, ~0x86, ~0x07
_MSI_HEADER_OCTETS = 0x20
_FILE_BLOCK_OCTETS = 0x104 + 4 + 4 + 8 + 9 * 4   # struct IS_FB (packed): 312
_NIBBLE_SWAP = bytes(((c >> 4) | (c << 4)) & 0xFF for c in range(256))

_HDR_MAGIC = 0x28635349                          # "ISc(" — data1.hdr and dataN.cab
_OBJECTS_OCTETS = 0x4A                           # struct IS_OBJECTS (packed)
_FILE_ITEM_OCTETS = 87                           # struct IS_FILEITEM (packed)
_FILE_INTERNAL = 4


def _damaged_is_value_error(function):
    """Rule 1: whatever a damaged structure makes the parsing trip over is a ValueError."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (struct.error, zlib.error, IndexError) as error:
            raise ValueError(f"damaged {function.__name__} data: {error}") from None
    return wrapper


class _Collector:
    """Extracted files under rule 1's limits."""

    def __init__(self):
        self.files: list[bytes] = []
        self.octets = MAX_TOTAL_OCTETS

    @property
    def full(self) -> bool:
        return len(self.files) >= MAX_ITEMS or self.octets <= 0

    def add(self, data: bytes) -> None:
        if data and not self.full:
            data = data[:min(MAX_ITEM_OCTETS, self.octets)]
            self.files.append(data)
            self.octets -= len(data)


# --- MSI-based setups (cli_scanishield_msi) ----------------------------------------------

@_damaged_is_value_error
def installshield_msi(data: bytes) -> list[bytes]:
    """The files of the first ISHIELD-MSI stream in `data` (ValueError when there is none)."""
    match = ISHIELD_MSI_PATTERN.search(data)
    if match is None:
        raise ValueError("no InstallShield MSI header")
    view = memoryview(data)
    at = match.start() + 14                      # past "InstallShield\0"
    if at + _MSI_HEADER_OCTETS > len(data):
        raise ValueError("short InstallShield MSI header")
    count, = struct.unpack_from("<I", data, at)
    if any(struct.unpack_from("<6I", data, at + 8)) or count == 0:
        raise ValueError("not an InstallShield MSI header")
    at += _MSI_HEADER_OCTETS
    out = _Collector()
    for _ in range(count):
        if out.full or at + _FILE_BLOCK_OCTETS > len(data):
            break
        name = bytes(view[at:at + 0x103]).split(b"\0", 1)[0]
        csize, = struct.unpack_from("<Q", data, at + 0x104 + 8)
        at += _FILE_BLOCK_OCTETS
        if csize > len(data) - at:
            break                                # "next stream is out of file"
        if not name:
            break
        body = view[at:at + csize]
        at += csize
        if csize > 2 * MAX_ITEM_OCTETS:          # ClamAV skips streams over maxfilesize
            continue
        out.add(_inflate_prefix(_msi_decode(body, name), out.octets))
    return out.files


def _msi_decode(body, name: bytes) -> bytes:
    """Swap the nibbles of each byte, then XOR with key[(i & 0x3ff) % len(key)], the key
    being the file name XOR-ed with _MSI_KEY."""
    key = bytes(c ^ _MSI_KEY[i & 3] for i, c in enumerate(name))
    period = bytes(key[i % len(key)] for i in range(1024))
    swapped = bytes(body).translate(_NIBBLE_SWAP)
    stream = (period * (len(swapped) // 1024 + 1))[:len(swapped)]
    return (int.from_bytes(swapped, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        len(swapped), "little")


def _inflate_prefix(stream: bytes, room: int, wbits: int = 15) -> bytes:
    """What zlib can inflate from the start of `stream` (ClamAV keeps the output of a
    stream that goes bad midway), at most MAX_ITEM_OCTETS and `room`."""
    inflater = zlib.decompressobj(wbits)
    limit = max(0, min(MAX_ITEM_OCTETS, room))
    if limit == 0:
        return b""
    try:
        return inflater.decompress(stream, limit)
    except zlib.error:
        pass
    # the stream is damaged somewhere: keep what inflates before the damage
    inflater, out, step = zlib.decompressobj(wbits), bytearray(), 4096
    for start in range(0, len(stream), step):
        try:
            out += inflater.decompress(stream[start:start + step], limit - len(out))
        except zlib.error:
            break
        if len(out) >= limit or inflater.eof or inflater.unconsumed_tail:
            break
    return bytes(out)


# --- older setups: files appended to the PE (cli_scanishield) ----------------------------

def pe_overlay(data: bytes) -> int | None:
    """Where the data appended to a PE file starts (after its last section), or None."""
    layout = pe_layout(data)
    if layout is None or not layout.sections:
        return None
    end = max(raw + size for raw, size in layout.sections)
    return end if 0 < end < len(data) else None


_RECORD = re.compile(rb"([^\0]{1,2047})\0([^\0]{0,2047})\0([^\0]{0,2047})\0([0-9]{1,12})\0")


@_damaged_is_value_error
def installshield(data: bytes, start: int | None = None) -> list[bytes]:
    """The files appended to an InstallShield setup.exe, starting at its PE overlay (or at
    `start`): plain files as they are, the internal files of data1.hdr + dataN.cab inflated."""
    at = pe_overlay(data) if start is None else start
    if at is None:
        raise ValueError("no PE overlay")
    out = _Collector()
    header: tuple[int, int] | None = None
    cabs: dict[int, tuple[int, int]] = {}
    while not out.full:
        record = _RECORD.match(data, at)
        if record is None:
            break
        name, size = record.group(1), int(record.group(4))
        at = record.end()
        if size > len(data) - at:
            break
        lower = name.lower()
        cab = re.fullmatch(rb"data([0-9]{1,5})\.cab", lower)
        if lower == b"data1.hdr" and header is None:
            header = (at, size)
        elif cab and 0 < int(cab.group(1)) < 65536 and int(cab.group(1)) not in cabs:
            cabs[int(cab.group(1))] = (at, size)
        else:
            out.add(data[at:at + size])
        at += size
    if header is not None and cabs:
        for item in _cab_files(data, header, cabs):
            out.add(item)
            if out.full:
                break
    if header is not None:
        out.add(data[header[0]:header[0] + header[1]])
    for where, size in cabs.values():
        out.add(data[where:where + size])
    if not out.files:
        raise ValueError("no InstallShield files")
    return out.files


def _cab_files(data: bytes, header: tuple[int, int], cabs: dict[int, tuple[int, int]]):
    """The internal files data1.hdr lists (is_parse_hdr), inflated from their dataN.cab."""
    hdr = memoryview(data)[header[0]:header[0] + header[1]]
    if len(hdr) < 20:
        return
    magic, _unk1, _unk2, data_off = struct.unpack_from("<4I", hdr, 0)
    if magic != _HDR_MAGIC or data_off + _OBJECTS_OCTETS > len(hdr):
        return
    dirs_off, = struct.unpack_from("<I", hdr, data_off + 0x0C)
    files_count, dir_size = struct.unpack_from("<II", hdr, data_off + 0x28)
    at = data_off + dirs_off + dir_size
    for _ in range(min(files_count, (len(hdr) - at) // _FILE_ITEM_OCTETS if at < len(hdr)
                       else 0)):
        flags, size, csize, stream_off = struct.unpack_from("<HQQQ", hdr, at)
        has_dup, cab_number = struct.unpack_from("<BH", hdr, at + 84)
        at += _FILE_ITEM_OCTETS
        if flags != _FILE_INTERNAL or has_dup & 1 or size == 0 or cab_number not in cabs:
            continue                             # external, duplicate, empty or elsewhere
        cab_at, cab_size = cabs[cab_number]
        if stream_off + csize > cab_size:
            continue                             # "stream out of file"
        yield _is_cab_file(memoryview(data)[cab_at + stream_off:cab_at + stream_off + csize],
                           min(size, MAX_ITEM_OCTETS))


def _is_cab_file(stream, size: int) -> bytes:
    """One file of an InstallShield cab: chunks of <u16 length><raw deflate> (is_extract_cab)."""
    out, at = bytearray(), 0
    while at + 2 <= len(stream) and len(out) < size:
        length, = struct.unpack_from("<H", stream, at)
        at += 2
        if length == 0:
            continue
        if length > len(stream) - at:
            break
        chunk = _inflate_prefix(bytes(stream[at:at + length]), size - len(out), -15)
        at += length
        if not chunk:
            break
        out += chunk
    return bytes(out)


# --- Microsoft cabinet (libclamav cab.c; [MS-CAB]) ---------------------------------------

_CAB_STORED, _CAB_MSZIP, _CAB_QUANTUM, _CAB_LZX = 0, 1, 2, 3


_CAB_METHODS = {_CAB_STORED: "stored", _CAB_MSZIP: "MSZIP", _CAB_QUANTUM: "Quantum",
                _CAB_LZX: "LZX"}
_NAME_IS_UTF8 = 0x80                             # CFFILE attribs: _A_NAME_IS_UTF


class CabFile(NamedTuple):
    name: str
    size: int
    offset: int             # in its folder's uncompressed bytes
    folder: int             # an index into CabLayout.folders; past it: in another cabinet


class CabLayout(NamedTuple):
    folders: list[tuple[int, int, int]]     # (first CFDATA block, blocks, compression type)
    files: list[CabFile]
    data_reserve: int


@_damaged_is_value_error
def cabinet_layout(data: bytes) -> CabLayout:
    """The folders and files a cabinet's header lists ([MS-CAB] 2.1-2.4), read by
    `cabinet` here and by the decomposer (core/pipeline/decompose/engine_archives.py)."""
    if data[:4] != b"MSCF" or len(data) < 36:
        raise ValueError("not a cabinet")
    files_off, = struct.unpack_from("<I", data, 16)
    folders_count, files_count, flags = struct.unpack_from("<HHH", data, 26)
    at = 36
    header_reserve = folder_reserve = data_reserve = 0
    if flags & 0x0004:                           # cfhdrRESERVE_PRESENT
        header_reserve, folder_reserve, data_reserve = struct.unpack_from("<HBB", data, at)
        at += 4 + header_reserve
    for flag in (0x0001, 0x0002):                # previous / next cabinet: two strings each
        if flags & flag:
            for _ in range(2):
                end = data.index(b"\0", at, at + 256)
                at = end + 1
    folders = []
    for _ in range(min(folders_count, MAX_ITEMS)):
        first, blocks, comp_type = struct.unpack_from("<IHH", data, at)
        at += 8 + folder_reserve
        folders.append((first, blocks, comp_type))
    files, at = [], files_off
    for _ in range(files_count):
        size, offset, folder, _date, _time, attribs = struct.unpack_from("<IIHHHH", data, at)
        end = data.index(b"\0", at + 16, at + 16 + 1024)
        name = data[at + 16:end]
        at = end + 1
        text = name.decode("utf-8", "replace") if attribs & _NAME_IS_UTF8 else \
            name.decode("cp437")
        files.append(CabFile(text.replace("\\", "/"), size, offset, folder))
    return CabLayout(folders, files, data_reserve)


def cabinet(data: bytes, total: int = MAX_TOTAL_OCTETS) -> list[bytes]:
    """The files of a Microsoft cabinet whose folders are stored, MSZIP- or LZX-compressed
    ([MS-CAB] 2.1; a Quantum folder is skipped), at most `total` octets decompressed."""
    layout = cabinet_layout(data)
    out, opened = _Collector(), {}
    room = min(total, MAX_TOTAL_OCTETS)
    walk = [len(data)]                           # CFDATA octets left to walk (rule 2)
    for size, offset, folder in ((f.size, f.offset, f.folder) for f in layout.files):
        if out.full:
            break
        if folder >= len(layout.folders):
            continue
        if folder not in opened:                 # decompressed once, when a file needs it
            if room <= 0:
                break
            opened[folder] = _cab_folder(data, *layout.folders[folder], layout.data_reserve,
                                         min(room, MAX_ITEM_OCTETS), walk)
            room -= len(opened[folder] or b"")
        if opened[folder] is not None:
            out.add(opened[folder][offset:offset + min(size, MAX_ITEM_OCTETS)])
    return out.files


def folder_chunks(data: bytes, layout: CabLayout, index: int,
                  walk: list[int]) -> Iterator[bytes]:
    """A folder's uncompressed bytes a piece at a time (a CFDATA block, an LZX frame), for
    a reader that counts them as they come (the decomposer's budget). Raises ValueError, after
    the pieces before it, for damage, and at once for a method not read here ("unsupported
    compression method (Quantum)"). `walk` is the octets of CFDATA blocks the cabinet's
    folders may still walk (rule 2)."""
    first, blocks, comp_type = layout.folders[index]
    method = comp_type & 0x000F
    reserve = layout.data_reserve
    if method == _CAB_LZX:
        window_bits = comp_type >> 8 & 0x1F
        if not 15 <= window_bits <= 21:
            raise ValueError(f"LZX window of 2^{window_bits} octets")
        chunks, length = [], 0
        for block, uncompressed in _cab_blocks(data, first, blocks, reserve, walk):
            chunks.append(block)
            length += uncompressed
        if length:
            yield from lzx.frames(b"".join(chunks), window_bits, 0, length, length)
        return
    if method not in (_CAB_STORED, _CAB_MSZIP):
        raise ValueError(f"unsupported compression method "
                         f"({_CAB_METHODS.get(method, method)})")
    window = b""
    for block, _uncompressed in _cab_blocks(data, first, blocks, reserve, walk):
        if method == _CAB_STORED:
            yield bytes(block)
            continue
        if block[:2] != b"CK":
            raise ValueError("MSZIP block without its CK signature")
        inflater = zlib.decompressobj(-15, zdict=window) if window else \
            zlib.decompressobj(-15)
        try:
            chunk = inflater.decompress(block[2:], 32768)  # a block is at most 32 KiB
        except zlib.error as error:
            raise ValueError(f"damaged MSZIP block: {error}") from None
        window = (window + chunk)[-32768:]
        yield chunk


def _cab_blocks(data: bytes, at: int, blocks: int, reserve: int,
                walk: list[int]) -> Iterator[tuple[memoryview, int]]:
    """A folder's CFDATA blocks as (compressed data, a view; uncompressed size), until the
    data ends or `walk[0]`, the octets the cabinet's folders may still walk, runs out."""
    view = memoryview(data)
    for _ in range(blocks):
        if at + 8 > len(data):
            return
        _checksum, compressed, uncompressed = struct.unpack_from("<IHH", data, at)
        octets = 8 + reserve + compressed
        if at + octets > len(data) or octets > walk[0]:
            return
        walk[0] -= octets
        at += octets
        yield view[at - compressed:at], uncompressed


def _cab_folder(data: bytes, at: int, blocks: int, comp_type: int, reserve: int,
                limit: int, walk: list[int]) -> bytes | None:
    """A folder's uncompressed bytes (at most `limit`), None for a method we do not read."""
    method = comp_type & 0x000F
    if method == _CAB_LZX:
        return _cab_lzx(_cab_blocks(data, at, blocks, reserve, walk), comp_type >> 8 & 0x1F,
                        limit)
    if method not in (_CAB_STORED, _CAB_MSZIP):
        return None
    out = bytearray()
    for block, _uncompressed in _cab_blocks(data, at, blocks, reserve, walk):
        if len(out) >= limit:
            break
        if method == _CAB_STORED:
            out += block
            continue
        if block[:2] != b"CK":                   # MSZIP: "CK" + a deflate stream whose
            break                                # window carries over from the last block
        inflater = zlib.decompressobj(-15, zdict=bytes(out[-32768:])) if out else \
            zlib.decompressobj(-15)
        try:
            out += inflater.decompress(block[2:], 32768)   # a block is at most 32 KiB
        except zlib.error:
            break
    return bytes(out[:limit])


def _cab_lzx(blocks: Iterable[tuple[memoryview, int]], window_bits: int,
             limit: int) -> bytes | None:
    """An LZX folder as cabd.c has lzxd.c read it: one stream, the CFDATA blocks' data
    end to end (each normally one 32 KiB frame), the window from bits 8-12 of the folder's
    compression type, no reset interval (the state is reset only at the folder's start) and
    the output length set to the sum of the blocks' uncompressed sizes, which sizes the last
    frame. Only the blocks up to `limit` octets of output are joined; frames decoded before
    damage are kept, as cabd.c writes them out."""
    if not 15 <= window_bits <= 21:
        return None                              # cabd.c: MSPACK_ERR_DATAFORMAT
    chunks, length = [], 0
    for block, uncompressed in blocks:
        if length < limit:
            chunks.append(block)
        length += uncompressed
    if length == 0:
        return b""
    out = bytearray()
    try:
        for frame in lzx.frames(b"".join(chunks), window_bits, 0, length, limit):
            out += frame
    except ValueError:
        pass
    return bytes(out[:limit])
