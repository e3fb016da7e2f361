"""cpio archives in the formats GNU cpio writes (cpio(5)): "newc" and "crc" (ASCII hex
headers, magic 070701 / 070702), "odc" (ASCII octal, 070707) and the old binary format
(magic 0x71C7 in either byte order), as libclamav's cpio.c reads them.

    is_cpio(data) -> bool
    cpio_files(data) -> Iterator[CpioFile]     name, offset and size of each regular file

The decomposer (core/pipeline/decompose/engine_archives.py) and the builtin engine
(core/scan/unpack.py) both list an archive with `cpio_files`: the names meet the file-name
rules, the contents are slices of the archive (cpio stores, it never compresses).

Rules
    1. Only regular files are files (mode type 0o100000); directories, links, devices and
       fifos are passed over. The entry named "TRAILER!!!" ends the archive.
    2. A header that cannot be read, or an entry whose name or data runs past the end of the
       data, ends the walk with ValueError, after the files before it were given. Each octet
       of the input is read once: the walk only moves forward.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from core.scan.unpackers import name_text

__all__ = ["CpioFile", "is_cpio", "cpio_files"]

_NEWC, _CRC, _ODC = b"070701", b"070702", b"070707"
_BINARY_LE, _BINARY_BE = b"\xc7\x71", b"\x71\xc7"
_NEWC_OCTETS, _ODC_OCTETS, _BINARY_OCTETS = 110, 76, 26
_TRAILER = b"TRAILER!!!"
_TYPE_MASK, _REGULAR = 0o170000, 0o100000


class CpioFile(NamedTuple):
    name: str
    offset: int             # of the file's data in the archive
    size: int


def is_cpio(data: bytes) -> bool:
    """Whether `data` opens with a cpio header that reads (numbers where numbers are, a
    NUL-terminated name): its magic alone is six digits, or two octets."""
    if data[:6] not in (_NEWC, _CRC, _ODC) and data[:2] not in (_BINARY_LE, _BINARY_BE):
        return False
    try:
        _mode, name_octets, _size, name_at, _align = _header(data, 0)
    except ValueError:
        return False
    return 0 < name_octets <= 4096 and data[name_at + name_octets - 1:
                                             name_at + name_octets] == b"\x00"


def _number(field: bytes, base: int) -> int:
    try:
        return int(field, base)
    except ValueError:
        raise ValueError(f"cpio header field {field!r} is not a number") from None


def _header(data: bytes, at: int) -> tuple[int, int, int, int, int]:
    """(mode, name octets, file size, offset of the name, alignment) of the header at
    `at`: the alignment is what its format pads the header with name, and the data, to."""
    magic = data[at:at + 6]
    if magic in (_NEWC, _CRC):
        header = data[at:at + _NEWC_OCTETS]
        if len(header) < _NEWC_OCTETS:
            raise ValueError("cpio header truncated")
        mode = _number(header[14:22], 16)
        size = _number(header[54:62], 16)
        name_octets = _number(header[94:102], 16)
        return mode, name_octets, size, at + _NEWC_OCTETS, 4
    if magic == _ODC:
        header = data[at:at + _ODC_OCTETS]
        if len(header) < _ODC_OCTETS:
            raise ValueError("cpio header truncated")
        mode = _number(header[18:24], 8)
        name_octets = _number(header[59:65], 8)
        size = _number(header[65:76], 8)
        return mode, name_octets, size, at + _ODC_OCTETS, 1
    order = {_BINARY_LE: "<", _BINARY_BE: ">"}.get(data[at:at + 2])
    if order is None:
        raise ValueError("cpio header expected")
    header = data[at:at + _BINARY_OCTETS]
    if len(header) < _BINARY_OCTETS:
        raise ValueError("cpio header truncated")
    fields = struct.unpack(order + "13H", header)
    mode, name_octets, high, low = fields[3], fields[10], fields[11], fields[12]
    return mode, name_octets, high << 16 | low, at + _BINARY_OCTETS, 2


def _align(offset: int, align: int) -> int:
    return offset + (-offset % align)


def cpio_files(data: bytes) -> Iterator[CpioFile]:
    """The regular files of the archive, in order (rules 1-2)."""
    at = 0
    while True:
        mode, name_octets, size, name_at, align = _header(data, at)
        name = data[name_at:name_at + name_octets]
        if len(name) != name_octets or name_octets == 0:
            raise ValueError("cpio name truncated")
        name = name.rstrip(b"\x00")
        start = _align(name_at + name_octets, align)
        if name == _TRAILER:
            return
        if start + size > len(data):
            raise ValueError("cpio file data truncated")
        if mode & _TYPE_MASK == _REGULAR:
            yield CpioFile(name_text(name), start, size)
        at = _align(start + size, align)
