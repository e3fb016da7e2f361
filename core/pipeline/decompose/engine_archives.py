"""Containers the decomposer opens with the antivirus engines' own readers
(core/scan/unpackers/): Microsoft cabinets, ARJ archives, cpio archives, ISO 9660 images,
MS-DOS COMPRESS (SZDD) files, and the files packaged in OLE2 documents (rule 5). One listing
and reading per format serves both, as zipmethods.py does for Deflate64 zip members
(archives.py rule 4).

Before, only the engines looked into these: the antivirus saw their contents but the
file-name policy never saw their names, so a `setup.exe` in a .cab or .cpio was delivered
(content18 B3; SPEC §3 filename.patterns: "matched against attachment names at every level,
inside archives too").

Rules
    1. Members are parts like a zip's (archives.py rule 1, walker.add_member): their names
       meet the file-name rules, their true types are sniffed, the engines scan them (and
       not the container whole, as for any container the decomposer expanded), a container
       inside one is expanded in turn, and removing a member removes the attachment that
       carries it.
    2. Every octet goes through the walker's budget (limits.py): a member's declared size
       is checked before it is read; a compressed member (ARJ, SZDD) is decoded at most to
       what the budget has left or to just past what container.max_ratio allows for its
       compressed size, so a bomb stops right where its limit is hit; a stored member
       (cpio, ISO) is a slice of the container, charged like any part. A cabinet's folder is
       one compressed stream, as a .tar.gz's gzip stream is: charged as it comes out and
       checked as one file (container.max_file_mb, and container.max_ratio against the
       cabinet's size); its files are then charged again as parts, as tar members inside a
       gzip are — files that overlap in a folder cannot multiply what was decoded for free.
    3. Password-protected (garbled) ARJ members are listed by name without content and the
       archive is marked encrypted (the encrypted-container check). A member that cannot be
       read — a method no reader here knows (a Quantum cabinet folder), damaged data, a
       CRC-32 that does not match, a file continued in another volume — is an error on that
       member (unprocessable, SPEC §3), its name still matched and what decoded still
       scanned; the others are read. Damage that ends the walk is an error on the container,
       after the members before it, and so is an ISO image read only up to its reader's
       bounds (iso9660.py rule 4). LimitExceeded always propagates.
    4. CHM help files, SIS packages, InstallShield and NSIS setups are still left to the
       engines (core/scan/unpack.py): CHM names are matched by the container's own type
       (*.chm), a setup is an executable (*.exe).
    5. An OLE2 compound file (a .doc, .xls, .ppt, .msg, .msi; an OOXML file's
       embeddings/oleObject1.bin, a zip member already) is opened by `ole_objects`, not by
       archives.expand: its OLE "Package" objects (unpackers/ole10native.py) are files of
       their own, named by their label, with their temporary and source paths as other
       names (a `run.exe` shown as "invoice.pdf" meets *.exe: the temporary path's name is
       what runs). Before, only the engines saw them, so `*.exe` never met an .exe packaged
       in a Word document (fixer19 F2). The document is more than its packages (its text,
       its macros, its other objects), so it is scanned whole as well: `expanded` stays
       False, as for a container scanned whole (antivirus `_scannable`, scan_policy), and
       what its scan finds in a package is left to the package's part (antivirus
       `_one_per_file`). A document without packages is no container and adds no depth.
       A package that is a link (an icon opening a file outside the document) is a member
       with names and no content: its label and linked path meet the file-name rules, as
       the path it opens decides what runs; there is nothing to scan (fixer19 F15: a link
       read as damage, so its document was unprocessable and `calc.exe` never matched).
       A compound file olefile cannot read, a stream of a Package object that does not
       read as one, or one longer than the file, is an error on the document
       (unprocessable, SPEC §3); a package whose content is cut short is a member with what
       there is and an error on it. Ole10Native streams of other classes that do not read
       as Packager writes them are other OLE 1.0 servers' data, left to the engines.
       Removing a package removes the attachment that carries the document (a compound
       file is not rewritten, as no archive is).
"""

from __future__ import annotations

from core.scan.unpackers import CrcMismatch, arj, cpio, iso9660, ole10native, szdd
from core.scan.unpackers import installshield

__all__ = ["READERS", "ole_objects"]


def _keep(walker, part, name: str, data, packed: int | None, other_names=()) -> object:
    """Charge a member's bytes as the walker charges any decoded stream (rule 2; a stored
    member is its own `packed`) and add it as a part."""
    walker.take(bytearray(), data, f"{part.location}/{name}",
                len(data) if packed is None else packed)
    return walker.add_member(part, name, bytes(data), other_names=list(other_names))


def _unreadable(walker, part, name: str, kind: str, reason: str) -> None:
    member = walker.add_member(part, name, b"", expand=False)
    walker.error(member, f"cannot read {kind} member: {reason}"[:300])


def _listed(walker, part, items):
    """The items of a listing; damage that ends it is an error on the container (rule 3)."""
    try:
        yield from items
    except ValueError as exc:
        walker.error(part, f"cannot read {part.container} container: {exc}"[:300])


def _stored(walker, part, name: str, offset: int, size: int, other_names=()) -> None:
    walker.budget.check_declared(size, size, f"{part.location}/{name}")
    _keep(walker, part, name, memoryview(part.data)[offset:offset + size], None, other_names)


# --- formats ---------------------------------------------------------------------------------

def _cpio(walker, part) -> None:
    for item in _listed(walker, part, cpio.cpio_files(part.data)):
        _stored(walker, part, item.name, item.offset, item.size)


def _iso(walker, part) -> None:
    for item in _listed(walker, part, iso9660.iso_files(part.data)):
        _stored(walker, part, item.name, item.offset, item.size, item.other_names)


def _arj(walker, part) -> None:
    for item in _listed(walker, part, arj.arj_files(part.data)):
        if item.is_encrypted:
            part.encrypted = True
            walker.add_member(part, item.name, None, declared=item.size,
                              encrypted_member=True)
            continue
        if item.problem:
            _unreadable(walker, part, item.name, "arj", item.problem)
            continue
        walker.budget.check_declared(item.size, item.packed, f"{part.location}/{item.name}")
        decoded = bytearray()
        try:
            data = arj.arj_read(item, walker.budget.room(item.packed), decoded)
        except ValueError as exc:
            data, damage = bytes(decoded[:item.size]), f"damaged data: {exc}"
        else:
            damage = "CRC-32 mismatch" if isinstance(data, CrcMismatch) else ""
        member = _keep(walker, part, item.name, data, item.packed)
        if damage:
            walker.error(member, f"cannot read arj member: {damage}")


def _szdd(walker, part) -> None:
    name = szdd.expanded_name(part.filename or "", part.data)
    size = szdd.declared_size(part.data)
    walker.budget.check_declared(size, len(part.data), f"{part.location}/{name}")
    data = szdd.szdd(part.data, walker.budget.room(len(part.data)))
    member = _keep(walker, part, name, data, len(part.data))
    if len(data) < size:
        walker.error(member, f"cannot read szdd member: data ends after {len(data)} of "
                             f"{size} octets")


def _cab(walker, part) -> None:
    layout = installshield.cabinet_layout(part.data)
    folders: dict[int, tuple[bytes, str]] = {}
    walk = [len(part.data)]                 # installshield.py rule 2, for all folders
    for item in layout.files:
        location = f"{part.location}/{item.name}"
        walker.budget.check_declared(item.size, None, location)
        if item.folder >= len(layout.folders):
            _unreadable(walker, part, item.name, "cab", "continued in another cabinet")
            continue
        if item.folder not in folders:
            folders[item.folder] = _cab_folder(walker, part, layout, item.folder, walk,
                                               location)
        folder, damage = folders[item.folder]
        data = folder[item.offset:item.offset + item.size]
        if len(data) == item.size:
            _keep(walker, part, item.name, data, None)
        elif not data:
            _unreadable(walker, part, item.name, "cab", damage or "not in its folder")
        else:
            member = _keep(walker, part, item.name, data, None)
            walker.error(member, f"cannot read cab member: {damage or 'folder ends early'}")


def _cab_folder(walker, part, layout, index: int, walk: list[int],
                location: str) -> tuple[bytes, str]:
    """(the folder's bytes, why they stop early: "" when they do not), charged as one
    compressed stream (rule 2)."""
    out = bytearray()
    try:
        for chunk in installshield.folder_chunks(part.data, layout, index, walk):
            walker.take(out, chunk, location, len(part.data))
    except ValueError as exc:
        return bytes(out), str(exc)
    return bytes(out), ""


def ole_objects(walker, part) -> None:
    """The packaged files of an OLE2 compound file (rule 5)."""
    try:
        with ole10native.compound_file(part.data) as ole:
            streams = ole10native.native_streams(ole)
            if streams:
                part.container, part.expanded = "ole", False
                walker.budget.check_depth(part.depth + 1, part.location + "/")
            for stream in streams:
                try:
                    _ole_package(walker, part, ole, stream)
                except ValueError as exc:       # this stream only: the others are read
                    walker.error(part, f"cannot read ole package {stream.location}: "
                                       f"{exc}"[:300])
    except ValueError as exc:
        walker.error(part, f"cannot read ole container: {exc}"[:300])


def _ole_package(walker, part, ole, stream) -> None:
    walker.budget.check_declared(stream.size, stream.size, f"{part.location}/{stream.location}")
    raw = ole10native.read_stream(ole, stream, len(part.data))
    try:
        package = ole10native.parse_package(raw)
    except ValueError:
        if stream.is_package:
            raise
        return
    whole = package.available == package.size
    if not stream.is_package and not (package.as_written and whole):
        return
    name, *others = package.names or (stream.location,)
    if package.link:                    # names only: the file it opens is not in the mail
        walker.add_member(part, name, None, other_names=others)
        return
    member = _keep(walker, part, name, package.content(raw), None, others)
    if not whole:
        walker.error(member, f"cannot read ole member: data ends after {package.available} "
                             f"of {package.size} octets")


READERS = {"cab": _cab, "arj": _arj, "cpio": _cpio, "iso": _iso, "szdd": _szdd}
