"""Helpers for the antivirus tests: corpus access, the shipped signatures, engines."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path

import pytest

from core.pipeline.decompose import decompose_bytes
from core.scan.builtin import BuiltinEngine
from shared.definitions import baseline
from shared.settings import defaults

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
SHIPPED = baseline("virus").path
# ClamAV test files that are executables wrapped by a PE packer the builtin engine does not
# unpack: clamd (which unpacks them) detects them with the same signature set.
CLAMD_ONLY = {
    "clam-aspack.exe", "clam-mew.exe", "clam-pespin.exe", "clam-petite.exe",
    "clam-upack.exe", "clam-wwpack.exe", "clam-yc.exe",
}
# ClamAV test files whose clam.exe only unpack.py's installer and script-compiler readers
# reach (core/scan/unpackers/installshield.py, autoit.py): tests/unit/scan/test_installers.py
INSTALLERS = (
    "clam_IScab_int.exe", "clam_ISmsi_ext.exe", "clam_ISmsi_int.exe",      # InstallShield
    "clam.ea05.exe", "clam.ea06.exe",                                      # AutoIt compiled
)


def corpus_or_skip() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS.resolve()}")
    return CORPUS


def manifest(*labels: str) -> list[Path]:
    root = corpus_or_skip()
    out = []
    for line in (root / "MANIFEST").read_text().splitlines():
        path, _sha, label = line.split("\t")
        if label in labels:
            out.append(root / path)
    return out


def settings(**changes) -> dict:
    values = defaults()
    values["routing.local"] = [{"match": "local.test"}]
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


@lru_cache(maxsize=1)
def shipped_engine() -> BuiltinEngine:
    return BuiltinEngine.from_directory(SHIPPED)


def as_attachment(name: str, data: bytes) -> bytes:
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: test\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            b"--XX\r\nContent-Type: application/octet-stream; name=\"" + name.encode()
            + b"\"\r\nContent-Disposition: attachment; filename=\"" + name.encode()
            + b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + b"--XX--\r\n")


def message_for(path: Path) -> bytes:
    data = path.read_bytes()
    return data if path.suffix in (".eml", ".mail") and path.parent.name == "eicar" \
        else as_attachment(path.name, data)


def view_of(raw: bytes, **changes):
    return decompose_bytes(raw, {"queue_id": "T", "sender": "a@outside.test",
                                 "recipients": ["user@local.test"]}, settings(**changes))


class MsbBits:
    """A writer for MSB-first bit streams, for hand-made compressed test data: `octets()` as
    ARJ stores them, `words()` as LZX stores them (16-bit little-endian words)."""

    def __init__(self):
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> "MsbBits":
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]
        return self

    def octets(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))

    def align(self) -> int:
        """Pad to a 16-bit boundary; the octets written so far."""
        self.bits += [0] * (-len(self.bits) % 16)
        return len(self.bits) // 8

    def words(self) -> bytes:
        self.align()
        raw = self.octets()
        return b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))


def arj_header(fixed: bytes, name: bytes) -> bytes:
    """An ARJ header block: `fixed` (the first-header fields), the name, an empty comment,
    its CRC-32 and no extended header."""
    basic = fixed + name + b"\0" + b"\0"
    return (b"\x60\xea" + struct.pack("<H", len(basic)) + basic
            + struct.pack("<I", zlib.crc32(basic)) + b"\0\0")


def zip_with_deflate64(members: dict[str, bytes], deflate64: Collection[str] = (),
                       bad_crc: Collection[str] = ()) -> bytes:
    """A zip holding `members` stored, but for those named in `deflate64`, compressed with
    Deflate64 (method 9), which zipfile refuses and the decomposer reads with the engines'
    reader (core/scan/unpackers/zipmethods.py); those named in `bad_crc` with a CRC-32 that
    does not match: members the decomposer marks unreadable, so the antivirus check has the
    engines scan the whole zip, where core/scan/unpack.py still reads a Deflate64 one (as
    "deflate64(crc mismatch)")."""
    import inflate64
    local, central = b"", b""
    for name, data in members.items():
        body, method = data, 0
        if name in deflate64:
            deflater = inflate64.Deflater()
            body, method = deflater.deflate(data) + deflater.flush(), 9
        crc = zlib.crc32(data) ^ (0xFFFFFFFF if name in bad_crc else 0)
        fields = struct.pack("<HHHHHIIIHH", 21, 0, method, 0, 0x21, crc,
                             len(body), len(data), len(name.encode()), 0)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHII", 0, 0, 0, 0, len(local)) + name.encode())
        local += b"PK\x03\x04" + fields + name.encode() + body
    return (local + central + b"PK\x05\x06"
            + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central),
                          len(local), 0))


def stored_arj(members: dict[str, bytes]) -> bytes:
    """An ARJ archive holding `members` stored (method 0), read by
    core/scan/unpackers/arj.py for the engines and the decomposer alike."""
    main = struct.pack("<BBBBBBBB", 30, 11, 1, 0, 0, 0, 2, 0) + bytes(22)
    out = arj_header(main, b"t.arj")
    for name, data in members.items():
        member = struct.pack("<BBBBBBBBIIIIHHH", 30, 11, 1, 0, 0, 0, 0, 0, 0, len(data),
                             len(data), zlib.crc32(data), 0, 0, 0)
        out += arj_header(member, name.encode()) + data
    return out + b"\x60\xea\0\0"


def with_vba_project(package: bytes, vba: bytes) -> bytes:
    """`package` with `vba` as xl/vbaProject.bin, wired as Excel wires it."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Default Extension="bin" ContentType='
                                    b'"application/vnd.ms-office.vbaProject"/></Types>')
            if name == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdVba" Type="'
                                    b'http://schemas.microsoft.com/office/2006/relationships/'
                                    b'vbaProject" Target="vbaProject.bin"/></Relationships>')
            z.writestr(name, data)
        z.writestr("xl/vbaProject.bin", vba)
    return out.getvalue()
