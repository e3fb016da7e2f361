"""InstallShield setups, Microsoft cabinets and compiled AutoIt scripts
(core/scan/unpackers/installshield.py, autoit.py): the ClamAV test files yield clam.exe itself,
the builtin engine finds it there, and damaged input only ever raises ValueError, quickly."""

from __future__ import annotations

import functools
import io
import random
import struct
import time
import zlib

import olefile
import pytest

from core.scan.unpack import expand
from core.scan.unpackers.autoit import autoit
from core.scan.unpackers.installshield import (cabinet, installshield, installshield_msi,
                                                pe_overlay)
from tests.unit.scan.support import INSTALLERS, corpus_or_skip, shipped_engine

CLAMAV = "clamav-testfiles"


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
    cab[36 + 6] = 3                               # LZX
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
    msi = installshield_msi(_corpus_file("clam_ISmsi_int.exe"))[1]
    [real] = _cabinets_in_msi(msi)
    for damaged in _damaged(real, 8):
        _only_value_error(cabinet, damaged)


def test_hostile_lengths_stay_within_the_limits():
    header = b"InstallShield\0" + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 28
    block = b"evil.bin".ljust(0x104, b"\0") + struct.pack("<IIQ", 6, 0, 0xFFFFFFFFFFFF) + \
        struct.pack("<9I", 0, 1, 0, 0, 0, 0, 0, 0, 0)
    assert installshield_msi(b"MZ" + header + block + b"\0" * 64) == []
    cab = bytearray(_mszip_cabinet(b"x" * 1000))
    struct.pack_into("<HH", cab, 26, 0xFFFF, 0xFFFF)   # folders and files past the data
    _only_value_error(cabinet, bytes(cab))
    marker = bytes.fromhex("a3484bbe986c4aa9994c530a86d6487d") + b"AU3!EA06" + b"\0" * 16
    record = struct.pack("<II", 0x52CA436B, 0xADBC ^ 0x7FFFFFFF)
    _only_value_error(autoit, b"MZ" + marker + record + b"\0" * 100)
