"""ISO 9660 images (ECMA-119), with the names Joliet and Rock Ridge give their files, as
libclamav's iso9660.c walks them.

    is_iso(data) -> bool
    iso_files(data) -> Iterator[IsoFile]  names, offset and size of each file

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
       points back at one already read is passed over), at most MAX_RECORDS records in all,
       and a path (the directories' names and the file's, joined by "/") is at most
       MAX_PATH_CHARS characters, Linux's PATH_MAX: a directory or file with a longer one is
       not read (a chain of 10,000 directories named a file with 2,000,008 characters, which
       went into every location and event). The paths kept, of directories and files, have
       at most MAX_PATHS_CHARS characters in all (100,000 files in a directory 4,000
       characters deep would otherwise keep 400 MB of names). A file whose extent lies past
       the end of the image is passed over.
    3. An image without a readable primary descriptor raises ValueError.
    4. What rule 2 leaves unread is not left in silence: after the files that were read, the
       listing raises ValueError naming the first limit hit, so a file hidden past a limit
       is an error on the image (the decomposer: unprocessable, engine_archives.py rule 3),
       not a file that neither the file-name rules nor the engines ever saw.
    5. A file is listed once, however many records name its extent: its first name, and
       every other one in `other_names`, which the file-name rules read as they read a zip
       member's legacy names (so a 17th name `SETUP.EXE` still meets *.exe). The names are
       kept in a dict per extent, so each new one costs O(1) (comparing it with a list of the
       kept ones made 100,000 records take a minute, review18 R3); how many there can be is
       bounded by rule 2. An extent listed again for each 16 of its names made the builtin
       engine spend its item budget (unpack.py MAX_ITEMS) on 200 copies of a file named
       3,300 times, never reaching the files after it, and the decomposer charge and scan
       each copy as a part (review18b R2).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

from core.scan.unpackers import name_text

__all__ = ["IsoFile", "is_iso", "iso_files"]

SECTOR_OCTETS = 2048
MAX_RECORDS = 100_000
MAX_PATH_CHARS = 4096           # rule 2: PATH_MAX of Linux (limits.h)
MAX_PATHS_CHARS = 1 << 24       # rule 2: 167 characters for each of MAX_RECORDS
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
    return name_text(b"".join(parts))


def _text(name: bytes, joliet: bool) -> str:
    return name.decode("utf-16-be", "replace") if joliet else name_text(name)


def _plain(name: str) -> str:
    """A primary or Joliet name without its ";1" version and the dot of an empty
    extension ("README.;1" is README)."""
    name = name.split(";", 1)[0]
    return name[:-1] if name.endswith(".") else name


class _Walk:
    """What the walks of all trees have left (rule 2), and the first thing they did not read
    (rule 4)."""

    def __init__(self) -> None:
        self.records = MAX_RECORDS
        self.chars = MAX_PATHS_CHARS
        self.unread = ""

    def not_read(self, why: str) -> None:
        self.unread = self.unread or why


def _walk(data: bytes, root: bytes, joliet: bool, block: int, walk: _Walk):
    """(path, extent offset, size) of each file of one tree (rule 2)."""
    if len(root) < 34:
        return
    pending = deque([("", *struct.unpack_from("<I", root, 2),
                      *struct.unpack_from("<I", root, 10))])
    seen: set[int] = set()
    while pending:
        path, extent, length = pending.popleft()
        start = extent * block
        if start in seen or start >= len(data):
            continue
        seen.add(start)
        end = min(start + length, len(data))
        at = start
        while at < end:
            size = data[at]
            if size == 0:                       # padding to the next sector
                at = (at // SECTOR_OCTETS + 1) * SECTOR_OCTETS
                continue
            record = data[at:at + size]
            at += size
            if len(record) < 34:
                break
            if walk.records == 0:
                walk.not_read(f"more than {MAX_RECORDS} directory records")
                return
            walk.records -= 1
            name_octets = record[32]
            raw_name = record[33:33 + name_octets]
            if raw_name in (b"\x00", b"\x01"):
                continue
            child, child_size = struct.unpack_from("<I", record, 2)[0], \
                struct.unpack_from("<I", record, 10)[0]
            system_use = record[33 + name_octets + (1 - name_octets % 2):]
            plain = _plain(_text(raw_name, joliet))
            long_name = None if joliet else _rock_ridge_name(system_use)
            names = [long_name or plain]
            if long_name and long_name != plain:            # rule 1: the primary name too
                names.append(plain)
            is_directory = record[25] & _DIRECTORY
            if not is_directory and child * block + child_size > len(data):
                continue
            paths = [f"{path}/{name}" if path else name
                     for name in (names[:1] if is_directory else names)]
            if max(map(len, paths)) > MAX_PATH_CHARS:
                walk.not_read(f"a path longer than {MAX_PATH_CHARS} characters")
                continue
            walk.chars -= sum(map(len, paths))
            if walk.chars < 0:
                walk.not_read(f"paths of more than {MAX_PATHS_CHARS} characters in all")
                return
            if is_directory:
                pending.append((paths[0], child, child_size))
            else:
                for full in paths:
                    yield full, child * block, child_size


def iso_files(data: bytes) -> Iterator[IsoFile]:
    """The files of the image (rules 1-5), in the order the first tree lists them."""
    found: dict[tuple[int, int], dict[str, None]] = {}     # names of each extent, in order
    walk = _Walk()
    roots = sorted(_roots(data), key=lambda root: not root[1])     # Joliet first (rule 1)
    for root, joliet, block in roots:
        for name, offset, size in _walk(data, root, joliet, block, walk):
            found.setdefault((offset, size), {})[name] = None
    for (offset, size), kept in found.items():                     # rule 5: once each
        name, *other_names = kept
        yield IsoFile(name, tuple(other_names), offset, size)
    if walk.unread:
        raise ValueError(f"{walk.unread}: the rest of the image was not read")
