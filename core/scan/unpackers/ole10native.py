"""Files embedded in Office documents as OLE "Package" objects: the `\\x01Ole10Native` stream
of an OLE2 compound file (a legacy .doc/.xls/.ppt's object storage, or an OOXML file's
`word/embeddings/oleObject1.bin`), as Packager (packager.exe) writes it and libclamav's
ole2_extract.c, Apache POI's Ole10Native and oletools' oleobj read it.

    compound_file(data) -> olefile.OleFileIO   the compound file (a context manager)
    native_streams(ole) -> list[NativeStream]  its Ole10Native streams: path, size, class
    read_stream(ole, stream, file_octets)      one stream's octets, bounded by the file
    parse_package(stream) -> Package           the packaged file's names and where it lies

The decomposer (core/pipeline/decompose/engine_archives.py) makes each packaged file a part
with its names, so the file-name rules see `invoice.exe` in a .doc; the builtin engine
(core/scan/unpack.py) scans the same file. One reading of the format for both.

Layout (all integers little-endian)
    u32 total size of what follows; u16 (2); the label, the source path: each ANSI text
    ending in NUL; u16 0, u16 the package's type (oletools' oleobj.py reads these four
    octets as one "unknown" u32; the two types known):
      3, an embedded file: u32 length + the temporary path (ANSI, NUL included); u32 size +
         the file's content;
      1, a link to a file outside the document (Packager's "Create Link"): u16 (1 in the
         one link known, sample_with_lnk_to_calc.doc of oletools' oleobj tests; read when
         there), the linked path, ANSI ending in NUL, and no content: opening the icon
         opens that path, on the reader's disk or a share;
    then, when the writer added them, the Unicode forms of the temporary (linked) path, the
    label and the source path, each a u32 count of UTF-16 code units and the units. The
    label is what Word shows under the icon; the temporary path is where Packager writes
    the file before opening it (so its extension decides what runs), the linked path what
    a link opens; every one of these names is a name of the file.

Rules
    1. A stream is a package when its storage's class is Package's (PACKAGE_CLSID) — then
       a stream that does not read as one is damage (ValueError) — or, for another class,
       when it reads whole as one with the fixed fields Packager writes (Package.as_written;
       Ole10Native also carries the native data of other OLE 1.0 servers, which is no
       named file and is left to the engines).
    2. `parse_package` raises ValueError when the names cannot be read (a text without its
       NUL, a length past the end) or the type is neither 3 nor 1; a content shorter than
       its declared size is given as far as it goes (Package.available < Package.size): the
       caller says it was cut. A link (Package.link) has no content: size and available
       are 0, and it is whole. The leading total size is not relied on, the fields' own
       sizes are. The Unicode names are optional: they are read while they read, and what
       does not is left.
    3. Everything is bounded by the data: a stream whose declared size is more than the
       compound file holds is damage (a FAT chain that runs in circles would otherwise be
       read again and again); at most MAX_STREAMS Ole10Native streams are listed. olefile's
       errors on a damaged file come out as ValueError.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from core.scan.unpackers import name_text

__all__ = ["PACKAGE_CLSID", "NATIVE_STREAM", "MAX_STREAMS", "NativeStream", "Package",
           "compound_file", "native_streams", "read_stream", "parse_package"]

PACKAGE_CLSID = "0003000C-0000-0000-C000-000000000046"
NATIVE_STREAM = "\x01Ole10Native"
MAX_STREAMS = 200


class NativeStream(NamedTuple):
    path: tuple[str, ...]       # storage names, then NATIVE_STREAM
    size: int                   # declared by the directory entry
    is_package: bool            # its storage's class is Package's (rule 1)

    @property
    def location(self) -> str:
        """The path as text to show: "ObjectPool/_1577691201/Ole10Native" (no control
        characters)."""
        return "/".join("".join(c for c in name if c >= " ") for name in self.path)


class Package(NamedTuple):
    names: tuple[str, ...]      # the label first (its Unicode form before the ANSI one),
                                # then the temporary (linked) and source paths; none empty,
                                # none twice
    start: int                  # where the content begins in the stream
    size: int                   # its declared size
    available: int              # how much of it the stream holds (rule 2)
    as_written: bool            # its fixed fields are as Packager writes them (2; 0, 3 or 1)
    link: bool = False          # a link to a file outside the document: no content

    def content(self, stream: bytes) -> bytes:
        return stream[self.start:self.start + self.available]


@contextmanager
def compound_file(data: bytes) -> Iterator:
    """The OLE2 compound file in `data`, open; ValueError when olefile cannot read it."""
    import olefile
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception as exc:            # olefile's own and struct/index errors alike
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    try:
        yield ole
    finally:
        ole.close()


def native_streams(ole) -> list[NativeStream]:
    """The Ole10Native streams of an open compound file, in directory order (rule 3)."""
    out = []
    try:
        for path in ole.listdir(streams=True, storages=False):
            if path[-1] != NATIVE_STREAM:
                continue
            storage = path[:-1]
            clsid = ole.getclsid(storage) if storage else ole.root.clsid
            out.append(NativeStream(tuple(path), ole.get_size(path), clsid == PACKAGE_CLSID))
            if len(out) >= MAX_STREAMS:
                break
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    return out


def read_stream(ole, stream: NativeStream, file_octets: int) -> bytes:
    """The stream's octets; ValueError when it declares more than the file of
    `file_octets` holds, or olefile cannot follow its chain (rule 3)."""
    if stream.size > file_octets:
        raise ValueError(f"{stream.location} declares {stream.size} octets, more than the "
                         f"file holds")
    try:
        with ole.openstream(list(stream.path)) as handle:
            return handle.read(stream.size)
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def parse_package(stream: bytes) -> Package:
    """The packaged file's names and content span (rule 2)."""
    reader = _Reader(stream)
    reader.take(4)                                  # total size
    kind = reader.take(2)                           # u16 2
    label = reader.ansi()
    source = reader.ansi()
    zero, package_type = struct.unpack("<HH", reader.take(4))
    if package_type == _LINK:
        temp = _linked_path(reader)
        start = size = available = 0
    elif package_type == _EMBEDDED:
        temp = reader.counted(1).split(b"\0", 1)[0]
        size = reader.u32()
        start = reader.at
        available = min(size, len(stream) - start)
        reader.at = start + available
    else:
        raise ValueError(f"Ole10Native package of unknown type {package_type}")
    unicode_forms = []                              # temporary path, label, source path
    if available == size:
        try:
            for _ in range(3):
                unicode_forms.append(reader.counted(2).decode("utf-16-le", "replace"))
        except ValueError:
            pass
    unicode_forms += [""] * (3 - len(unicode_forms))
    u_temp, u_label, u_source = (text.rstrip("\0") for text in unicode_forms)
    names = (u_label, name_text(label), u_temp, name_text(temp), u_source, name_text(source))
    return Package(tuple(dict.fromkeys(n for n in names if n)), start, size, available,
                   kind == b"\2\0" and zero == 0, package_type == _LINK)


_LINK, _EMBEDDED = 1, 3                             # the package's type (Layout)


def _linked_path(reader: _Reader) -> bytes:
    """A link's path, after the u16 that comes before it (Layout)."""
    head = reader.data[reader.at:reader.at + 2]
    if len(head) == 2 and head[0] < 0x20 and head[1] == 0:     # no path begins so
        reader.take(2)
    return reader.ansi()


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, octets: int) -> bytes:
        if self.at + octets > len(self.data):
            raise ValueError(f"Ole10Native stream ends at {len(self.data)} octets, inside "
                             f"its header")
        chunk = self.data[self.at:self.at + octets]
        self.at += octets
        return chunk

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def ansi(self) -> bytes:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise ValueError("Ole10Native stream ends inside a name")
        text, self.at = self.data[self.at:end], end + 1
        return text

    def counted(self, unit: int) -> bytes:
        """A u32 count of `unit`-octet units, then the units."""
        return self.take(self.u32() * unit)
