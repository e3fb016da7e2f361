"""OLE2 compound files and OLE "Package" objects for tests ([MS-CFB] version 3), since
olefile reads compound files but cannot make one.

    compound_file({"WordDocument": b"...", "ObjectPool/_1/\\x01Ole10Native": b"..."},
                  clsids={"ObjectPool/_1": PACKAGE_CLSID}) -> bytes
    ole10native("run.exe", b"MZ...") -> bytes            a Package object's stream
    word_document_with_package(label, content) -> bytes  a .doc carrying one package
    ole_object_bin(label, content) -> bytes              an OOXML embeddings/oleObject1.bin
    docx_with_ole_object(label, content) -> bytes        a .docx carrying that object

Streams under 4096 octets go to the mini stream, the others to sectors of 512; a storage's
children are chained through their right siblings in the order [MS-CFB] 2.6.4 compares
names (length, then upper case), which olefile, libclamav and Office read as a tree.
"""

from __future__ import annotations

import io
import struct
import uuid
import zipfile

__all__ = ["PACKAGE_CLSID", "compound_file", "ole10native", "word_document_with_package",
           "ole_object_bin", "docx_with_ole_object"]

PACKAGE_CLSID = "0003000C-0000-0000-C000-000000000046"
SECTOR, MINI, CUTOFF = 512, 64, 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


class _Entry:
    def __init__(self, name: str, kind: int, data: bytes = b"", clsid: str | None = None):
        self.name, self.kind, self.data, self.clsid = name, kind, data, clsid
        self.children: dict[str, _Entry] = {}
        self.start, self.size, self.id = END, len(data), 0
        self.right = self.child = NOSTREAM

    def record(self) -> bytes:
        if not self.kind:                               # an unused entry
            return bytes(64) + struct.pack("<HBBIII", 0, 0, 0, NOSTREAM, NOSTREAM,
                                           NOSTREAM) + bytes(16 + 4 + 16 + 4 + 8)
        name = self.name.encode("utf-16-le")[:62] + b"\0\0"
        clsid = uuid.UUID(self.clsid).bytes_le if self.clsid else bytes(16)
        return (name.ljust(64, b"\0") + struct.pack("<HBB", len(name), self.kind, 1)
                + struct.pack("<III", NOSTREAM, self.right, self.child) + clsid
                + bytes(4 + 16) + struct.pack("<IQ", self.start, self.size))


def compound_file(streams: dict[str, bytes], clsids: dict[str, str] | None = None) -> bytes:
    """A compound file holding `streams` (paths with "/" between storages), its storages'
    classes from `clsids` (path -> CLSID text; "" is the root)."""
    clsids = clsids or {}
    root = _Entry("Root Entry", 5, clsid=clsids.get(""))
    for path, data in streams.items():
        *storages, name = path.split("/")
        node = root
        for depth, storage in enumerate(storages):
            node = node.children.setdefault(storage, _Entry(
                storage, 1, clsid=clsids.get("/".join(storages[:depth + 1]))))
        node.children[name] = _Entry(name, 2, data)
    entries = [root]

    def number(node: _Entry) -> None:
        kids = sorted(node.children.values(), key=lambda e: (len(e.name), e.name.upper()))
        for kid in kids:
            kid.id = len(entries)
            entries.append(kid)
        if kids:
            node.child = kids[0].id
        for kid, after in zip(kids, kids[1:]):
            kid.right = after.id
        for kid in kids:
            number(kid)
    number(root)

    sectors: list[bytes] = []
    fat: list[int] = []

    def chain(data: bytes) -> int:
        if not data:
            return END
        first = len(sectors)
        count = -(-len(data) // SECTOR)
        for i in range(count):
            sectors.append(data[i * SECTOR:(i + 1) * SECTOR].ljust(SECTOR, b"\0"))
            fat.append(first + i + 1 if i + 1 < count else END)
        return first

    ministream, minifat = bytearray(), []
    for entry in entries[1:]:
        if entry.kind != 2 or not entry.data:
            continue
        if len(entry.data) >= CUTOFF:
            entry.start = chain(entry.data)
            continue
        first = len(ministream) // MINI
        count = -(-len(entry.data) // MINI)
        ministream += entry.data.ljust(count * MINI, b"\0")
        minifat += [first + i + 1 if i + 1 < count else END for i in range(count)]
        entry.start = first
    root.start, root.size = chain(bytes(ministream)), len(ministream)
    minifat += [FREE] * (-len(minifat) % (SECTOR // 4))
    minifat_start = chain(b"".join(struct.pack("<I", n) for n in minifat))
    while len(entries) % (SECTOR // 128):
        entries.append(_Entry("", 0))
    directory = b"".join(e.record() for e in entries)
    directory_start = chain(directory)
    fat_sectors = 1
    while fat_sectors * (SECTOR // 4) < len(sectors) + fat_sectors:
        fat_sectors += 1
    fat_start = len(sectors)
    fat += [FATSECT] * fat_sectors
    fat += [FREE] * (fat_sectors * (SECTOR // 4) - len(fat))
    table = b"".join(struct.pack("<I", n) for n in fat)
    for i in range(fat_sectors):
        sectors.append(table[i * SECTOR:(i + 1) * SECTOR])
    difat = [fat_start + i for i in range(fat_sectors)] + [FREE] * (109 - fat_sectors)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
              + struct.pack("<IIIIIIIII", 0, fat_sectors, directory_start, 0, CUTOFF,
                            minifat_start, len(minifat) * 4 // SECTOR, END, 0)
              + b"".join(struct.pack("<I", n) for n in difat))
    return header + b"".join(sectors)


def ole10native(label: str, content: bytes, *, source: str | None = None,
                temp: str | None = None, unicode: bool = True) -> bytes:
    """A Package object's \\x01Ole10Native stream as Packager writes it."""
    source = source if source is not None else f"C:\\Users\\user\\Documents\\{label}"
    temp = temp if temp is not None else f"C:\\Users\\user\\AppData\\Local\\Temp\\{label}"

    def ansi(text: str) -> bytes:
        return text.encode("cp1252", "replace") + b"\0"

    def wide(text: str) -> bytes:
        return struct.pack("<I", len(text)) + text.encode("utf-16-le")

    body = (struct.pack("<H", 2) + ansi(label) + ansi(source) + struct.pack("<HH", 0, 3)
            + struct.pack("<I", len(ansi(temp))) + ansi(temp)
            + struct.pack("<I", len(content)) + content)
    if unicode:
        body += wide(temp) + wide(label) + wide(source)
    return struct.pack("<I", len(body)) + body


def ole10native_link(label: str, path: str, *, source: str | None = None) -> bytes:
    """A Package object's \\x01Ole10Native stream for a link (Packager's "Create Link"), laid
    out as oletools' sample_with_lnk_to_calc.doc has it: no temporary path, no content."""
    body = (struct.pack("<H", 2) + label.encode("cp1252") + b"\0"
            + (source if source is not None else path).encode("cp1252") + b"\0"
            + struct.pack("<HHH", 0, 1, 1) + path.encode("cp1252") + b"\0")
    return struct.pack("<I", len(body)) + body


# [MS-OLEDS] 2.3.8 CompObjStream: header with the class, the user type, no clipboard format,
# the ProgID, the Unicode marker and three empty Unicode fields
_COMPOBJ = (struct.pack("<HHII", 1, 0xFFFE, 0x0A03, 0xFFFFFFFF)
            + uuid.UUID(PACKAGE_CLSID).bytes_le
            + struct.pack("<I", 12) + b"OLE Package\0" + struct.pack("<I", 0)
            + struct.pack("<I", 8) + b"Package\0" + struct.pack("<I", 0x71B239F4) + bytes(12))


def word_document_with_package(label: str, content: bytes, *, stream: bytes | None = None,
                               clsid: str = PACKAGE_CLSID) -> bytes:
    """A Word 97-2003 document (.doc) whose ObjectPool holds one package; `stream` replaces
    the Ole10Native stream (a damaged one)."""
    pool = "ObjectPool/_1577691201"
    native = stream if stream is not None else ole10native(label, content)
    return compound_file({"WordDocument": b"\xec\xa5" + bytes(1534), "1Table": bytes(512),
                          f"{pool}/\x01CompObj": _COMPOBJ,
                          f"{pool}/\x01Ole10Native": native},
                         clsids={pool: clsid})


def ole_object_bin(label: str, content: bytes, *, stream: bytes | None = None) -> bytes:
    """What Word writes as word/embeddings/oleObject1.bin for a package: the streams at the
    root, whose class is Package's."""
    native = stream if stream is not None else ole10native(label, content)
    return compound_file({"\x01CompObj": _COMPOBJ, "\x01Ole10Native": native},
                         clsids={"": PACKAGE_CLSID})


def docx_with_ole_object(label: str, content: bytes, *, stream: bytes | None = None) -> bytes:
    """A .docx whose document shows one embedded package (word/embeddings/oleObject1.bin)."""
    members = {
        "[Content_Types].xml":
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="bin" ContentType="application'
            '/vnd.openxmlformats-officedocument.oleObject"/><Default Extension="xml" '
            'ContentType="application/xml"/><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.'
            'document.main+xml"/></Types>',
        "word/document.xml":
            '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
            'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>See the '
            'attached object.</w:t></w:r></w:p></w:body></w:document>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
        archive.writestr("word/embeddings/oleObject1.bin",
                         ole_object_bin(label, content, stream=stream))
    return out.getvalue()
