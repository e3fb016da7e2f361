"""Container readers: zip, tar, gzip, bzip2, xz, 7z (py7zr), rar (rarfile), TNEF (tnefparse);
and, with the antivirus engines' readers, cabinets, ARJ, cpio, ISO 9660 and SZDD
(engine_archives.py).

Every reader reads members through the walker's budget (limits.py), in chunks, so the
first byte over a limit stops it: declared sizes are checked before a member is opened,
and what comes out is charged as it comes. Readers never write to disk, but for rar.

Rules
    1. `expand(walker, part)` adds the container's members as parts (walker.add_member,
       which sniffs and expands them in turn) and marks `part.encrypted` when the container
       is password-protected; encrypted members are listed by name with no content.
    2. A container that cannot be read (corrupt, truncated, unsupported method) is a
       walker.error on that part (unprocessable); a bad member is an error on that member
       and the others are still read. LimitExceeded always propagates.
    3. rar content needs an external unpacking tool (unar, unrar, bsdtar or 7z: rarfile
       finds one). Without one the members are listed (names, sizes, encryption) and
       `part.expanded` is False, and an archive with members that are not encrypted is an
       error (unprocessable, SPEC §3: "cannot be expanded for scanning"): the builtin engine
       would see only compressed bytes, and RAR is a common carrier of malware. With one,
       rarfile writes the archive to a temporary file for the tool: in the scratch
       directory (`scan.temp_dir`, else tmp/ in the data home; the core passes it as
       SCRATCH_DIR_KEY in the worker's settings).
    4. Zip members compressed with Deflate64 or PKWARE implode, which zipfile refuses, are
       read by the engines' own reader (core/scan/unpackers/zipmethods.py), so such a
       member is a part like any other: its name meets the file-name rules and the
       engines scan it (before, it was "corrupt zip member: NotImplementedError" and the
       message held as unprocessable, even when an engine found the virus in it:
       content18 B2). A method no reader here knows is an error that names it
       ("unsupported compression method (PPMd)"), not a corrupt member (content18 C1).
    5. A zip whose members overlap (a member's local header lies inside the member before
       it: no zip tool writes that, it is how a zip bomb makes many members of one
       compressed kernel: Fifield, "A better zip bomb", 2019) is judged as the whole it
       is: the members' declared sizes together against the archive's own size, as
       container.max_ratio, before any member is read. Read member by member, each one's
       ratio looked ordinary and every member after the first failed to open ("File name
       in directory ... and header ... differ"): a thousand scan_errors and a hold instead
       of the container limit (content18 C4).
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib

from core.pipeline.decompose import engine_archives
from core.pipeline.decompose.limits import LimitExceeded
from core.scan.unpackers import zipmethods

__all__ = ["expand", "CHUNK_OCTETS", "NO_RAR_TOOL"]

CHUNK_OCTETS = 64 * 1024


def expand(walker, part) -> None:
    kind = part.true_type
    reader = _READERS[kind]
    part.container = kind
    walker.budget.check_depth(part.depth + 1, part.location + "/")
    try:
        reader(walker, part)
    except LimitExceeded:
        raise
    except MemoryError:
        raise
    except Exception as exc:        # rule 2: a container we cannot read
        walker.error(part, f"cannot read {kind} container: {type(exc).__name__}: {exc}"[:300])


# --- zip ---------------------------------------------------------------------------------

# Code pages the zip tools of non-English Windows write member names in. Without the UTF-8
# flag (bit 11) zipfile reads a name as CP437, the format's default, which is not what a
# reader on a Japanese or Russian system sees: 請求書.pdf came out as É┐ïüÅæ.pdf and met
# no pattern (i18n finding 5). The file-name rules match each reading too.
LEGACY_NAME_CODEPAGES = ("cp932", "cp936", "cp949", "cp950", "cp866", "cp1251", "cp850",
                         "cp1252")


def _legacy_names(info: zipfile.ZipInfo) -> list[str]:
    """The member's name as each legacy code page reads its bytes, when it has no UTF-8
    flag and is not ASCII."""
    if info.flag_bits & 0x800 or info.orig_filename.isascii():
        return []
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return []
    names = []
    for codepage in LEGACY_NAME_CODEPAGES:
        try:
            name = raw.decode(codepage)
        except UnicodeDecodeError:
            continue
        if name != info.filename and name not in names:
            names.append(name)
    return names


def _overlapping(data: bytes, infos: list[zipfile.ZipInfo]) -> bool:
    """Rule 5: does a member's local header begin inside the span (local header, name,
    extra field, compressed data) of the member before it?"""
    spans = sorted(infos, key=lambda info: info.header_offset)
    for this, after in zip(spans, spans[1:]):
        start = this.header_offset
        header = data[start:start + 30]
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            continue                        # zipfile reports a bad header when it is read
        name_octets, extra_octets = struct.unpack("<HH", header[26:30])
        if after.header_offset < start + 30 + name_octets + extra_octets + this.compress_size:
            return True
    return False


def _zip(walker, part) -> None:
    archive = zipfile.ZipFile(io.BytesIO(part.data))
    infos = archive.infolist()
    if len(infos) > 1 and _overlapping(part.data, infos):
        walker.budget.check_ratio(sum(info.file_size for info in infos), len(part.data),
                                  part.location)
    if any(info.flag_bits & 0x1 for info in infos):
        part.encrypted = True
    for info in infos:
        if info.is_dir():
            continue
        location = f"{part.location}/{info.filename}"
        also = _legacy_names(info)
        if info.flag_bits & 0x1:
            walker.add_member(part, info.filename, None, declared=info.file_size,
                              encrypted_member=True, other_names=also)
            continue
        walker.budget.check_declared(info.file_size, info.compress_size, location)
        try:
            data = _zip_member(walker, archive, part.data, info, location)
        except NotImplementedError:                     # rule 4
            reason = (f"unsupported compression method "
                      f"({zipmethods.method_name(info.compress_type)})")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, lzma.LZMAError,
                ValueError, RuntimeError) as exc:
            reason = f"corrupt zip member: {type(exc).__name__}: {exc}"
        else:
            walker.add_member(part, info.filename, data, other_names=also)
            continue
        member = walker.add_member(part, info.filename, b"", expand=False, other_names=also)
        walker.error(member, reason[:300])


def _zip_member(walker, archive: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo,
                location: str) -> bytes:
    """One member's bytes, read through the budget: by zipfile, or for the methods it
    refuses and the engines read (Deflate64, implode) by their reader (rule 4)."""
    if info.compress_type in zipmethods.READ_METHODS:
        stream = zipmethods.MemberReader(data, info.compress_type, info.flag_bits,
                                         info.header_offset, info.compress_size,
                                         info.file_size, info.CRC)
        return walker.read_limited(stream.read, location, info.compress_size)
    with archive.open(info) as stream:
        return walker.read_limited(stream.read, location, info.compress_size)


# --- tar ---------------------------------------------------------------------------------

def _tar(walker, part) -> None:
    with tarfile.open(fileobj=io.BytesIO(part.data), mode="r:") as archive:
        for member in archive:           # lazy: headers are read one at a time
            if not member.isfile():
                continue
            location = f"{part.location}/{member.name}"
            walker.budget.check_declared(member.size, member.size, location)
            stream = archive.extractfile(member)
            data = walker.read_limited(stream.read, location, max(member.size, 1))
            walker.add_member(part, member.name, data)


# --- single-stream compressors -------------------------------------------------------------

def _stream_name(part, suffixes: tuple[str, ...], header_name: str | None = None) -> str:
    if header_name:
        return header_name
    name = part.filename or "data"
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    if lower.endswith(".tgz") or lower.endswith(".tbz2") or lower.endswith(".txz"):
        return base.rsplit(".", 1)[0] + ".tar"
    for suffix in suffixes:
        if lower.endswith(suffix):
            return base[: -len(suffix)] or "data"
    return base + ".out"


def _gzip_name(data: bytes) -> str | None:
    """FNAME of the gzip header (RFC 1952 §2.3.1), if any."""
    if len(data) < 10 or not data[3] & 0x08:
        return None
    pos = 10
    if data[3] & 0x04:                       # FEXTRA
        if len(data) < 12:
            return None
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 1024)
    if end < 0:
        return None
    return data[pos:end].decode("latin-1").rsplit("/", 1)[-1] or None


def _decompress(walker, part, name: str, new_decompressor, is_zlib: bool) -> bytes:
    """Every stream of a multi-stream file, chunk by chunk under the budget; a limit hit is
    located at the member `name` will have ("part2/zeros_1GiB": content18 C3, where it
    read "part2/")."""
    location = f"{part.location}/{name}"
    out = bytearray()
    data = part.data
    total_in = len(data)
    while data:
        decomp = new_decompressor()
        if is_zlib:                  # zlib tells how much input it consumed: exact ratio
            consumed_before = total_in - len(data)
            chunk = decomp.decompress(data, CHUNK_OCTETS)
            while True:
                consumed = consumed_before + len(data) - len(decomp.unconsumed_tail)
                walker.take(out, chunk, location, max(consumed, 1))
                if decomp.eof or not (decomp.unconsumed_tail or chunk):
                    break
                chunk = decomp.decompress(decomp.unconsumed_tail, CHUNK_OCTETS)
            if not decomp.eof:
                raise EOFError("compressed stream ends early")
        else:
            chunk = decomp.decompress(data, CHUNK_OCTETS)
            while True:
                walker.take(out, chunk, location, total_in)
                if decomp.eof or (decomp.needs_input and not chunk):
                    break
                chunk = decomp.decompress(b"", CHUNK_OCTETS)
            if not decomp.eof:
                raise EOFError("compressed stream ends early")
        data = decomp.unused_data
        if data.strip(b"\x00") == b"":      # trailing padding
            break
    return bytes(out)


def _gz(walker, part) -> None:
    name = _stream_name(part, (".gz", ".gzip", ".z"), _gzip_name(part.data))
    data = _decompress(walker, part, name,
                       lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), True)
    walker.add_member(part, name, data)


def _bz2(walker, part) -> None:
    name = _stream_name(part, (".bz2", ".bz"))
    walker.add_member(part, name, _decompress(walker, part, name, bz2.BZ2Decompressor, False))


def _xz(walker, part) -> None:
    name = _stream_name(part, (".xz", ".lzma"))
    walker.add_member(part, name, _decompress(walker, part, name, lzma.LZMADecompressor,
                                              False))


# --- 7z ------------------------------------------------------------------------------------

def _7z(walker, part) -> None:
    import py7zr
    from py7zr.exceptions import PasswordRequired
    from py7zr.io import Py7zIO, WriterFactory

    try:
        archive = py7zr.SevenZipFile(io.BytesIO(part.data), mode="r")
    except PasswordRequired:
        part.encrypted = True                 # encrypted headers: even the names are hidden
        part.expanded = False
        return
    with archive:
        infos = [i for i in archive.list() if not i.is_directory]
        if archive.needs_password():
            part.encrypted = True
            for info in infos:
                walker.add_member(part, info.filename, None, declared=info.uncompressed,
                                  encrypted_member=True)
            return
        compressed_total = max(len(part.data), 1)
        for info in infos:
            walker.budget.check_declared(info.uncompressed, None,
                                         f"{part.location}/{info.filename}")
        outputs: dict[str, bytearray] = {}

        class _Sink(Py7zIO):
            def __init__(self, name: str):
                self.name, self.buf = name, bytearray()
                outputs[name] = self.buf

            def write(self, s):
                walker.take(self.buf, bytes(s), f"{part.location}/{self.name}",
                            compressed_total)
                return len(s)

            def read(self, size=None):
                return b""

            def seek(self, offset, whence=0):
                return 0

            def flush(self):
                return None

            def size(self):
                return len(self.buf)

        class _Factory(WriterFactory):
            def create(self, filename):
                return _Sink(filename)

        archive.extractall(factory=_Factory())
    for info in infos:
        walker.add_member(part, info.filename, bytes(outputs.get(info.filename, b"")))


# --- rar -----------------------------------------------------------------------------------

def _rar(walker, part) -> None:
    import rarfile

    rarfile.HACK_TMP_DIR = walker.scratch_dir      # rule 3 (a worker reads one at a time)
    try:
        archive = rarfile.RarFile(io.BytesIO(part.data))
    except rarfile.PasswordRequired:
        part.encrypted = True                  # encrypted headers
        part.expanded = False
        return
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if archive.needs_password() or any(i.needs_password() for i in infos):
            part.encrypted = True
        can_extract = _rar_tool_available()
        part.expanded = can_extract and not part.encrypted
        if not can_extract and any(not i.needs_password() for i in infos):
            walker.error(part, NO_RAR_TOOL)
        for info in infos:
            location = f"{part.location}/{info.filename}"
            if info.needs_password():
                walker.add_member(part, info.filename, None, declared=info.file_size,
                                  encrypted_member=True)
                continue
            walker.budget.check_declared(info.file_size, info.compress_size, location)
            if not can_extract:
                walker.add_member(part, info.filename, None, declared=info.file_size)
                continue
            with archive.open(info) as stream:
                data = walker.read_limited(stream.read, location, info.compress_size)
            walker.add_member(part, info.filename, data)


NO_RAR_TOOL = ("rar archive not expanded: no unpacking tool is installed "
               "(Debian: apt-get install unar)")


def _rar_tool_available() -> bool:
    import rarfile
    try:
        rarfile.tool_setup()
        return True
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:
        return False


# --- TNEF (winmail.dat) --------------------------------------------------------------------

def _tnef(walker, part) -> None:
    from tnefparse import TNEF

    tnef = TNEF(part.data)
    for attachment in tnef.attachments:
        try:
            name = attachment.long_filename() or attachment.name
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception:
            name = getattr(attachment, "name", None)
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        data = attachment.data or b""
        walker.budget.check_declared(len(data), None, f"{part.location}/{name}")
        walker.budget.charge(len(data), f"{part.location}/{name}")
        walker.add_member(part, str(name or "attachment").strip("\x00"), data)


_READERS = {"zip": _zip, "tar": _tar, "gz": _gz, "bz2": _bz2, "xz": _xz, "7z": _7z,
            "rar": _rar, "tnef": _tnef, **engine_archives.READERS}
