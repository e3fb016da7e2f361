"""True file type by content (magic bytes), pure Python (no libmagic).

`true_type(data)` returns an extension-like name ("exe", "zip", "pdf", ...) or None. Only
the first bytes are read (and offset 257 for tar, 0x8001 for ISO 9660; an ARJ archive's
main header and a cpio archive's first header are checked beyond their magic). The names are what
file-name and scan-policy rules compare with extensions, so they are extensions.
"""

from __future__ import annotations

from core.scan.unpackers import cpio

__all__ = ["true_type", "CONTAINER_TYPES"]

# (offset, magic, type) — first match wins; longer/more specific first.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),          # empty archive
    (0, b"PK\x07\x08", "zip"),          # spanned marker
    (0, b"\x1f\x8b", "gz"),
    (0, b"BZh", "bz2"),
    (0, b"\x78\x9f\x3e\x22", "tnef"),
    (0, b"%PDF-", "pdf"),
    (0, b"{\\rtf", "rtf"),
    (0, b"MSCF", "cab"),
    (0, b"ITSF", "chm"),
    (0, b"L\x00\x00\x00\x01\x14\x02\x00", "lnk"),
    (0, b"\x7fELF", "elf"),
    (0, b"\xca\xfe\xba\xbe", "class"),
    (0, b"\xcf\xfa\xed\xfe", "macho"),
    (0, b"\xfe\xed\xfa\xce", "macho"),
    (0, b"MZ", "exe"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpg"),
    (0, b"xar!", "xar"),
    (0, b"SZDD\x88\xf0\x27\x33", "szdd"),
    (257, b"ustar", "tar"),
    (0x8001, b"CD001", "iso"),
)

# Types the decomposer opens (decompose/archives.py; the last five with the engines' readers,
# decompose/engine_archives.py). An "ole" document is not one of them: it is scanned whole,
# and its packaged files are added by engine_archives.ole_objects (its rule 5).
CONTAINER_TYPES = frozenset({"zip", "tar", "gz", "bz2", "xz", "7z", "rar", "tnef",
                             "cab", "arj", "cpio", "iso", "szdd"})
ARJ_MAGIC = b"\x60\xea"


def true_type(data: bytes) -> str | None:
    for offset, magic, name in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return name
    if data[:2] == ARJ_MAGIC and _is_arj_main_header(data):
        return "arj"
    if cpio.is_cpio(data):             # its magic is six digits, or two octets: the header too
        return "cpio"
    head = data[:1024]
    if b"%PDF-" in head:            # PDF allows junk before the header
        return "pdf"
    return None


def _is_arj_main_header(data: bytes) -> bool:
    """Two magic octets are too few: the main header's size must be one ARJ writes (the
    fixed fields, at least 30 octets, up to unarj.c's HEADERSIZE_MAX) and its file type 2."""
    size = int.from_bytes(data[2:4], "little")
    return 30 <= size <= 2600 and len(data) > 10 and data[10] == 2
