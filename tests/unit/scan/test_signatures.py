"""The ClamAV signature subset (core/scan/signatures.py) and the matcher (matcher.py):
every documented construct, offsets, target types, hash signatures, many signatures."""

from __future__ import annotations

import hashlib
import os
import random
import struct

import pytest

from core.scan.builtin import BuiltinEngine
from core.scan.signatures import (SignatureError, SignatureSet, load_files, parse_hash_line,
                                  parse_ndb_line)


def engine(*ndb_lines, hashes=()):
    sigs = SignatureSet()
    for line in ndb_lines:
        sig = parse_ndb_line(line, "test")
        assert sig is not None, line
        sigs.body.append(sig)
    for line in hashes:
        sigs.hashes.append(parse_hash_line(line, "hsb"))
    return BuiltinEngine(sigs)


def hit(eng, data, hint=None):
    found = eng.scan_buffer(data, hint)
    return found.name if found else None


PAD = os.urandom(3000)


@pytest.mark.parametrize("sig, present, absent", [
    ("0011223344556677", b"\x00\x11\x22\x33\x44\x55\x66\x77", b"\x00\x11\x22\x33\x44\x55\x66\x78"),
    ("00112233??55667788", b"\x00\x11\x22\x33\xAA\x55\x66\x77\x88", b"\x00\x11\x22\x33\x55\x66\x77\x88"),
    ("001122334?55667788", b"\x00\x11\x22\x33\x4f\x55\x66\x77\x88", b"\x00\x11\x22\x33\x5f\x55\x66\x77\x88"),
    ("00112233?f55667788", b"\x00\x11\x22\x33\x3f\x55\x66\x77\x88", b"\x00\x11\x22\x33\x3e\x55\x66\x77\x88"),
    ("0011223344*aabbccdd", b"\x00\x11\x22\x33\x44" + b"z" * 500 + b"\xaa\xbb\xcc\xdd", b"\xaa\xbb\xcc\xdd\x00\x11\x22\x33\x44"),
    ("0011223344{2}aabbcc", b"\x00\x11\x22\x33\x44zz\xaa\xbb\xcc", b"\x00\x11\x22\x33\x44zzz\xaa\xbb\xcc"),
    ("0011223344{-2}aabbcc", b"\x00\x11\x22\x33\x44z\xaa\xbb\xcc", b"\x00\x11\x22\x33\x44zzz\xaa\xbb\xcc"),
    ("0011223344{3-}aabbcc", b"\x00\x11\x22\x33\x44" + b"z" * 40 + b"\xaa\xbb\xcc", b"\x00\x11\x22\x33\x44zz\xaa\xbb\xcc"),
    ("0011223344{1-3}aabbcc", b"\x00\x11\x22\x33\x44zzz\xaa\xbb\xcc", b"\x00\x11\x22\x33\x44zzzz\xaa\xbb\xcc"),
    ("0011223344[1-2]aabbcc", b"\x00\x11\x22\x33\x44zz\xaa\xbb\xcc", b"\x00\x11\x22\x33\x44\xaa\xbb\xcc"),
    ("0011223344(aa|bbcc|dd)eeff", b"\x00\x11\x22\x33\x44\xbb\xcc\xee\xff", b"\x00\x11\x22\x33\x44\xcc\xee\xff"),
    ("0011223344!(aa|bb)eeff", b"\x00\x11\x22\x33\x44\xcc\xee\xff", b"\x00\x11\x22\x33\x44\xaa\xee\xff"),
])
def test_body_signature_constructs(sig, present, absent):
    eng = engine(f"T.Sig:0:*:{sig}")
    assert hit(eng, PAD + present + PAD) == "T.Sig"
    assert hit(eng, PAD + absent + PAD) is None


def test_offsets_absolute_floating_and_eof():
    pattern = "deadbeefcafebabe"
    needle = bytes.fromhex(pattern)
    data = b"A" * 100 + needle + b"B" * 100
    assert hit(engine(f"T.Abs:0:100:{pattern}"), data) == "T.Abs"
    assert hit(engine(f"T.Abs:0:99:{pattern}"), data) is None
    assert hit(engine(f"T.Float:0:95,10:{pattern}"), data) == "T.Float"
    assert hit(engine(f"T.Float:0:80,10:{pattern}"), data) is None
    assert hit(engine(f"T.Eof:0:EOF-108:{pattern}"), data) == "T.Eof"
    assert hit(engine(f"T.Eof:0:EOF-50:{pattern}"), data) is None


def _pe(entry_code: bytes) -> bytes:
    """A minimal PE: one section at file offset 0x200 (RVA 0x1000), entry at its start."""
    mz = b"MZ" + b"\0" * 0x3a + struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14c, 1, 0, 0, 0, 0xe0, 0x102)
    optional = bytearray(0xe0)
    struct.pack_into("<H", optional, 0, 0x10b)
    struct.pack_into("<I", optional, 16, 0x1000)         # AddressOfEntryPoint
    section = b".text\0\0\0" + struct.pack("<IIII", 0x1000, 0x1000, 0x200, 0x200) + b"\0" * 16
    head = mz + coff + bytes(optional) + section
    head = head + b"\0" * (0x200 - len(head))
    return head + entry_code + b"\0" * (0x200 - len(entry_code))


def test_pe_entry_point_and_section_offsets_and_target_type():
    code = bytes.fromhex("5589e583ec08c7042401000000")
    exe = _pe(code)
    assert hit(engine("T.Ep:1:EP+0:5589e583ec08c70424"), exe) == "T.Ep"
    assert hit(engine("T.Ep:1:EP+1:5589e583ec08c70424"), exe) is None
    assert hit(engine("T.S0:1:S0+0:5589e583ec08c70424"), exe) == "T.S0"
    assert hit(engine("T.SL:1:SL+0:5589e583ec08c70424"), exe) == "T.SL"
    assert hit(engine("T.SE:1:SE0:83ec08c7042401"), exe) == "T.SE"
    # target type 1 (PE) does not match the same bytes outside a PE
    assert hit(engine("T.PeOnly:1:*:5589e583ec08c70424"), PAD + code) is None
    assert hit(engine("T.Any:0:*:5589e583ec08c70424"), PAD + code) == "T.Any"


def test_html_and_text_targets_are_normalised():
    eng = engine("T.Html:3:*:" + b"<script>evil(1)</script>".hex())
    assert hit(eng, b"<html><SCRIPT>Evil(1)</SCRIPT></html>", "text/html") == "T.Html"
    assert hit(engine("T.Raw:0:*:" + b"<script>evil(1)</script>".hex()),
               b"<html><SCRIPT>Evil(1)</SCRIPT></html>") is None     # raw: no normalising


def test_hash_signatures_md5_sha1_sha256_and_any_size():
    data = os.urandom(777)
    md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    sigs = SignatureSet(hashes=[parse_hash_line(f"{md5}:777:T.Md5", "hdb")])
    assert BuiltinEngine(sigs).scan_buffer(data).name == "T.Md5"
    sigs = SignatureSet(hashes=[parse_hash_line(f"{md5}:778:T.Md5", "hdb")])
    assert BuiltinEngine(sigs).scan_buffer(data) is None
    sigs = SignatureSet(hashes=[parse_hash_line(f"{sha256}:*:T.Sha", "hsb")])
    assert BuiltinEngine(sigs).scan_buffer(data).name == "T.Sha"
    sha1 = hashlib.sha1(data).hexdigest()
    sigs = SignatureSet(hashes=[parse_hash_line(f"{sha1}:777:T.Sha1", "hsb")])
    assert BuiltinEngine(sigs).scan_buffer(data).name == "T.Sha1"


@pytest.mark.parametrize("line", ["T:0:*:0g11", "T:0:*:*0011", "T:x:*:001122", "T:0:*:00{5-2}11",
                                  "T:0:ZZ:001122", "T:0:*:00!(aa|bbcc)11", "T:0:*"])
def test_bad_lines_raise(line):
    with pytest.raises(SignatureError):
        parse_ndb_line(line)


def test_unsupported_signatures_are_skipped_not_fatal(tmp_path):
    (tmp_path / "a.ndb").write_text(
        "# comment\nOk.One:0:*:0011223344556677\nNew.Target:13:*:0011223344\n"
        "Anchor:0:*:00112233(B)4455\nHigh.Flevel:0:*:0011223344:999\nBroken:0:*:0g\n")
    (tmp_path / "b.hdb").write_text(f"{hashlib.md5(b'x').hexdigest()}:1:Ok.Hash\nbad line\n")
    (tmp_path / "c.ldb").write_text("ignored\n")
    sigs = load_files(tmp_path.iterdir())
    assert [s.name for s in sigs.body] == ["Ok.One"] and [h.name for h in sigs.hashes] == ["Ok.Hash"]
    assert sigs.skipped == 5 and len(sigs.errors) == 2


def test_signature_across_filter_chunk_border():
    from core.scan import matcher
    needle = os.urandom(24)
    eng = engine(f"T.Border:0:*:{needle.hex()}")
    data = b"\0" * (matcher.CHUNK_OCTETS - 10) + needle + b"\0" * 100
    assert hit(eng, data) == "T.Border"


def test_many_random_signatures_each_found_and_no_false_positive():
    rnd = random.Random(5)
    lines, needles = [], []
    for i in range(3000):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(5, 40)))
        needles.append(body)
        lines.append(f"R.{i}:0:*:{body.hex()}")
    eng = engine(*lines)
    clean = os.urandom(200_000)
    assert hit(eng, clean) is None or hit(eng, clean).startswith("R.")   # 5-byte sigs may occur
    for i in rnd.sample(range(3000), 50):
        data = os.urandom(5000) + needles[i] + os.urandom(5000)
        assert hit(eng, data) is not None


def test_upx_unpacker_reaches_the_program_inside():
    from core.scan.upx import unpack_upx
    from tests.unit.scan.support import corpus_or_skip
    packed = (corpus_or_skip() / "clamav-testfiles" / "clam-upx.exe").read_bytes()
    stub = bytes.fromhex("bb7110400033c050508bf3535350b029403004")
    assert stub not in packed
    [unpacked] = unpack_upx(packed)
    assert stub in unpacked
    assert unpack_upx(b"MZ" + b"\0" * 100) == []
