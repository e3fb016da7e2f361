"""InstallShield setups, Microsoft cabinets and compiled AutoIt scripts
(core/scan/unpackers/installshield.py, autoit.py): the ClamAV test files yield clam.exe itself,
the builtin engine finds it there, cabinets give the same files whether their folders are
stored, MSZIP or LZX, and damaged input only ever raises ValueError, quickly."""

from __future__ import annotations

import functools
import io
import random
import struct
import time
import zlib

import olefile
import pytest

from core.scan.unpack import Budget, expand
from core.scan.unpackers import lzx
from core.scan.unpackers.autoit import autoit
from core.scan.unpackers.installshield import (cabinet, installshield, installshield_msi,
                                                pe_overlay)
from tests.unit.scan.support import INSTALLERS, MsbBits, corpus_or_skip, shipped_engine

CLAMAV = "clamav-testfiles"
STRELKA = "archives/strelka"


def _corpus_file(name: str) -> bytes:
    path = corpus_or_skip() / CLAMAV / name
    if not path.is_file():
        pytest.skip(f"ClamAV test file {name} not in the shared corpus ({path})")
    return path.read_bytes()


def _clam_exe() -> bytes:
    return _corpus_file("clam.exe")


def _cabinets_in_msi(msi: bytes) -> list[bytes]:
    with olefile.OleFileIO(io.BytesIO(msi)) as ole:
        streams = [ole.openstream(path).read() for path in ole.listdir()]
    return [stream for stream in streams if stream[:4] == b"MSCF"]


# --- the ClamAV test files -----------------------------------------------------------------

def test_installshield_cab_setup_yields_clam_exe_from_data1_cab():
    files = installshield(_corpus_file("clam_IScab_int.exe"))
    assert _clam_exe() in files


def test_installshield_msi_setup_with_external_file_yields_clam_exe():
    files = installshield_msi(_corpus_file("clam_ISmsi_ext.exe"))
    assert _clam_exe() in files


def test_installshield_msi_setup_with_internal_cab_yields_clam_exe_through_the_msi():
    files = installshield_msi(_corpus_file("clam_ISmsi_int.exe"))
    [msi] = [f for f in files if f[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]
    [cab] = _cabinets_in_msi(msi)
    assert cabinet(cab) == [_clam_exe()]


@pytest.mark.parametrize("name", ["clam.ea05.exe", "clam.ea06.exe"])
def test_compiled_autoit_script_yields_clam_exe_and_the_script(name):
    files = autoit(_corpus_file(name))
    assert files[-1] == _clam_exe() and len(files) == 2


def test_ea06_script_is_decompiled_to_text():
    script = autoit(_corpus_file("clam.ea06.exe"))[0]
    assert script.startswith(b"FUNC _FILECOUNTLINES( $SFILEPATH ) \n")
    assert b"FILEINSTALL" in script


@pytest.mark.parametrize("name", INSTALLERS)
def test_builtin_engine_finds_clam_exe_inside(name):
    found = shipped_engine().scan(_corpus_file(name))
    assert found is not None and found.name == "Mailmoat.Test.ClamAV-TestFile", name
    assert found.where.split("/")[0].split("[")[0] in (
        "installshield", "installshield-msi", "autoit"), found.where


@pytest.mark.parametrize("name", INSTALLERS)
def test_expand_yields_the_payload_under_the_budget(name):
    data = _corpus_file(name)
    clam, derived = _clam_exe(), []
    for _label, item in expand(data):
        derived.append(item)
        for _inner_label, inner in expand(item):
            derived.append(inner)
            derived.extend(deeper for _, deeper in expand(inner))
    assert clam in derived


# --- made-up inputs ------------------------------------------------------------------------

def _mszip_cabinet(payload: bytes, name: bytes = b"a.bin") -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = b"CK" + compressor.compress(payload) + compressor.flush()
    files_off = 36 + 8
    data_off = files_off + 16 + len(name) + 1
    header = struct.pack("<4sIIIIIBBHHHHH", b"MSCF", 0, data_off + 8 + len(block), 0,
                         files_off, 0, 3, 1, 1, 1, 0, 0, 0)
    folder = struct.pack("<IHH", data_off, 1, 1)
    entry = struct.pack("<IIHHHH", len(payload), 0, 0, 0, 0, 0x20) + name + b"\0"
    return header + folder + entry + struct.pack("<IHH", 0, len(block), len(payload)) + block


def test_mszip_cabinet_is_inflated():
    payload = bytes(range(256)) * 40
    assert cabinet(_mszip_cabinet(payload)) == [payload]


def test_cabinet_in_another_method_yields_nothing():
    cab = bytearray(_mszip_cabinet(b"x" * 100))
    cab[36 + 6] = 2                               # Quantum
    assert cabinet(bytes(cab)) == []
    cab[36 + 6:36 + 8] = struct.pack("<H", 3 | 14 << 8)    # LZX with a 16 KiB window
    assert cabinet(bytes(cab)) == []


# --- LZX cabinets ----------------------------------------------------------------------------

STRELKA_CAB_FILES = 4                             # lorem.txt and three copies, 4015 octets


def _strelka(name: str) -> bytes:
    path = corpus_or_skip() / STRELKA / name
    if not path.is_file():
        pytest.skip(f"{name} not in the shared corpus ({path})")
    return path.read_bytes()


def test_lzx_cabinet_yields_the_same_files_as_the_stored_one():
    stored = cabinet(_strelka("test_zip.cab"))    # despite its name: one stored folder
    assert len(stored) == STRELKA_CAB_FILES and stored[0].startswith(b"Lorem ipsum dolor")
    assert cabinet(_strelka("test_lzx.cab")) == stored


def test_expand_opens_lzx_and_stored_cabinets():
    stored = [item for _, item in expand(_strelka("test_zip.cab"))]
    assert len(stored) == STRELKA_CAB_FILES
    assert list(expand(_strelka("test_lzx.cab"))) == [
        (f"cab[{index}]", item) for index, item in enumerate(stored)]


def test_clamav_cab_yields_clam_exe_through_expand():
    assert list(expand(_corpus_file("clam.cab"))) == [("cab", _clam_exe())]


def _lzx_literals(payload: bytes, window_bits: int = 15) -> tuple[bytes, list[int]]:
    """`payload` as one LZX verbatim block of literals (every literal an 8-bit code, so
    literal s is code s; no match symbols, an empty length tree) spanning as many 32 KiB
    frames as it needs, as a cabinet compressor writes it: each frame padded to 16 bits.
    Returns (stream, offset where each frame's data ends)."""
    slots = {15: 30, 16: 32, 17: 34, 18: 36, 19: 38, 20: 42, 21: 50}[window_bits]
    pretree = [4] * 12 + [5] * 8                  # complete: 12/16 + 8/32
    code = {s: s for s in range(12)} | {s: 24 + s - 12 for s in range(12, 20)}

    def symbol(s: int) -> None:
        writer.put(code[s], pretree[s])

    def zeros(count: int) -> None:                # pretree 18: a run of 20-51 zeros
        while count:
            run = min(51, count) if count - min(51, count) == 0 or count - 51 >= 20 \
                else count - 20
            symbol(18)
            writer.put(run - 20, 5)
            count -= run

    writer = MsbBits().put(0, 1)                 # no E8 translation
    writer.put(1, 3).put(len(payload) >> 8, 16).put(len(payload) & 0xFF, 8)
    for length in pretree:                        # main tree, literals: all length 8
        writer.put(length, 4)
    for _ in range(256):
        symbol(9)                                 # (0 - 8) % 17
    for length in pretree:                        # main tree, match symbols: none
        writer.put(length, 4)
    zeros(slots * 8)
    for length in pretree:                        # length tree: empty
        writer.put(length, 4)
    zeros(249)
    ends = []
    for start in range(0, len(payload), lzx.FRAME_OCTETS):
        for octet in payload[start:start + lzx.FRAME_OCTETS]:
            writer.put(octet, 8)
        ends.append(writer.align())
    return writer.words(), ends


def _cabinet(comp_type: int, blocks: list[tuple[bytes, int]],
             files: list[tuple[bytes, int, int]], folders: int = 1) -> bytes:
    """A folder of (compressed data, uncompressed size) blocks and files (name, offset,
    size) in it. With `folders` > 1, that many folders all point at the same blocks (no real
    cabinet does) and file i is in folder i % folders."""
    entries = b"".join(struct.pack("<IIHHHH", size, offset, i % folders, 0, 0, 0x20) + name
                       + b"\0" for i, (name, offset, size) in enumerate(files))
    files_off = 36 + 8 * folders
    data_off = files_off + len(entries)
    cfdata = b"".join(struct.pack("<IHH", 0, len(block), size) + block
                      for block, size in blocks)
    header = struct.pack("<4sIIIIIBBHHHHH", b"MSCF", 0, data_off + len(cfdata), 0,
                         files_off, 0, 3, 1, folders, len(files), 0, 0, 0)
    return header + struct.pack("<IHH", data_off, len(blocks), comp_type) * folders + \
        entries + cfdata


def _payload(octets: int) -> bytes:
    rnd = random.Random(octets)
    return bytes(rnd.randrange(256) for _ in range(octets))


def _lzx_cabinet(payload: bytes, files: list[tuple[bytes, int, int]],
                 window_bits: int = 15) -> bytes:
    """`payload` in an LZX folder, one CFDATA block per frame."""
    stream, ends = _lzx_literals(payload, window_bits)
    starts = [0] + ends[:-1]
    blocks = [(stream[start:end], min(lzx.FRAME_OCTETS, len(payload) - i * lzx.FRAME_OCTETS))
              for i, (start, end) in enumerate(zip(starts, ends))]
    return _cabinet(3 | window_bits << 8, blocks, files)


def test_lzx_folder_of_several_blocks_is_one_stream():
    payload = _payload(80000)                     # frames of 32768, 32768 and 14464
    files = [(b"a.bin", 0, 30000), (b"b.bin", 30000, 50000)]
    for window_bits in (15, 16, 21):
        cab = _lzx_cabinet(payload, files, window_bits)
        assert cabinet(cab) == [payload[:30000], payload[30000:]], window_bits
    assert [item for _, item in expand(cab)] == [payload[:30000], payload[30000:]]


def test_lzx_folder_keeps_the_frames_before_damage():
    payload = _payload(80000)
    stream, ends = _lzx_literals(payload)
    blocks = [(stream[:ends[0]], 32768), (stream[ends[0]:ends[1]], 32768),
              (b"\xff" * 40, 14464)]              # the third frame's data is garbage
    cab = _cabinet(3 | 15 << 8, blocks, [(b"a.bin", 0, 30000), (b"b.bin", 30000, 50000)])
    assert cabinet(cab) == [payload[:30000], payload[30000:65536]]


def test_lzx_folder_is_decompressed_only_as_far_as_the_total_allows():
    payload = _payload(80000)
    cab = _lzx_cabinet(payload, [(b"a.bin", 0, 80000)])
    assert cabinet(cab, 1000) == [payload[:1000]]
    assert [item for _, item in expand(cab, budget=Budget(octets=1000))] == [payload[:1000]]


def test_lzx_folder_with_a_bad_window_is_skipped():
    cab = bytearray(_lzx_cabinet(_payload(100), [(b"a.bin", 0, 100)]))
    for window_bits in (0, 14, 22, 31):
        struct.pack_into("<H", cab, 36 + 6, 3 | window_bits << 8)
        assert cabinet(bytes(cab)) == []


def test_not_the_format_raises_value_error():
    for function in (installshield, installshield_msi, cabinet, autoit):
        with pytest.raises(ValueError):
            function(b"MZ" + b"\0" * 200)


def _damaged(data: bytes, seed: int):
    """Cut at many points, and flip bytes — in the headers and anywhere."""
    rng = random.Random(seed)
    for cut in sorted({rng.randrange(len(data)) for _ in range(40)}):
        yield data[:cut]
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 4, 32))):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        yield bytes(damaged)


def _only_value_error(function, data: bytes) -> None:
    started = time.monotonic()
    try:
        files = function(data)
    except ValueError:
        files = []
    assert isinstance(files, list) and all(isinstance(f, bytes) for f in files)
    assert time.monotonic() - started < 10, f"{function} took too long"


@pytest.mark.parametrize("name,function", [
    ("clam_ISmsi_ext.exe", installshield_msi), ("clam_ISmsi_int.exe", installshield_msi),
    ("clam_IScab_int.exe", installshield), ("clam.ea05.exe", autoit),
    ("clam.ea06.exe", autoit)])
def test_truncated_or_garbled_input_raises_only_value_error(name, function):
    data = _corpus_file(name)
    if function is installshield:                 # the overlay alone: damage lands in it
        data = data[pe_overlay(data):]
        function = functools.partial(installshield, start=0)
    elif function is autoit:
        data = data[data.index(b"AU3!EA0") - 16:]
    else:
        data = data[data.index(b"InstallShield\0", 900000) - 64:]
    for damaged in _damaged(data, zlib.crc32(name.encode())):
        _only_value_error(function, damaged)


def test_damaged_cabinets_raise_only_value_error():
    cab = _mszip_cabinet(bytes(range(256)) * 200)
    for damaged in _damaged(cab, 7):
        _only_value_error(cabinet, damaged)
    for seed, lzx_cab in enumerate((_strelka("test_lzx.cab"), _lzx_cabinet(
            _payload(70000), [(b"a.bin", 0, 40000), (b"b.bin", 40000, 30000)]))):
        for damaged in _damaged(lzx_cab, 9 + seed):
            _only_value_error(cabinet, damaged)
    msi = installshield_msi(_corpus_file("clam_ISmsi_int.exe"))[1]
    [real] = _cabinets_in_msi(msi)
    for damaged in _damaged(real, 8):
        _only_value_error(cabinet, damaged)


def test_random_lzx_folders_raise_only_value_error():
    rnd = random.Random(12)
    for _ in range(300):
        blocks = [(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400))),
                   rnd.choice((32768, 100, 0xFFFF, 0))) for _ in range(rnd.randrange(1, 4))]
        cab = _cabinet(3 | rnd.randrange(15, 22) << 8, blocks,
                       [(b"a.bin", 0, 70000), (b"b.bin", 5, 10)])
        _only_value_error(cabinet, cab)


def test_hostile_lengths_stay_within_the_limits():
    header = b"InstallShield\0" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 28
    block = b"evil.bin".ljust(0x104, b"\0") + struct.pack("<IIQ", 6, 0, 0xFFFFFFFFFFFF) + \
        struct.pack("<9I", 0, 1, 0, 0, 0, 0, 0, 0, 0)
    assert installshield_msi(b"MZ" + header + block + b"\0" * 64) == []
    cab = bytearray(_mszip_cabinet(b"x" * 1000))
    struct.pack_into("<HH", cab, 26, 0xFFFF, 0xFFFF)   # folders and files past the data
    _only_value_error(cabinet, bytes(cab))
    # 200 folders over the same 65,535 blocks: the walk over them stops at the cabinet's
    # size, whether the blocks are LZX frames claiming 64 KiB each or empty stored ones
    files = [(b"f%d" % i, 0, 0xFFFF) for i in range(200)]
    for comp_type, block in ((3 | 21 << 8, _lzx_literals(b"x")[0]), (0, b"")):
        _only_value_error(cabinet, _cabinet(comp_type, [(block, 0xFFFF)] * 0xFFFF, files,
                                            folders=200))
    marker = bytes.fromhex("a3484bbe986c4aa9994c530a86d6487d") + b"AU3!EA06" + b"\0" * 16
    record = struct.pack("<II", 0x52CA436B, 0xADBC ^ 0x7FFFFFFF)
    _only_value_error(autoit, b"MZ" + marker + record + b"\0" * 100)
