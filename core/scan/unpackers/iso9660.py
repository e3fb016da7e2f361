"""ISO 9660 images (ECMA-119), with the names Joliet and Rock Ridge give their files, as
libclamav's iso9660.c walks them.

    is_iso(data) -> bool
    iso_files(data) -> list[IsoFile]      names, offset and size of each file

The decomposer (core/pipeline/decompose/engine_archives.py) and the builtin engine
(core/scan/unpack.py) both list an image with `iso_files`: the names meet the file-name
rules, the contents are slices of the image (ISO 9660 stores, it never compresses).

Layout
    Volume descriptors from sector 16 (2048 octets each): type 1 the primary one, type 2 a
    supplementary one (Joliet when its escape sequence is %/@, %/C or %/E: names in UCS-2
    big-endian), 255 the end. A descriptor holds the logical block size (offset 128) and
    the root directory record (offset 156). A directory is an extent of records: length,
    extent (u32 LE at 2), data length (u32 LE at 10), flags (25; 0x02 = directory), name
    length (32), name (33; 0x00 and 0x01 are "." and ".."), then the System Use area,
    where Rock Ridge puts the file's real name in "NM" entries. A record never crosses a
    sector: a length of 0 means the rest of the sector is padding.

Rules
    1. Every tree there is (the primary one, and a Joliet one) is walked; a file is one
       extent (offset and size), named by each tree's name for it: the Joliet name first
       (the long one Windows shows), then the primary tree's — its Rock Ridge name, else
       the primary name without its ";1" version, and that primary name as well; the first
       is its name, the others `other_names`: readers differ in which they show.
    2. Work is bounded by the image: each directory extent is read once (a directory that
       points back at one already read is passed over), at most MAX_RECORDS records in all.
       A file whose extent lies past the end of the image is passed over.
    3. An image without a readable primary descriptor raises ValueError.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["IsoFile", "is_iso", "iso_files"]

SECTOR_OCTETS = 2048
MAX_RECORDS = 100_000
MAX_DESCRIPTORS = 64
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
_DIRECTORY = 0x02


class IsoFile(NamedTuple):
    name: str
    other_names: tuple[str, ...]
    offset: int
    size: int


def is_iso(data: bytes) -> bool:
    return data[16 * SECTOR_OCTETS + 1:16 * SECTOR_OCTETS + 6] == b"CD001"


def _roots(data: bytes) -> list[tuple[bytes, bool, int]]:
    """(root directory record, is Joliet, logical block size) of each tree."""
    roots, at = [], 16 * SECTOR_OCTETS
    for _ in range(MAX_DESCRIPTORS):
        descriptor = data[at:at + SECTOR_OCTETS]
        if len(descriptor) < 190 or descriptor[1:6] != b"CD001" or descriptor[0] == 255:
            break
        kind = descriptor[0]
        joliet = kind == 2 and descriptor[88:91] in _JOLIET_ESCAPES
        if kind == 1 or joliet:
            block, = struct.unpack_from("<H", descriptor, 128)
            if block in (512, 1024, 2048):
                roots.append((descriptor[156:156 + 34], joliet, block))
        at += SECTOR_OCTETS
    if not any(not joliet for _, joliet, _ in roots):
        raise ValueError("no ISO 9660 primary volume descriptor")
    return roots


def _rock_ridge_name(system_use: bytes) -> str | None:
    """The name the "NM" entries of a System Use area spell (joined when continued)."""
    parts, at = [], 0
    while at + 4 <= len(system_use):
        signature, length = system_use[at:at + 2], system_use[at + 2]
        if length < 4:
            break
        if signature == b"NM" and length >= 5:
            parts.append(system_use[at + 5:at + length])
        at += length
    if not parts:
        return None
    return _text(b"".join(parts))


def _text(name: bytes, joliet: bool = False) -> str:
    if joliet:
        return name.decode("utf-16-be", "replace")
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        return name.decode("latin-1")


def _plain(name: str) -> str:
    """A primary or Joliet name without its ";1" version and the dot of an empty
    extension ("README.;1" is README)."""
    name = name.split(";", 1)[0]
    return name[:-1] if name.endswith(".") else name


def _walk(data: bytes, root: bytes, joliet: bool, block: int, budget: list[int]):
    """(path, extent offset, size) of each file of one tree (rule 2)."""
    if len(root) < 34:
        return
    pending = [("", *struct.unpack_from("<I", root, 2), *struct.unpack_from("<I", root, 10))]
    seen: set[int] = set()
    while pending:
        path, extent, length = pending.pop(0)
        start = extent * block
        if start in seen or start >= len(data):
            continue
        seen.add(start)
        end = min(start + length, len(data))
        at = start
        while at < end and budget[0] > 0:
            size = data[at]
            if size == 0:                       # padding to the next sector
                at = (at // SECTOR_OCTETS + 1) * SECTOR_OCTETS
                continue
            record = data[at:at + size]
            at += size
            if len(record) < 34:
                break
            budget[0] -= 1
            name_octets = record[32]
            raw_name = record[33:33 + name_octets]
            if raw_name in (b"\x00", b"\x01"):
                continue
            child, child_size = struct.unpack_from("<I", record, 2)[0], \
                struct.unpack_from("<I", record, 10)[0]
            system_use = record[33 + name_octets + (1 - name_octets % 2):]
            plain = _plain(_text(raw_name, joliet))
            long_name = None if joliet else _rock_ridge_name(system_use)
            name = long_name or plain
            full = f"{path}/{name}" if path else name
            if record[25] & _DIRECTORY:
                pending.append((full, child, child_size))
            elif child * block + child_size <= len(data):
                yield full, child * block, child_size
                if long_name and long_name != plain:        # rule 1: the primary name too
                    yield (f"{path}/{plain}" if path else plain), child * block, child_size


def iso_files(data: bytes) -> list[IsoFile]:
    """The files of the image (rules 1-3), in the order the first tree lists them."""
    found: dict[tuple[int, int], list[str]] = {}
    budget = [MAX_RECORDS]
    roots = sorted(_roots(data), key=lambda root: not root[1])     # Joliet first (rule 1)
    for root, joliet, block in roots:
        for name, offset, size in _walk(data, root, joliet, block, budget):
            names = found.setdefault((offset, size), [])
            if name not in names:
                names.append(name)
    return [IsoFile(names[0], tuple(names[1:]), offset, size)
            for (offset, size), names in found.items()]
