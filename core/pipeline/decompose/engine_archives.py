"""Containers the decomposer opens with the antivirus engines' own readers
(core/scan/unpackers/): Microsoft cabinets, ARJ archives, cpio archives, ISO 9660 images and
MS-DOS COMPRESS (SZDD) files. One listing and reading per format serves both, as zipmethods.py
does for Deflate64 zip members (archives.py rule 4).

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
    4. CHM help files, SIS packages, InstallShield and NSIS setups and OLE2 streams are still
       left to the engines (core/scan/unpack.py): CHM names are matched by the container's
       own type (*.chm), a setup is an executable (*.exe).
"""

from __future__ import annotations

from core.scan.unpackers import CrcMismatch, arj, cpio, iso9660, szdd
from core.scan.unpackers import installshield

__all__ = ["READERS"]


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


READERS = {"cab": _cab, "arj": _arj, "cpio": _cpio, "iso": _iso, "szdd": _szdd}
