"""ARJ, PKWARE implode and CHM/LZX decompression (core/scan/unpackers/arj.py, implode.py,
lzx.py, chm.py): the ClamAV test files yield clam.exe itself and the builtin engine finds it
there — also when a CRC-32 was tampered with; every ARJ method, both implode options and each
LZX block type decode; damaged input only ever raises ValueError, quickly, and never hides the
members around it; output stays within the limits the budget sets."""

from __future__ import annotations

import base64
import random
import struct
import time
import zlib

import pytest

from core.scan.unpack import Budget, expand
from core.scan.unpackers import CrcMismatch, arj, chm, implode, lzx
from tests.unit.scan.support import (MsbBits, arj_header, corpus_or_skip, shipped_engine,
                                     stored_arj)
from tests.support.mail import EICAR

CLAMAV = "clamav-testfiles"
LIMIT_OCTETS = 32 * 2**20
SECONDS_PER_CALL = 2.0
DECODERS = {
    "clam.arj": arj.arj_members,
    "clam.impl.zip": implode.imploded_members,
    "clam.chm": chm.chm_files,
}


def _corpus_file(name: str) -> bytes:
    path = corpus_or_skip() / CLAMAV / name
    if not path.is_file():
        pytest.skip(f"ClamAV test file {name} not in the shared corpus ({path})")
    return path.read_bytes()


# --- the ClamAV test files -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DECODERS))
def test_clamav_test_file_decompresses_to_clam_exe(name):
    items = DECODERS[name](_corpus_file(name), LIMIT_OCTETS)
    assert _corpus_file("clam.exe") in items


@pytest.mark.parametrize("name, label", [("clam.arj", "arj"), ("clam.impl.zip", "implode"),
                                         ("clam.chm", "chm")])
def test_expand_yields_clam_exe(name, label):
    found = [(where, item) for where, item in expand(_corpus_file(name))
             if item == _corpus_file("clam.exe")]
    assert found and found[0][0].startswith(label)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_builtin_engine_finds_clam_exe_in_the_decompressed_output(name):
    found = shipped_engine().scan(_corpus_file(name))
    assert found is not None and found.name == "Mailmoat.Test.ClamAV-TestFile"
    assert found.where.split("[")[0] in ("arj", "implode", "chm")


def test_shipped_signatures_do_not_match_the_compressed_streams():
    # Regression for the removed .ARJ/.Implode/.CHM signatures: detection must come from the
    # decompressed clam.exe, so a re-packed archive is found too.
    engine = shipped_engine()
    for name in DECODERS:
        assert engine.scan_buffer(_corpus_file(name)) is None, name


# --- a tampered CRC-32 does not hide clam.exe ------------------------------------------------

def _arj_first_member_header(data: bytes) -> tuple[int, int]:
    """(offset of the first file's basic header, its size) in an ARJ archive at offset 0."""
    main_size, = struct.unpack_from("<H", data, 2)
    at = 4 + main_size + 4
    while True:                                 # the main header's extended headers
        extended, = struct.unpack_from("<H", data, at)
        at += 2
        if extended == 0:
            break
        at += extended + 4
    assert data[at:at + 2] == arj.ARJ_MAGIC
    size, = struct.unpack_from("<H", data, at + 2)
    return at + 4, size


def _clam_arj_with_bad_crc(*, fix_header_crc: bool) -> bytes:
    """clam.arj with the file CRC-32 in clam.exe's header flipped; the header's own CRC-32
    left as it was (so it no longer matches) or recomputed, as an attacker would."""
    data = bytearray(_corpus_file("clam.arj"))
    basic, size = _arj_first_member_header(bytes(data))
    data[basic + 20] ^= 0xFF                    # file CRC: basic header offset 20
    if fix_header_crc:
        struct.pack_into("<I", data, basic + size, zlib.crc32(data[basic:basic + size]))
    return bytes(data)


def _clam_impl_zip_with_bad_crc(*, local: bool = True, central: bool = True) -> bytes:
    data = bytearray(_corpus_file("clam.impl.zip"))
    if local:
        data[14] ^= 0xFF                        # local header CRC-32
    if central:
        data[data.index(b"PK\x01\x02") + 16] ^= 0xFF
    return bytes(data)


TAMPERED = {
    "arj, file CRC": (lambda: _clam_arj_with_bad_crc(fix_header_crc=True), "arj"),
    "arj, file and header CRC": (lambda: _clam_arj_with_bad_crc(fix_header_crc=False), "arj"),
    "implode, both CRCs": (_clam_impl_zip_with_bad_crc, "implode"),
    "implode, central CRC": (lambda: _clam_impl_zip_with_bad_crc(local=False), "implode"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_member_with_a_tampered_crc_is_still_decoded_and_marked(case):
    make, label = TAMPERED[case]
    decoder = arj.arj_members if label == "arj" else implode.imploded_members
    [item] = decoder(make(), LIMIT_OCTETS)
    assert item == _corpus_file("clam.exe") and isinstance(item, CrcMismatch)
    assert list(expand(make())) == [(f"{label}(crc mismatch)", _corpus_file("clam.exe"))]
    assert all(type(item) is bytes for _, item in expand(make()))


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_builtin_engine_finds_clam_exe_behind_a_tampered_crc(case):
    make, label = TAMPERED[case]
    found = shipped_engine().scan(make())
    assert found is not None and found.name == "Mailmoat.Test.ClamAV-TestFile"
    assert found.where == f"{label}(crc mismatch)"


def test_untampered_members_are_not_marked():
    for name in ("clam.arj", "clam.impl.zip"):
        assert not any(isinstance(item, CrcMismatch)
                       for item in DECODERS[name](_corpus_file(name), LIMIT_OCTETS))
        assert "crc" not in " ".join(label for label, _ in expand(_corpus_file(name)))


def test_arj_sfx_with_a_tampered_main_header_crc_is_still_found():
    inner = bytearray(_corpus_file("clam.arj"))
    main_size, = struct.unpack_from("<H", inner, 2)
    inner[4 + main_size] ^= 0xFF                # the main header's CRC-32
    sfx = b"MZ" + bytes(1000) + b"\x60\xea\x05\x00junk" + bytes(100) + bytes(inner)
    assert arj.arj_members(sfx, LIMIT_OCTETS) == [_corpus_file("clam.exe")]


# --- ARJ -------------------------------------------------------------------------------------

# `arj a -m0 … -m4` (ARJ 3.10): s0.bin stored, s1-s4.bin with methods 1, 2, 3 and 4
ARJ_METHODS_0_TO_4 = base64.b64decode(
    "YOotACILAQIQAAIWHTEKax0xCmsAAAAAAAAAAAAAAAAAAAAAAABtdWx0aS5hcmoAAJHi5m0AAGDqNgAuCwECEAAAHR0x"
    "CmsqAAAAKgAAAAjvAeMAAKQRAAAAAAAAHTEKax0xCmsAAAAAczAuYmluAAB8AEl2AABzdG9yZWQgbWVtYmVyIG9mIHRo"
    "ZSBtYWlsbW9hdCBhcmogZml4dHVyZQpg6jYALgsBAhABAB0dMQprwAEAABgHAACUL+DhAACkEQAAAAAAAB0xCmsdMQpr"
    "AAAAAHMxLmJpbgAAkugtewAAAWVgFqLWj/iKFVAKqqnwAVX/e9qtVUAAABVVVfq1W1tVaqqqoAAAAAAACqqqoAohRCpJ"
    "RUkqAAABwAOuCVxLywAAgAUeeecoQSp1EIhEHIKUx0OgohU6Q4iueeQUlFJhSiFLSKWoUtYpRils/tJAAyABkADIAGQA"
    "MgAZAAyABkADIAGUAMoAZQAygBlADKAGUAMoAZQAygBmADMAGYAMwAZgAzABm/3C7T4Np8H//BtVrVLZbVVWt1vuCusL"
    "K0t3G5XO6XW7XdcXV5fYGFiY2S8HXm9Xu+X2/X/AYHBYNlZmdo/hNMiaWprRtja3N7g44TC4bD4jE4rF4zG47H5DI5LJ"
    "5TK5bL5jM5rNuTm6Ors7vDy9PaD4+vyR/gIFKmgk6iDhIWGUw8RExUXGRsdHyEjJZzO57P6DQ6LR6TS6bT6jU6rV6zW6"
    "7X7DY7LZ7Ta7bb7jc7rd7ze77f8Dg8Lh8Ti8bj8jk8rlycpKy0vMTM1Nzk7Pczm87n9Do9Lpz9B1OrQ9br9iio+z2qTt"
    "9zu0tNT96o79T4Kqr8PirK2u8df5LDy2NlZ+bz+j0+r1+z2+73/D4/L5/T6/b7/j8/r9gGDqNgAuCwECEAIAHR0xCmu9"
    "AQAAGAcAAH7ns+8AAKQRAAAAAAAAHTEKax0xCmsAAAAAczIuYmluAACH6ZCQAAABZGAWotaP+IoaqAVVVPgAqv+97W1q"
    "qAAAAKqq/Vqtra1VqqqoAAAAAAAAVUABRCiFSSipJUAAADgAduCVxLywAAgC2eeecrQUKlaxBachEqTopBXDqk5xUR55"
    "RSjFKQUuP+pIAEgASABIAEgASgBKAEoASgBKAEwATABMAE1foUgpMKXAUpRSmGhQAkACQAJAAkACUAJQAlACUAJQAmAC"
    "YAJq/Qth+DYfg//8GxWNcsllXV6zWe0Il9gYWK02q12y2263sbIyszO0NLU13A643K53S63a73i83q9tja3N/93SZG4J"
    "ErimcnN0dXa+X2/X/AYHBYPCYXDYfEYnFYvGY3HY/IZHJZPKZV3eHl6e3x9fkH+AgU8FBwihTCqlcMsh4iJilsXGRsdH"
    "yEjJScplsvmMzms3nM7ns/oNDotHpNLptPqNTqtXrNbrtfsNjstntNrttvuNzut3vN7vt/wODwuHxOLxuPyJWWl5iZ5P"
    "K5fM5vO5/Q6PS6fUmpvq9ac6/Y7M7Pdrtz/c7veoKGi79H4KTw0tN4vHT1FT5Kry1fmrK2u8/o9Pq9fs9vu9/w+Py+f0"
    "+v2+/4/P6/f8YOo2AC4LAQIQAwAdHTEKa8oBAAAYBwAAS2osJwAApBEAAAAAAAAdMQprHTEKawAAAABzMy5iaW4AALQe"
    "F/oAAAFnZ3X1rR/xFCqgKqqp4AKq73vbWqqgAAAqqqq9VqtraqrVVVQAAAAAABVVVVVVVVRCiFSSipJUAAAC/f/324HX"
    "E/LAADAKYhCMRGn0KKANRmGwaAyENRQKE8YVPEIoaWQNLMk0jIGk4GllSaSDDSxhpOpNJQgMoQGVLAYNIgaRA0jBpGDS"
    "MGkgNJAaSA0kC7ShAZUsBg0iBpEDSMGkYNIwaRg0kBpIDSQLtKEBlSwHe/g3kO3v4N5p//4N8vqZfr+mp2AwOCT1BRUl"
    "PB4TC4bD4hUVVZXWFlaW1xdxJmKxeMxuOx+QyOSya8vsDCxf7h0rGcZDrKzM7Q0tTXlMrlsvmMzms3nM7ns/oNDotHpN"
    "LptPqNS2Nrc3uDi5Obo6uzua8PL0ee3x9PoH5Cif4CBgoOERwsNDxETFRcZGx2q1es1uu1+w2Oy2e02u22+43O63e83u"
    "+3/A4PC4fE4vG4/I5PK5fM5vO5/Q6PS6fU6sfISMlJykrLS8xMzU3OTs9P0FDRUdJS01PUdbr1PY7Paqqvt9ys7ve79b"
    "XV/gsPDY+Kys/H5LS1tvLb+a489zdXfo9Pq9fs9vu9/w+Py+f0+v2+/4/P6/f8/oYOo2AC4LAQIQBAAdHTEKa8kBAAAY"
    "BwAA0lETqwAApBEAAAAAAAAdMQprHTEKawAAAABzNC5iaW4AAGZVU70AABgMBgIDaYTSbDabzCdBAYTkahAczCbTgbDK"
    "IBoChgMBp6AZHHnBkYjL0AyNvODIy9BAjL0ECMvQQIz9BAjP0ECMBn6AZG/oM8Y+gGRr6AZHPoM/0ECMvQQIz9BAjP0E"
    "CMPQjow9COjH0M+MfQz4x9DPjL0ECMvQQIz9BAjP0xR+hHRh6Ud9DPjH0M+MfQz4y9BAjL0ECMvQQIz9MUf//ODTP//5"
    "waDP4ucEAAEBAMCAUDAcEAkFAsGA0HA8IBEJBMKBULBcMBkNBsOB0PB8QCERCMSCUTCcUCkVCsWC0XC+QbjMaDUbDccD"
    "kdDseD0fD8gEEhEMiEUjEckEklEsmE0nE8oFEpFMqFUrFcsFktFsuF0vF8wGExGMyGUzGc0Gk1Gs2G03G84HE5HM6HU7"
    "Hc8Hk9Hs+H0/H9AIFBINCIVDIdEIlFItGI1HI9IJFJJNKJVLJdMJlNJtOJ1PJ9QKFRKNSKVTKdUKlVKtWK1XK9YLFZLN"
    "aLVbLdcLldLteL1fL9gMFhMNiMVjMdkMllMtmM1nM9oNFpNNqNVrNdsNltNtuN1vN9wOFxONyOVzOd0Ol1Ot2O13O94P"
    "F5PN6PV7Pd8Pl9Pt+P1/P8Bg6gAA"
)


def _arj_sample(seed: int) -> bytes:
    return b"".join(b"%03d mailmoat arj sample %d\n" % ((i * seed) % 37, seed)
                    for i in range(60)) + bytes(range(256))


def test_arj_methods_0_to_4_decode_every_member():
    members = arj.arj_members(ARJ_METHODS_0_TO_4, LIMIT_OCTETS)
    assert members == [b"stored member of the mailmoat arj fixture\n"] + \
        [_arj_sample(seed) for seed in (1, 2, 3, 4)]


def test_every_infected_member_of_an_archive_only_the_engine_opens_is_a_detection():
    # guide36 finding 5: the engine stopped at the first infected member
    data = stored_arj({"a.exe": EICAR, "notes.txt": b"clean", "b.doc": EICAR + b"  "})
    found = shipped_engine().scan_all(data)
    assert [(d.name, d.where) for d in found] == [("Mailmoat.Test.EICAR", "arj[0]"),
                                                  ("Mailmoat.Test.EICAR", "arj[2]")]
    assert shipped_engine().scan(data).name == "Mailmoat.Test.EICAR"    # the first, as before
    assert shipped_engine().scan_all(stored_arj({"notes.txt": b"clean"})) == []


def _arj(method: int, body: bytes, size: int, crc: int, flags: int = 0) -> bytes:
    main = struct.pack("<BBBBBBBB", 30, 11, 1, 0, 0, 0, 2, 0) + bytes(22)
    member = struct.pack("<BBBBBBBBIIIIHHH", 30, 11, 1, 0, flags, method, 0, 0, 0,
                         len(body), size, crc, 0, 0, 0)
    return (arj_header(main, b"t.arj") + arj_header(member, b"t.bin") + body
            + b"\x60\xea\0\0")


def _arj_constant_block(writer: MsbBits, symbols: int, c: int, p: int) -> None:
    """A method 1 block whose trees each have one zero-bit symbol (decode.c's n == 0)."""
    writer.put(symbols % 65536, 16).put(0, 5).put(0, 5).put(0, 9).put(c, 9).put(0, 5).put(p, 5)


def test_arj_block_of_one_literal_is_written_in_one_step():
    writer = MsbBits()
    for _ in range(48):
        _arj_constant_block(writer, 65536, ord("A"), 0)
    size = 48 * 65536
    data = _arj(1, writer.octets(), size, zlib.crc32(b"A" * size))
    started = time.monotonic()
    assert arj.arj_members(data, LIMIT_OCTETS) == [b"A" * size]
    assert time.monotonic() - started < SECONDS_PER_CALL


def test_arj_block_of_one_short_match_is_written_in_one_step():
    writer = MsbBits()
    _arj_constant_block(writer, 1, ord("B"), 0)
    _arj_constant_block(writer, 65536, 256 + 253, 0)      # length 256, distance 1
    size = 1 + 65536 * 256
    data = _arj(1, writer.octets(), size, zlib.crc32(b"B" * size))
    started = time.monotonic()
    assert arj.arj_members(data, LIMIT_OCTETS) == [b"B" * size]
    assert time.monotonic() - started < SECONDS_PER_CALL


def test_arj_member_crc_mismatch_is_returned_marked_and_damage_still_raises():
    [item] = arj.arj_members(_arj(0, b"hello", 5, zlib.crc32(b"hello") ^ 1), LIMIT_OCTETS)
    assert item == b"hello" and isinstance(item, CrcMismatch)
    [item] = arj.arj_members(_arj(0, b"hello", 5, zlib.crc32(b"hello")), 100)
    assert item == b"hello" and not isinstance(item, CrcMismatch)
    writer = MsbBits()
    _arj_constant_block(writer, 1, 256 + 10, 3)  # a match before the start of the file
    with pytest.raises(ValueError, match="before the start"):
        arj.arj_members(_arj(1, writer.octets(), 13, 0), LIMIT_OCTETS)
    with pytest.raises(ValueError, match="truncated"):
        arj.arj_members(_arj(0, b"hello", 5, zlib.crc32(b"hello"))[:-10], LIMIT_OCTETS)


def _arj_of(*members: tuple[int, bytes, int, int]) -> bytes:
    """An archive of (method, body, size, crc) members."""
    main = struct.pack("<BBBBBBBB", 30, 11, 1, 0, 0, 0, 2, 0) + bytes(22)
    out = arj_header(main, b"t.arj")
    for number, (method, body, size, crc) in enumerate(members):
        fixed = struct.pack("<BBBBBBBBIIIIHHH", 30, 11, 1, 0, 0, method, 0, 0, 0,
                            len(body), size, crc, 0, 0, 0)
        out += arj_header(fixed, b"m%d.bin" % number) + body
    return out + b"\x60\xea\0\0"


def test_arj_damaged_member_does_not_hide_the_others():
    writer = MsbBits()
    _arj_constant_block(writer, 1, 256 + 10, 3)
    broken = (1, writer.octets(), 13, 0)
    good = (0, b"payload", 7, zlib.crc32(b"payload"))
    assert arj.arj_members(_arj_of(broken, good), LIMIT_OCTETS) == [b"payload"]
    assert arj.arj_members(_arj_of(good, broken, good), LIMIT_OCTETS) == [b"payload"] * 2
    # an unreadable header ends the walk, keeping what came before it
    assert arj.arj_members(_arj_of(good)[:-4] + b"\x60\xeaXX", LIMIT_OCTETS) == [b"payload"]


def test_arj_members_stop_at_the_total_and_damaged_ones_count():
    good = (0, b"x" * 100, 100, zlib.crc32(b"x" * 100))
    items = arj.arj_members(_arj_of(*[good] * 10), LIMIT_OCTETS, 250)
    assert [len(item) for item in items] == [100, 100, 50]
    # a member claiming 4 GiB that breaks after 10 octets costs 10, not 4 GiB
    writer = MsbBits()
    _arj_constant_block(writer, 10, ord("A"), 0)
    _arj_constant_block(writer, 1, 256 + 10, 16)  # then a match 32 KiB back: too far
    broken = (1, writer.octets(), 2**32 - 1, 0)
    items = arj.arj_members(_arj_of(broken, broken, good), LIMIT_OCTETS, 100)
    assert items == [b"x" * 80]


def test_arj_garbled_member_is_skipped():
    assert arj.arj_members(_arj(0, b"xyz", 3, 0, flags=0x01), LIMIT_OCTETS) == []


def test_arj_inside_a_self_extractor_is_found():
    inner = _arj(0, b"hello", 5, zlib.crc32(b"hello"))
    sfx = b"MZ" + bytes(1000) + b"\x60\xea\x05\x00junk" + bytes(100) + inner
    assert arj.arj_members(sfx, LIMIT_OCTETS) == [b"hello"]
    assert [item for _, item in expand(sfx)] == [b"hello"]


# --- implode ---------------------------------------------------------------------------------

class _LsbBits:
    """A writer for the LSB-first bit stream of implode."""

    def __init__(self):
        self.value = self.count = 0

    def put(self, value: int, count: int) -> None:
        self.value |= value << self.count
        self.count += count

    def code(self, code: int, length: int) -> None:
        """A Shannon-Fano code: its first (most significant) bit goes first."""
        for i in range(length - 1, -1, -1):
            self.put((code >> i) & 1, 1)

    def octets(self) -> bytes:
        return self.value.to_bytes((self.count + 7) // 8, "little")


def _implode_literal_tree_8k(data: bytes) -> bytes:
    """Implode `data` with a literal tree and the 8 KiB dictionary (flags 6), using trees
    of equal lengths: literal s has code 255 - s (8 bits), length/distance s 63 - s (6)."""
    trees = bytes([15] + [0xF7] * 16 + [3] + [0xF5] * 4 + [3] + [0xF5] * 4)
    bits = _LsbBits()
    at = 0
    while at < len(data):
        best_length, best_distance = 0, 0
        for distance in (1, 5000, 8192):
            if distance <= at:
                length = 0
                while at + length < len(data) and length < 3 + 63 + 255 and \
                        data[at + length] == data[at + length - distance]:
                    length += 1
                if length > best_length:
                    best_length, best_distance = length, distance
        if best_length >= 3:
            bits.put(0, 1)
            bits.put((best_distance - 1) & 0x7F, 7)
            bits.code(63 - ((best_distance - 1) >> 7), 6)
            code = min(best_length - 3, 63)
            bits.code(63 - code, 6)
            if code == 63:
                bits.put(best_length - 3 - 63, 8)
            at += best_length
        else:
            bits.put(1, 1)
            bits.code(255 - data[at], 8)
            at += 1
    return trees + bits.octets()


def _zip_with(method: int, flags: int, body: bytes, data: bytes) -> bytes:
    name = b"T.BIN"
    crc = zlib.crc32(data)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 10, flags, method, 0, 0, crc,
                        len(body), len(data), len(name), 0) + name + body
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 10, 10, flags, method, 0, 0,
                          crc, len(body), len(data), len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def test_implode_with_literal_tree_and_8k_dictionary():
    random.seed(5)
    block = bytes(random.randrange(256) for _ in range(5000))
    data = b"x" * 400 + block + block + bytes(8192) + b"tail" * 50
    body = _implode_literal_tree_8k(data)
    assert implode.explode(body, len(data), 6, LIMIT_OCTETS) == data
    assert implode.imploded_members(_zip_with(6, 6, body, data), LIMIT_OCTETS) == [data]


def test_implode_member_is_read_from_its_local_header_when_zipfile_refuses_the_directory():
    # Regression: zipfile raised NotImplementedError ("zip file version 25.5") on a garbled
    # central directory, which is neither ValueError nor a reason to give up on the member.
    data = b"abcabcabc" * 20
    archive = bytearray(_zip_with(6, 6, _implode_literal_tree_8k(data), data))
    archive[archive.index(b"PK\x01\x02") + 6] = 0xFF          # version needed: 25.5
    assert implode.imploded_members(bytes(archive), LIMIT_OCTETS) == [data]


def test_implode_distance_before_the_start_reads_zeros():
    bits = _LsbBits()
    bits.put(0, 1)
    bits.put(9, 7)                              # distance 10, before the start
    bits.code(63, 6)
    bits.code(63 - 2, 6)                        # length 5
    trees = bytes([15] + [0xF7] * 16 + [3] + [0xF5] * 4 + [3] + [0xF5] * 4)
    assert implode.explode(trees + bits.octets(), 5, 6, LIMIT_OCTETS) == bytes(5)


def test_implode_crc_mismatch_is_returned_marked_and_bad_trees_raise():
    data = b"abcabcabc" * 20
    body = _implode_literal_tree_8k(data)
    archive = bytearray(_zip_with(6, 6, body, data))
    archive[14] ^= 0xFF                         # the local header's CRC ...
    central = archive.index(b"PK\x01\x02")
    archive[central + 16] ^= 0xFF               # ... and the central directory's
    [item] = implode.imploded_members(bytes(archive), LIMIT_OCTETS)
    assert item == data and isinstance(item, CrcMismatch)
    with pytest.raises(ValueError, match="symbols"):
        implode.explode(bytes([0, 0x0F]) + body[1:], len(data), 6, LIMIT_OCTETS)
    broken = _zip_with(6, 6, bytes([0, 0x0F]) + body[1:], data)
    with pytest.raises(ValueError, match="symbols"):
        implode.imploded_members(broken, LIMIT_OCTETS)


def _zip_of(*members: tuple[bytes, bytes]) -> bytes:
    """A zip of imploded (body, data) members, flags 6."""
    local, central = b"", b""
    for number, (body, data) in enumerate(members):
        name = b"M%d.BIN" % number
        crc = zlib.crc32(data)
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 10, 10, 6, 6, 0, 0,
                               crc, len(body), len(data), len(name), 0, 0, 0, 0, 0,
                               len(local)) + name
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 10, 6, 6, 0, 0, crc,
                             len(body), len(data), len(name), 0) + name + body
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(local), 0)
    return local + central + end


def test_implode_damaged_member_does_not_hide_the_others():
    data = b"abcabcabc" * 20
    body = _implode_literal_tree_8k(data)
    broken = (bytes([0, 0x0F]) + body[1:], data)
    assert implode.imploded_members(_zip_of(broken, (body, data)), LIMIT_OCTETS) == [data]


def test_implode_members_stop_at_the_total_and_damaged_ones_count():
    random.seed(7)
    data = bytes(random.randrange(256) for _ in range(180))
    body = _implode_literal_tree_8k(data)
    items = implode.imploded_members(_zip_of(*[(body, data)] * 5), LIMIT_OCTETS, 400)
    assert [len(item) for item in items] == [180, 180, 40]
    # a damaged member is charged what it produced before the damage (the work it cost),
    # not what it claims: claims cannot starve the members after it
    cut = body[:len(body) // 2]
    produced = bytearray()
    with pytest.raises(ValueError, match="truncated"):
        implode.explode(cut, 10**9, 6, LIMIT_OCTETS, produced)
    assert 0 < len(produced) < 180
    items = implode.imploded_members(_zip_of((cut, bytes(10**6)), (cut, bytes(10**6)),
                                             (body, data)), LIMIT_OCTETS, 400)
    assert items == [data[:400 - 2 * len(produced)]]


# --- LZX -------------------------------------------------------------------------------------

def _lzx_words(writer: MsbBits) -> bytes:
    """MSB-first bits as LZX stores them: 16-bit words, little-endian."""
    raw = writer.put(0, -len(writer.bits) % 16).octets()
    return b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))


def test_lzx_verbatim_blocks_of_a_cabinet():
    data = (corpus_or_skip() / "archives" / "strelka" / "test_lzx.cab").read_bytes()
    first, blocks, kind = struct.unpack_from("<IHH", data, 0x24)
    assert blocks == 1 and kind & 0xF == 3                 # one LZX folder, one data block
    _checksum, compressed, size = struct.unpack_from("<IHH", data, first)
    out = lzx.decompress(data[first + 8:first + 8 + compressed], kind >> 8 & 0x1F, 0, size,
                         LIMIT_OCTETS)
    assert len(out) == size and out.startswith(b"Lorem ipsum dolor sit amet")
    assert lzx.decompress(data[first + 8:first + 8 + compressed], kind >> 8 & 0x1F, 0, size,
                          100) == out[:100]


def test_lzx_uncompressed_block_with_e8_translation():
    body = bytearray(b"0123456789abcdef" * 4)
    body[16:21] = b"\xe8" + (0x100).to_bytes(4, "little")  # CALL to absolute 0x100
    writer = MsbBits().put(1, 1).put(0, 16).put(0x1000, 16)      # E8 on, file size 0x1000
    writer.put(3, 3).put(len(body) + 1, 24)                        # uncompressed, odd length
    stream = _lzx_words(writer) + struct.pack("<3I", 1, 1, 1) + bytes(body) + b"!" + b"\0"
    out = lzx.decompress(stream, 16, 0, len(body) + 1, LIMIT_OCTETS)
    expected = bytearray(body)
    expected[17:21] = (0x100 - 16).to_bytes(4, "little")           # back to relative
    assert out == bytes(expected) + b"!"


def test_lzx_frames_are_the_stream_in_order():
    data = (corpus_or_skip() / "archives" / "strelka" / "test_lzx.cab").read_bytes()
    first, _blocks, kind = struct.unpack_from("<IHH", data, 0x24)
    _checksum, compressed, size = struct.unpack_from("<IHH", data, first)
    stream = data[first + 8:first + 8 + compressed]
    frames = list(lzx.frames(stream, kind >> 8 & 0x1F, 0, size, LIMIT_OCTETS))
    assert b"".join(frames) == lzx.decompress(stream, kind >> 8 & 0x1F, 0, size,
                                              LIMIT_OCTETS)
    assert len(frames) == 1 and len(frames[0]) == size


def test_lzx_rejects_a_bad_window_and_a_bad_block_type():
    with pytest.raises(ValueError):
        lzx.decompress(b"\0" * 64, 14, 0, 10, LIMIT_OCTETS)
    with pytest.raises(ValueError, match="block type"):
        lzx.decompress(_lzx_words(MsbBits().put(0, 1).put(7, 3).put(10, 24)) + bytes(16),
                       16, 0, 10, LIMIT_OCTETS)


# --- damaged input, limits -------------------------------------------------------------------

def _outcome(decoder, data: bytes, limit: int = LIMIT_OCTETS):
    started = time.monotonic()
    try:
        items = decoder(data, limit)
    except ValueError:
        items = None
    assert time.monotonic() - started < SECONDS_PER_CALL
    if items is not None:
        assert isinstance(items, list) and all(isinstance(i, bytes) and len(i) <= limit
                                               for i in items)
    return items


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_truncated_input_raises_value_error_or_yields_only_whole_members(name):
    data = _corpus_file(name)
    exe = _corpus_file("clam.exe")
    step = max(1, len(data) // 400)
    for cut in range(0, len(data), step):
        items = _outcome(DECODERS[name], data[:cut])
        if name != "clam.chm":      # a CHM keeps its stored files; the others CRC-check
            assert not items or items == [exe], cut


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_garbled_input_only_raises_value_error(name):
    data = _corpus_file(name)
    rnd = random.Random(name)
    for _ in range(400):
        garbled = bytearray(data)
        for _ in range(rnd.choice((1, 1, 2, 8))):
            garbled[rnd.randrange(len(garbled))] ^= 1 << rnd.randrange(8)
        _outcome(DECODERS[name], bytes(garbled))


def test_random_input_with_each_magic_only_raises_value_error():
    rnd = random.Random(11)
    for magic in (b"\x60\xea", b"ITSF", b"PK\x03\x04"):
        for _ in range(200):
            data = magic + bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 600)))
            for decoder in DECODERS.values():
                _outcome(decoder, data)
            for _ in range(2):
                _outcome(lambda d, limit: [lzx.decompress(d, 15 + rnd.randrange(7),
                                                          rnd.randrange(3), 70000, limit)],
                         data)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_output_stops_at_the_limit(name):
    for limit in (0, 1, 100, 543):
        items = DECODERS[name](_corpus_file(name), limit)
        assert all(len(item) <= limit for item in items)
    if name != "clam.chm":      # a CHM decompresses only `limit` octets of its section
        assert _corpus_file("clam.exe")[:100] in DECODERS[name](_corpus_file(name), 100)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_expand_tells_the_decoders_what_the_budget_has_left(name):
    items = [item for _, item in expand(_corpus_file(name), budget=Budget(octets=300))]
    assert items and all(len(item) <= 300 for item in items)
    assert sum(map(len, items)) <= 300
