"""Zip members compressed with Deflate64 or PKWARE implode are read by the decomposer with the
engines' own reader (core/scan/unpackers/zipmethods.py; archives.py rule 4; content18 B2, C1).

Before, such a member was "corrupt zip member: NotImplementedError: That compression method
is not supported": unprocessable, so clam.d64.zip was held (cannot scan) although the
builtin engine found the virus in it, and every clean Deflate64 zip was held too.
"""

import struct
import zlib

import pytest

from core.scan import unpack
from core.scan.unpackers import zipmethods
from tests.unit.pipeline.support import CORPUS, verdict_of, view_of
from tests.unit.scan.support import as_attachment, zip_with_deflate64

CLAMAV = CORPUS / "clamav-testfiles"
EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200


def _corpus(name: str) -> bytes:
    path = CLAMAV / name
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    return path.read_bytes()


@pytest.mark.parametrize("name,member", [("clam.d64.zip", "clam.exe"),
                                         ("clam.impl.zip", "CLAM.EXE")])
def test_the_clamav_test_zips_are_read_and_the_infected_member_removed(name, member):
    view, findings, verdict = verdict_of(as_attachment(name, _corpus(name)))
    assert view.errors == []
    assert [p.filename for p in view.parts if p.origin == "archive"] == [member]
    assert [(f.event, f.data["file"]) for f in findings] == [("file_deleted", member)]
    assert verdict.disposition == "deliver"


def test_a_clean_deflate64_zip_is_delivered_and_its_names_meet_the_file_name_rules():
    data = zip_with_deflate64({"notes.txt": b"hello " * 2000, "setup.exe": EXE},
                              {"notes.txt", "setup.exe"})
    view, findings, verdict = verdict_of(as_attachment("bundle.zip", data),
                                         filename__enabled=True)
    assert view.errors == []
    assert [(p.filename, p.data) for p in view.parts if p.origin == "archive"] == [
        ("notes.txt", b"hello " * 2000), ("setup.exe", EXE)]
    assert [(f.event, f.data["file"]) for f in findings] == [
        ("attachment_deleted", "setup.exe")]
    assert verdict.disposition == "deliver"
    _, findings, verdict = verdict_of(as_attachment("bundle.zip", zip_with_deflate64(
        {"notes.txt": b"hello"}, {"notes.txt"})))
    assert findings == [] and verdict.disposition == "deliver"


def test_a_deflate64_member_with_a_bad_crc_is_a_corrupt_member():
    data = zip_with_deflate64({"a.txt": b"x" * 100}, {"a.txt"}, bad_crc={"a.txt"})
    view = view_of(as_attachment("bundle.zip", data))
    assert [e.reason for e in view.errors] == ["corrupt zip member: CrcError: Bad CRC-32"]


def _with_method(data: bytes, method: int) -> bytes:
    """`data` (a zip of stored members) with every member's method field set to `method`."""
    out = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        found = out.find(signature)
        while found >= 0:
            struct.pack_into("<H", out, found + at, method)
            found = out.find(signature, found + 4)
    return bytes(out)


def test_a_method_no_reader_knows_is_named_not_called_corrupt():
    data = _with_method(zip_with_deflate64({"a.txt": b"hello"}), 98)
    view = view_of(as_attachment("bundle.zip", data))
    assert [e.reason for e in view.errors] == ["unsupported compression method (PPMd)"]


def test_a_deflate64_bomb_meets_the_container_limits():
    bomb = zip_with_deflate64({"zeros.bin": bytes(20 * 2**20)}, {"zeros.bin"})
    view = view_of(as_attachment("bomb.zip", bomb))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_ratio"


def _member_declaring(size: int, data: bytes) -> tuple[bytes, int]:
    """A zip whose one Deflate64 member holds `data` but declares `size` octets."""
    zipped = bytearray(zip_with_deflate64({"m.bin": data}, {"m.bin"}))
    struct.pack_into("<I", zipped, 22, size)                          # local header
    central = zipped.find(b"PK\x01\x02")
    struct.pack_into("<I", zipped, central + 24, size)
    return bytes(zipped), central


def test_the_reader_stops_at_the_declared_size_whatever_the_stream_holds():
    zipped, _ = _member_declaring(1000, bytes(8 * 2**20))
    compressed, = struct.unpack_from("<I", zipped, 18)
    reader = zipmethods.MemberReader(zipped, 9, 0, 0, compressed, 1000, zlib.crc32(bytes(1000)))
    chunks = []
    while chunk := reader.read():
        chunks.append(chunk)
    assert b"".join(chunks) == bytes(1000)
    # one chunk is bounded however far the stream runs (rule 2)
    reader = zipmethods.MemberReader(zipped, 9, 0, 0, compressed, None, None, limit=2**30)
    assert 0 < len(reader.read()) <= 8 * 2**20


def test_the_engines_deflate64_unpacker_stops_at_its_limit():
    # the engines' reader used to inflate a member whole before cutting it
    zipped = zip_with_deflate64({"zeros.bin": bytes(16 * 2**20)}, {"zeros.bin"})
    [item] = unpack._deflate64_members(zipped, 2**20)
    assert item == bytes(2**20)
