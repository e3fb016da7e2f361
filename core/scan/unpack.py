"""Content the antivirus engines look into beyond what the pipeline's decomposer opens
(docs/antivirus.md "What the builtin engine unpacks"): the places files hide inside other
files that ClamAV also reads.

    data: URIs (base64) in HTML         uuencoded and BinHex 4.0 blocks
    MS-DOS COMPRESS (SZDD, szdd.py)      RTF \\objdata (hex) objects
    OLE2 streams (olefile); of an Ole10Native package the file it holds (ole10native.py)
    zlib streams inside OLE2/SIS/other binaries (PowerPoint's compressed embedded objects)
    non-solid NSIS installers (LZMA / deflate / bzip2 blocks)
    UPX-packed PE files (NRV2B/D/E, upx.py)
    mail and mbox files (re-decomposed)  zip members compressed with Deflate64 (inflate64,
                                         unpackers/zipmethods.py, the decomposer's reader too)
    in pure Python, under core/scan/unpackers/:
    ARJ archives, also in a self-extracting .exe (methods 0-4)          arj.py
    zip members compressed with PKWARE implode (method 6)               implode.py
    CHM help files (ITSF directory, LZX content section)                chm.py, lzx.py
    InstallShield setups: MSI-based (ISHIELD-MSI streams) and older
      ones (PE overlay, data1.hdr + dataN.cab)                          installshield.py
    Microsoft cabinets (MSCF): stored, MSZIP and LZX folders
      (Quantum folders are skipped)                                     installshield.py, lzx.py
    compiled AutoIt scripts (EA05, EA06) in a PE                        autoit.py
    PDF streams (FlateDecode), and in a PDF that opens with the empty
      user password its streams and strings decrypted                   pdf.py
    cpio archives (newc, crc, odc, binary)                              cpio.py
    ISO 9660 images (with Joliet and Rock Ridge names)                  iso9660.py
The decomposer opens the ARJ, cabinet, cpio, ISO 9660 and SZDD files a message carries, and
the OLE Package objects of its OLE2 documents, with these same readers
(core/pipeline/decompose/engine_archives.py), so their members are parts:
what comes here are such files inside what the decomposer does not open (an ARJ
self-extractor, a cabinet in an OLE2 stream, ...).

`expand(data, decompose)` yields (label, bytes) pairs — derived buffers to scan like the
original — under a Budget (count, total octets, depth); it never raises for anything in the
data and never expands past the budget (ARCHITECTURE invariant 3): it pulls a decoder's items
one at a time and stops pulling when the budget is spent, and a decoder reads each octet of
its input a bounded number of times, whatever the input (no object, block or stream runs to the
end of the data once per start marker: x4-cost findings 2-4). Decoders that take a
`limit` are told what the budget has left (at most MAX_ITEM_OCTETS per item, and the
budget's octets in all), so they stop there instead of decompressing what would be refused.
A member that decoded in full but whose stored CRC-32 does not match (unpackers.CrcMismatch)
is yielded all the same, its label ending in "(crc mismatch)": a flipped checksum must not
hide content from the scan.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from core.scan.filetypes import looks_like_mail
from core.scan.unpackers import (CrcMismatch, cpio, iso9660, name_text, ole10native,
                                 zipmethods)

__all__ = ["expand", "Budget", "szdd", "binhex", "uudecode", "uu_blocks", "uu_read",
           "UuBlock", "UuContent"]

MAX_ITEMS = 200
MAX_TOTAL_OCTETS = 64 * 2**20
MAX_ITEM_OCTETS = 32 * 2**20
MAX_ZLIB_TRIES = 32
_END = object()                # what `next` gives for a producer with no more items


@dataclass
class Budget:
    items: int = MAX_ITEMS
    octets: int = MAX_TOTAL_OCTETS

    def take(self, data: bytes) -> bool:
        if self.items <= 0 or len(data) > self.octets:
            return False
        self.items -= 1
        self.octets -= len(data)
        return True


def expand(data: bytes, decompose: Callable[[bytes], list[bytes]] | None = None,
           budget: Budget | None = None) -> Iterator[tuple[str, bytes]]:
    budget = budget or Budget()
    for label, produce in _candidates(data, decompose, budget):
        items = _produced(produce, budget)
        item, index = next(items, _END), 0
        while item is not _END:
            following = next(items, _END)      # one ahead: several items are numbered
            if item and budget.take(item):
                where = f"{label}[{index}]" if index or following is not _END else label
                if isinstance(item, CrcMismatch):
                    yield f"{where}(crc mismatch)", bytes(item)
                else:
                    yield where, item
            item, index = following, index + 1



def _produced(produce: Callable[[], Iterable[bytes]], budget: Budget) -> Iterator[bytes]:
    """The items of one candidate, pulled one at a time and only while the budget has room
    (invariant 3: a producer that is a generator never builds what would be refused). Damaged
    content ends it: what came before is kept, nothing more is added."""
    try:
        iterator = iter(produce())
        while budget.items > 0 and budget.octets > 0:
            yield next(iterator)
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:                          # StopIteration, or damaged content
        return


def _limit(budget: Budget) -> int:
    """The most octets one decoder may produce now."""
    return max(0, min(MAX_ITEM_OCTETS, budget.octets))


def _candidates(data: bytes, decompose, budget: Budget):
    head = data[:4096]
    if head.startswith(b"SZDD\x88\xf0\x27\x33"):
        yield "szdd", lambda: [szdd(data, _limit(budget))]
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        yield "ole2", lambda: _ole_streams(data)
    if head.lstrip()[:5] == b"{\\rtf":
        yield "rtf-object", lambda: _rtf_objects(data)
    if b"%PDF-" in head[:1024]:
        from core.scan.unpackers import pdf
        yield "pdf-stream", lambda: pdf.pdf_streams(data)
        yield "pdf-strings", lambda: pdf.pdf_strings(data)
    if b"(This file must be converted with BinHex" in data[:65536]:
        yield "binhex", lambda: [binhex(data)]
    window = data[:1 << 20]
    if (window.startswith(b"begin ") or b"\nbegin " in window) and \
            re.search(rb"^begin [0-7]{3,4} ", window, re.MULTILINE):
        yield "uuencode", lambda: _uu_blocks(data)
    if b"data:" in data[:1 << 22] and b";base64," in data[:1 << 22]:
        yield "data-uri", lambda: _data_uris(data)
    if head.startswith(b"PK\x03\x04"):
        yield "deflate64", lambda: _deflate64_members(data, _limit(budget))
        from core.scan.unpackers import implode
        yield "implode", lambda: implode.imploded_members(data, _limit(budget), budget.octets)
    if head.startswith(b"\x60\xea") or (head.startswith(b"MZ")
                                         and b"\x60\xea" in data[:1 << 20]):   # ARJ, ARJ SFX
        from core.scan.unpackers import arj
        yield "arj", lambda: arj.arj_members(data, _limit(budget), budget.octets)
    if head.startswith(b"ITSF"):
        from core.scan.unpackers import chm
        yield "chm", lambda: chm.chm_files(data, _limit(budget), budget.octets)
    if head.startswith(b"MZ") and b"UPX0" in head:
        from core.scan.upx import unpack_upx
        yield "upx", lambda: unpack_upx(data)
    if NSIS_MAGIC in data[:1 << 24]:
        yield "nsis", lambda: nsis(data)
    if head.startswith(b"MZ"):                  # InstallShield and AutoIt (unpackers/)
        from core.scan.unpackers import autoit, installshield
        if b"InstallShield\0" in data:
            yield "installshield-msi", lambda: installshield.installshield_msi(data)
        yield "installshield", lambda: installshield.installshield(data)
        if autoit.AUTOIT_MARKER in data:
            yield "autoit", lambda: autoit.autoit(data)
    if head.startswith(b"MSCF"):
        from core.scan.unpackers.installshield import cabinet
        yield "cab", lambda: cabinet(data, budget.octets)
    if cpio.is_cpio(head):
        yield "cpio", lambda: (data[f.offset:f.offset + min(f.size, _limit(budget))]
                               for f in cpio.cpio_files(data))
    if iso9660.is_iso(data):
        yield "iso", lambda: (data[f.offset:f.offset + min(f.size, _limit(budget))]
                              for f in iso9660.iso_files(data))
    if decompose is not None and looks_like_mail(data):
        yield "mail", lambda: decompose(data)
    if head[:4] in (b"\xd0\xcf\x11\xe0",) or _is_sis(head):
        yield "zlib", lambda: _zlib_streams(data)


def _is_sis(head: bytes) -> bool:
    return len(head) >= 16 and head[4:8] in (b"\x6d\x00\x00\x10", b"\x12\x3a\x00\x10",
                                              b"\x19\x04\x00\x10") or head[8:12] == \
        b"\x19\x04\x00\x10"


# --- formats ---------------------------------------------------------------------------------

def szdd(data: bytes, limit: int = MAX_ITEM_OCTETS) -> bytes:
    """MS-DOS COMPRESS.EXE (SZDD), read by unpackers/szdd.py (the decomposer's reader too)."""
    from core.scan.unpackers import szdd as szdd_format
    return szdd_format.szdd(data, limit)


_HQX = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_HQX_VALUE = {c: i for i, c in enumerate(_HQX)}


def binhex(data: bytes) -> bytes:
    """The data fork of a BinHex 4.0 file."""
    start = data.index(b":", data.index(b"(This file must be converted with BinHex")) + 1
    end = data.find(b":", start)
    text = data[start:end if end > 0 else len(data)]
    bits, count, raw = 0, 0, bytearray()
    for c in text:
        value = _HQX_VALUE.get(c)
        if value is None:
            continue
        bits = (bits << 6) | value
        count += 6
        if count >= 8:
            count -= 8
            raw.append((bits >> count) & 0xFF)
    out, i, previous = bytearray(), 0, 0
    while i < len(raw):                       # run-length: 0x90 n
        value = raw[i]
        if value == 0x90 and i + 1 < len(raw):
            n = raw[i + 1]
            i += 2
            if n == 0:
                out.append(0x90)
                previous = 0x90
            else:
                out.extend(bytes([previous]) * (n - 1))
            continue
        out.append(value)
        previous = value
        i += 1
    name_length = out[0]
    at = 1 + name_length + 1 + 4 + 4 + 2
    data_length, = struct.unpack_from(">I", out, at)
    at += 4 + 4 + 2
    return bytes(out[at:at + data_length])


_UU_BEGIN = re.compile(rb"^begin [0-7]{3,4} ([^\r\n]*)\r?\n", re.MULTILINE)
_UU_END = re.compile(rb"^end\s*$", re.MULTILINE)


@dataclass(frozen=True)
class UuBlock:
    """One uuencoded block of a buffer, as mail readers find it in a text (Thunderbird's
    and mutt's "begin <mode> <name>" line: three or four octal digits, the name after them).
    Offsets are into that buffer; where its lines end is known once it is read (`uu_read`)."""
    start: int          # the "begin" line's first octet
    body: tuple[int, int]   # the encoded lines, between the begin line and the "end" line
                            # (with none, the next "begin" line or the data's end)
    name: str           # as the begin line gives it (blanks around it dropped; UTF-8, else
                        # Latin-1)
    has_end: bool


class UuContent(NamedTuple):
    """A block as `uu_read` read it."""
    data: bytes         # the decoded content
    end: int            # where the block's lines end (that line's break stays outside): its
                        # "end" line's text end when every line up to it decoded in full
                        # (`whole`); else the text end of the last line before the first one
                        # that did not (the begin line's when none did): blank lines after it,
                        # and a line decoded only in part, are not the block's
    whole: bool         # each line from the begin line to the "end" line is in `data`


def uudecode(data: bytes) -> list[bytes]:
    """The uuencoded blocks of `data`, each up to its "end" line; a block whose "end" line is
    missing ends at the next "begin" line or at the end of the data."""
    return list(_uu_blocks(data))


def uu_blocks(data: bytes) -> Iterator[UuBlock]:
    """Where the uuencoded blocks of `data` are (see `uudecode`), in order. The builtin
    engine decodes each (`uu_read`); the decomposer makes each in a message text a part
    (core/pipeline/decompose/uuencoded.py)."""
    # Linear: each "begin" is found once, and the "end" search resumes where the last one
    # stopped (x4-cost finding 3: a lazy `begin ...(.*?)^end` walked to the end of the data
    # from every "begin" that had no "end").
    at, end, has_end = 0, None, True
    while (begin := _UU_BEGIN.search(data, at)) is not None:
        start = begin.end()
        if has_end and (end is None or end.start() < start):
            end = _UU_END.search(data, start)
            has_end = end is not None
        if has_end:
            stop, at = end.start(), end.end()
        else:
            following = _UU_BEGIN.search(data, start)
            stop = at = following.start() if following else len(data)
        name = name_text(begin.group(1).strip())
        yield UuBlock(begin.start(), (start, stop), name, has_end)


_LINE_BREAK = re.compile(rb"\r|\n")


def _line_text_end(data: bytes, at: int) -> int:
    """The end of the text of the line at `at` (before its CR LF, LF or CR)."""
    found = _LINE_BREAK.search(data, at)
    return found.start() if found else len(data)


def uu_read(data: bytes, block: UuBlock, limit: int = MAX_ITEM_OCTETS) -> UuContent:
    """The content of `block`, decoded up to its first line that cannot be, and at most
    `limit` octets (a line more may prove that limit); and where the lines that decoded in
    full end (review18 R1, R2: the text after them is not the block's, a reader shows it)."""
    start, stop = block.body
    chunk = bytearray()
    end = start - 1 - (data[start - 2:start - 1] == b"\r")    # the begin line's text end
    full = True                     # every line so far decoded whole
    at = start
    for line in data[start:stop].splitlines(keepends=True):
        text = line.rstrip(b"\r\n")
        line_end, at = at + len(text), at + len(line)
        if len(chunk) > limit:
            full = False
            break
        stripped = text.strip()
        if not stripped:
            continue                # a blank line ends no block: one after it is the text's
        if stripped == b"`":
            end = line_end if full else end
            continue
        try:
            chunk += binascii.a2b_uu(text)
        except binascii.Error:
            full = False            # decoded only in part, or not at all: the span ends
            nbytes = (((text[0] - 32) & 63) * 4 + 5) // 3
            try:
                chunk += binascii.a2b_uu(text[:nbytes])
            except binascii.Error:
                break
            continue
        end = line_end if full else end
    else:
        if full and block.has_end:
            return UuContent(bytes(chunk), _line_text_end(data, stop), True)
    return UuContent(bytes(chunk), end, False)


def _uu_blocks(data: bytes) -> Iterator[bytes]:
    for block in uu_blocks(data):
        yield uu_read(data, block).data


def _ole_streams(data: bytes) -> list[bytes]:
    """Every stream; of an Ole10Native stream that holds a package, the packaged file
    (unpackers/ole10native.py, the decomposer's reader too), else what follows its size."""
    import olefile
    out = []
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        for path in ole.listdir(streams=True, storages=False)[:MAX_ITEMS]:
            if ole.get_size(path) > MAX_ITEM_OCTETS:
                continue
            stream = ole.openstream(path).read()
            if path[-1] == ole10native.NATIVE_STREAM and len(stream) > 4:
                out.append(_native_content(stream))
            else:
                out.append(stream)
    return out


def _native_content(stream: bytes) -> bytes:
    try:
        package = ole10native.parse_package(stream)
    except ValueError:
        return stream[4:]
    return package.content(stream) if package.as_written else stream[4:]


_OBJDATA = re.compile(rb"\\objdata\b")
_NOT_HEX = bytes(c for c in range(256) if c not in b"0123456789abcdefABCDEF")


def _rtf_objects(data: bytes) -> Iterator[bytes]:
    """The hex-decoded `\\objdata` objects, each up to its "}" or, when that is missing, up
    to the next `\\objdata` or the end: each octet is decoded at most once (x4-cost finding
    2: an object without "}" used to be the whole rest of the file)."""
    match, brace = _OBJDATA.search(data), 0
    while match is not None:
        start = match.end()
        following = _OBJDATA.search(data, start)
        if 0 <= brace < start:                 # -1: no "}" left in the data
            brace = data.find(b"}", start)
        stop = following.start() if following else len(data)
        if 0 <= brace < stop:
            stop = brace
        hexdigits = data[start:stop].translate(None, _NOT_HEX)[:2 * MAX_ITEM_OCTETS]
        yield binascii.unhexlify(hexdigits[:len(hexdigits) & ~1])
        match = following


def _zlib_streams(data: bytes) -> list[bytes]:
    out, tries, view = [], 0, memoryview(data)        # slices of a view copy nothing
    for match in re.finditer(rb"\x78[\x01\x5e\x9c\xda]", data):
        tries += 1
        if tries > MAX_ZLIB_TRIES * 8:
            break
        try:
            inflated = zlib.decompressobj().decompress(view[match.start():], MAX_ITEM_OCTETS)
        except zlib.error:
            continue
        if len(inflated) >= 64:
            out.append(inflated)
            if len(out) >= MAX_ZLIB_TRIES:
                break
    return out


def _data_uris(data: bytes) -> list[bytes]:
    out = []
    for match in re.finditer(rb"data:[^;,\s\"']{0,100};base64,([A-Za-z0-9+/=\s]+)", data):
        try:
            out.append(base64.b64decode(re.sub(rb"\s", b"", match.group(1)) + b"==="[:0],
                                        validate=False))
        except (binascii.Error, ValueError):
            continue
    return out


NSIS_MAGIC = b"\xef\xbe\xad\xdeNullsoftInst"


def _lzma1(block: bytes) -> bytes:
    """Raw LZMA1 with its 5-byte properties header (lc/lp/pb byte + dictionary size)."""
    import lzma
    props, dict_size = block[0], struct.unpack_from("<I", block, 1)[0]
    lc, rest = props % 9, props // 9
    lp, pb = rest % 5, rest // 5
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": max(dict_size, 4096), "lc": lc,
                "lp": lp, "pb": pb}]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(
        block[5:], MAX_ITEM_OCTETS)


def nsis(data: bytes) -> list[bytes]:
    """The data blocks of a non-solid NSIS installer: after the first header, blocks of
    <u32 length, high bit = compressed> + data, compressed with LZMA, deflate or bzip2."""
    import bz2
    at = data.find(NSIS_MAGIC) - 4
    view = memoryview(data)[at + 28:]          # flags, siginfo, magic(12), two sizes
    out, pos = [], 0
    while pos + 4 <= len(view) and len(out) < MAX_ITEMS:
        length, = struct.unpack_from("<I", view, pos)
        pos += 4
        compressed, length = bool(length & 0x80000000), length & 0x7FFFFFFF
        if length == 0 or pos + length > len(view):
            break
        block = bytes(view[pos:pos + length])
        pos += length
        if not compressed:
            out.append(block)
            continue
        for method in (_lzma1, lambda b: zlib.decompressobj(-15).decompress(b, MAX_ITEM_OCTETS),
                       lambda b: bz2.BZ2Decompressor().decompress(b)):
            try:
                out.append(method(block))
                break
            except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
                raise
            except Exception:
                continue
    return out


def _deflate64_members(data: bytes, limit: int) -> Iterator[bytes]:
    """Zip members the standard library cannot read: Deflate64 (method 9), found by their
    local headers and read by the decomposer's reader too (unpackers/zipmethods.py), each
    at most `limit` octets. A damaged member is passed over; one that decoded in full to
    data its CRC-32 does not name is a CrcMismatch."""
    at = 0
    while True:
        at = data.find(b"PK\x03\x04", at)
        if at < 0 or at + 30 > len(data):
            return
        flags, method = struct.unpack_from("<HH", data, at + 6)
        crc, csize, size = struct.unpack_from("<III", data, at + 14)
        name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
        start = at + 30 + name_length + extra_length
        if method == zipmethods.DEFLATE64_METHOD and not flags & 0x1:
            sized = not flags & 0x8           # else the sizes follow the data (descriptor)
            reader = zipmethods.MemberReader(
                data, method, flags, at, csize if sized and csize else len(data) - start,
                size if sized else None, crc if sized else None, limit=limit)
            out = bytearray()
            try:
                while chunk := reader.read():
                    out += chunk
            except zipmethods.CrcError:
                yield CrcMismatch(bytes(out))
            except ValueError:
                pass
            else:
                yield bytes(out)
        at = start if start > at else at + 4
