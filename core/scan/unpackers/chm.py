"""Microsoft Compiled HTML Help (CHM, "ITSF") files: the directory and the LZX-compressed
content section, as libmspack's chmd.c reads them (chm.h offsets).

    chm_files(data, limit, total) -> list[bytes]   the contents of the files the CHM holds

Layout
    ITSF header (0x38) + header section table: offsets of header section 0 (file length),
    header section 1 (the ITSP directory header, 0x54 octets, followed by the directory
    chunks) and, from version 3 on, of content section 0 (else it follows the chunks).
    PMGL chunks list files as <encint name length, name, encint section, encint offset,
    encint length>; section 0 is stored, section 1 is "MSCompressed": the system file
    ::DataSpace/Storage/MSCompressed/Content, an LZX stream whose window and reset interval
    come from .../ControlData ("LZXC") and whose length from the ResetTable (or SpanInfo).

Rules
    1. Damaged headers, an unknown ControlData version, a bad window size or a broken LZX
       stream raise ValueError; a directory chunk that ends early only ends that chunk
       (libmspack keeps the entries it has read and warns).
    2. Files come out in directory order, at most MAX_FILES of them; when the CHM lists more,
       the last item is the whole decompressed content section instead, so nothing that was
       decompressed goes unscanned. Every item is at most `limit` octets, and only
       min(content length, limit) octets of the section are decompressed; the files stop
       once they hold `total` octets (what the budget has left: files may overlap, so their
       sum is not bounded by the section).
    3. System files ("::...") are not returned: they are the compressed stream and its
       control data, never content.
"""

from __future__ import annotations

import struct

from core.scan.unpackers import lzx

__all__ = ["CHM_MAGIC", "MAX_FILES", "chm_files"]

CHM_MAGIC = b"ITSF"
MAX_FILES = 64
MAX_TOTAL_OCTETS = 64 * 2**20           # core/scan/unpack.py's budget
MAX_CHUNKS = 100_000                    # chmd.c's sanity limits on the directory
MAX_CHUNK_OCTETS = 8192
_GUIDS = bytes.fromhex("10fd017caa7bd0119e0c00a0c922e6ec11fd017caa7bd0119e0c00a0c922e6ec")
_HEADER_OCTETS = 0x38
_ITSP_OCTETS = 0x54
_PMGL_ENTRIES = 0x14
_CONTENT = b"::DataSpace/Storage/MSCompressed/Content"
_CONTROL = b"::DataSpace/Storage/MSCompressed/ControlData"
_SPANINFO = b"::DataSpace/Storage/MSCompressed/SpanInfo"
_RESET_TABLE = (b"::DataSpace/Storage/MSCompressed/Transform/"
                b"{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable")


def _u32(data: bytes, at: int) -> int:
    if at < 0 or at + 4 > len(data):
        raise ValueError("CHM truncated")
    return struct.unpack_from("<I", data, at)[0]


def _u64(data: bytes, at: int) -> int:
    if at < 0 or at + 8 > len(data):
        raise ValueError("CHM truncated")
    return struct.unpack_from("<Q", data, at)[0]


def _encint(chunk: bytes, at: int, end: int) -> tuple[int, int]:
    """chmd.c READ_ENCINT: 7 bits per octet, high bit = more. IndexError past `end`."""
    value = 0
    for _ in range(9):
        if at >= end:
            raise IndexError
        octet = chunk[at]
        at += 1
        value = value << 7 | (octet & 0x7F)
        if not octet & 0x80:
            return value, at
    raise IndexError


def _directory(data: bytes) -> tuple[int, list[tuple[bytes, int, int, int]]]:
    """(offset of content section 0, [(name, section, offset, length), ...])."""
    if len(data) < _HEADER_OCTETS + 0x20 or not data.startswith(CHM_MAGIC):
        raise ValueError("not a CHM file")
    if data[0x18:0x38] != _GUIDS:
        raise ValueError("CHM header GUIDs")
    version = _u32(data, 4)
    table = _HEADER_OCTETS
    section0_header = _u64(data, table)
    directory_header = _u64(data, table + 0x10)
    content0 = _u64(data, table + 0x20) if version >= 3 else None
    file_length = _u64(data, section0_header + 8)
    if directory_header + _ITSP_OCTETS > len(data):
        raise ValueError("CHM directory header truncated")
    chunk_octets = _u32(data, directory_header + 0x10)
    first_pmgl = _u32(data, directory_header + 0x20)
    last_pmgl = _u32(data, directory_header + 0x24)
    chunks = _u32(data, directory_header + 0x2C)
    chunks_at = directory_header + _ITSP_OCTETS
    if content0 is None:
        content0 = chunks_at + chunk_octets * chunks
    if content0 > file_length:
        raise ValueError("CHM content section begins after the file ends")
    if not _PMGL_ENTRIES + 2 <= chunk_octets <= MAX_CHUNK_OCTETS or \
            not 0 < chunks <= MAX_CHUNKS or first_pmgl > last_pmgl or last_pmgl >= chunks:
        raise ValueError("CHM directory header out of range")
    entries = []
    for number in range(first_pmgl, last_pmgl + 1):
        at = chunks_at + number * chunk_octets
        chunk = data[at:at + chunk_octets]
        if len(chunk) < chunk_octets:
            raise ValueError("CHM directory truncated")
        if not chunk.startswith(b"PMGL"):
            continue
        end = chunk_octets - 2
        count, = struct.unpack_from("<H", chunk, end)
        at = _PMGL_ENTRIES
        try:
            for _ in range(count):
                name_length, at = _encint(chunk, at, end)
                if name_length > end - at:
                    break
                name = chunk[at:at + name_length]
                at += name_length
                section, at = _encint(chunk, at, end)
                offset, at = _encint(chunk, at, end)
                length, at = _encint(chunk, at, end)
                if len(name) < 2 or not name[0] or not name[1] or section > 1:
                    continue
                if offset == 0 and length == 0 and name.endswith(b"/"):
                    continue                    # a directory name
                entries.append((name, section, offset, length))
        except IndexError:                      # chunk ended early: keep what was read
            pass
    return content0, entries


def _stored(data: bytes, content0: int, entry, octets: int | None = None) -> bytes:
    _name, section, offset, length = entry
    if section != 0:
        raise ValueError("CHM system file is not stored")
    if octets is not None and length != octets:
        raise ValueError("CHM system file has the wrong size")
    body = data[content0 + offset:content0 + offset + length]
    if len(body) != length:
        raise ValueError("CHM stored file truncated")
    return body


def _content_section(data: bytes, content0: int, system: dict, limit: int) -> bytes:
    """Decompress (the first `limit` octets of) the MSCompressed section."""
    if _CONTROL not in system or _CONTENT not in system:
        raise ValueError("CHM without MSCompressed Content or ControlData")
    control = _stored(data, content0, system[_CONTROL], 0x1C)
    if control[4:8] != b"LZXC":
        raise ValueError("CHM ControlData signature")
    version, reset_interval, window = struct.unpack_from("<III", control, 8)
    if version == 2:
        reset_interval *= lzx.FRAME_OCTETS
        window *= lzx.FRAME_OCTETS
    elif version != 1:
        raise ValueError("CHM ControlData version")
    if window not in {1 << bits for bits in range(15, 22)}:
        raise ValueError("CHM LZX window size")
    if reset_interval == 0 or reset_interval % lzx.FRAME_OCTETS:
        raise ValueError("CHM LZX reset interval")
    if _RESET_TABLE in system:
        table = _stored(data, content0, system[_RESET_TABLE])
        if len(table) < 0x28 or _u32(table, 0x20) != lzx.FRAME_OCTETS:
            raise ValueError("CHM ResetTable")
        length = _u64(table, 0x10)
        # chmd.c: the stream is always padded out to the next reset interval
        stream_length = (length + reset_interval - 1) // reset_interval * reset_interval
    elif _SPANINFO in system:
        length = stream_length = _u64(_stored(data, content0, system[_SPANINFO], 8), 0)
    else:
        raise ValueError("CHM without ResetTable or SpanInfo")
    stream = _stored(data, content0, system[_CONTENT])
    return lzx.decompress(stream, window.bit_length() - 1, reset_interval // lzx.FRAME_OCTETS,
                          stream_length, min(length, limit))


def chm_files(data: bytes, limit: int, total: int = MAX_TOTAL_OCTETS) -> list[bytes]:
    """The non-empty files of a CHM (rule 2). Raises ValueError for a damaged one."""
    content0, entries = _directory(data)
    system = {e[0]: e for e in entries if e[0].startswith(b"::")}
    files = [e for e in entries if not e[0].startswith(b"::") and e[3] > 0]
    section1 = b""
    if any(section == 1 for _name, section, _offset, _length in files):
        section1 = _content_section(data, content0, system, limit)
    out: list[bytes] = []
    for _name, section, offset, length in files:
        if total <= 0:
            break
        take = min(length, limit, total)
        if section == 0:
            body = data[content0 + offset:content0 + offset + take]
        else:
            body = section1[offset:offset + take]
        if not body:
            continue
        if len(out) == MAX_FILES:               # more than MAX_FILES: the section instead
            out[-1:] = [section1] if section1 else []
            break
        out.append(body)
        total -= len(body)
    return out
