"""Cabinets, ARJ, cpio, ISO 9660 and SZDD files are opened by the decomposer with the engines'
own readers (core/pipeline/decompose/engine_archives.py), so their member names meet
filename.patterns (content18 B3: a setup.exe in a .cab or .cpio was delivered; SPEC §3
"matched against attachment names at every level, inside archives too"), the antivirus scans
the members and removes the attachment carrying them, and the container limits hold.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib

import pytest

from core.pipeline.decompose.limits import RATIO_MIN_OCTETS, Budget
from core.pipeline.decompose.mime import header_text
from core.scan.unpack import expand, uu_blocks
from core.scan.unpackers import cpio, iso9660, name_text
from tests.support.mail import EICAR
from tests.unit.pipeline.support import CORPUS, verdict_of, view_of
from tests.unit.scan.support import arj_header, as_attachment, stored_arj

CLAMAV = CORPUS / "clamav-testfiles"
EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200
NOTES = b"meeting notes\n" * 20


def _corpus(name: str) -> bytes:
    path = CLAMAV / name
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    return path.read_bytes()


def _members(view) -> list[tuple[str, bytes]]:
    return [(p.filename, p.data) for p in view.parts if p.origin == "archive"]


def _events(findings) -> list[tuple[str, str]]:
    return [(f.event, f.data.get("file")) for f in findings]


# --- archives made here ----------------------------------------------------------------------

def _cpio_tool(tmp_path, members: dict[str | bytes, bytes], fmt: str) -> bytes:
    if shutil.which("cpio") is None:
        pytest.skip("GNU cpio is not installed")
    for name, data in members.items():
        (tmp_path / os.fsdecode(name)).write_bytes(data)
    done = subprocess.run(["cpio", "-o", "-H", fmt, "--quiet"], cwd=tmp_path, check=True,
                          input=b"\n".join(map(os.fsencode, members)), capture_output=True)
    return done.stdout


def _mszip_cab(members: dict[str, bytes], blocks: list[bytes] | None = None) -> bytes:
    """A cabinet with one MSZIP folder holding `members` end to end ([MS-CAB]); `blocks`
    overrides the folder's uncompressed blocks (each at most 32 KiB)."""
    content = b"".join(members.values())
    if blocks is None:
        blocks = [content[i:i + 32768] for i in range(0, len(content), 32768)] or [b""]
    entries, offset = b"", 0
    for name, data in members.items():
        entries += struct.pack("<IIHHHH", len(data), offset, 0, 0, 0, 0x20) + \
            name.encode() + b"\0"
        offset += len(data)
    cfdata = b""
    for block in blocks:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = b"CK" + deflater.compress(block) + deflater.flush()
        cfdata += struct.pack("<IHH", 0, len(body), len(block)) + body
    files_off = 36 + 8
    data_off = files_off + len(entries)
    header = struct.pack("<4sIIIIIBBHHHHH", b"MSCF", 0, data_off + len(cfdata), 0, files_off,
                         0, 3, 1, 1, len(members), 0, 0, 0)
    return header + struct.pack("<IHH", data_off, len(blocks), 1) + entries + cfdata


def _both(value: int, octets: int) -> bytes:
    fmt = {2: "H", 4: "I"}[octets]
    return struct.pack("<" + fmt, value) + struct.pack(">" + fmt, value)


def _iso_record(extent: int, size: int, flags: int, name: bytes,
                system_use: bytes = b"") -> bytes:
    body = (bytes(1) + _both(extent, 4) + _both(size, 4) + bytes(7) + bytes([flags])
            + bytes(2) + _both(1, 2) + bytes([len(name)]) + name)
    body += bytes(1 - len(name) % 2) + system_use
    return bytes([len(body) + 1]) + body


def _iso(members: dict[bytes, tuple[bytes, bytes]]) -> bytes:
    """An ISO 9660 image: sectors 0-15 empty, the primary volume descriptor, the end
    descriptor, the root directory, then each file; `members` maps the primary name to
    (Rock Ridge name or b"", content)."""
    sector = 2048
    files_at = 19
    records = _iso_record(18, sector, 2, b"\x00") + _iso_record(18, sector, 2, b"\x01")
    contents, extent = b"", files_at
    for name, (long_name, data) in members.items():
        system_use = (b"NM" + bytes([5 + len(long_name), 1, 0]) + long_name) if long_name \
            else b""
        records += _iso_record(extent, len(data), 0, name, system_use)
        padded = data + bytes(-len(data) % sector)
        contents += padded
        extent += len(padded) // sector
    return _iso_volume(records.ljust(sector, b"\0") + contents, sector)


def _iso_volume(sectors: bytes, root_size: int) -> bytes:
    """An ISO 9660 image of `sectors` from sector 18 on, the root directory being the first
    `root_size` octets of them."""
    sector = 2048
    pvd = bytearray(sector)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[128:132] = _both(sector, 2)
    pvd[156:190] = _iso_record(18, root_size, 2, b"\x00")
    end = b"\xffCD001\x01" + bytes(sector - 7)
    return bytes(16 * sector) + bytes(pvd) + end + sectors


def _iso_directory(records: list[bytes]) -> bytes:
    """Directory records in sectors (a record never crosses one)."""
    sectors, current = [], b""
    for record in records:
        if len(current) + len(record) > 2048:
            sectors.append(current.ljust(2048, b"\0"))
            current = b""
        current += record
    return b"".join(sectors) + current.ljust(2048, b"\0")


def _iso_one_file_named(names: list[bytes]) -> bytes:
    """An image whose root lists one file (the first octet of the root itself) under each
    of `names` (review18's iso_dos.many_names)."""
    root = _iso_directory([_iso_record(18, 1, 0, name) for name in names])
    return _iso_volume(root, len(root))


def _szdd(data: bytes, missing: bytes = b"e") -> bytes:
    """SZDD (COMPRESS.EXE) with every octet a literal: a control octet of eight 1-bits per
    eight octets."""
    body = b"".join(b"\xff" + data[i:i + 8] for i in range(0, len(data), 8))
    return b"SZDD\x88\xf0\x27\x33A" + missing + struct.pack("<I", len(data)) + body


# --- the file-name policy sees the names ---------------------------------------------------

@pytest.mark.parametrize("fmt", ["newc", "odc", "bin", "crc"])
def test_a_setup_exe_in_a_cpio_made_by_gnu_cpio_is_removed_by_its_name(tmp_path, fmt):
    data = _cpio_tool(tmp_path, {"notes.txt": NOTES, "setup.exe": EXE}, fmt)
    view, findings, verdict = verdict_of(as_attachment("bundle.cpio", data),
                                         filename__enabled=True)
    assert view.errors == []
    assert _members(view) == [("notes.txt", NOTES), ("setup.exe", EXE)]
    assert _events(findings) == [("attachment_deleted", "setup.exe")]
    assert verdict.disposition == "deliver"


def test_a_clean_cpio_passes_the_file_name_policy(tmp_path):
    data = _cpio_tool(tmp_path, {"notes.txt": NOTES}, "newc")
    _, findings, verdict = verdict_of(as_attachment("bundle.cpio", data),
                                      filename__enabled=True)
    assert findings == [] and verdict.disposition == "deliver"


def test_a_setup_exe_in_a_cabinet_is_removed_by_its_name():
    data = _mszip_cab({"notes.txt": NOTES, "setup.exe": EXE})
    view, findings, verdict = verdict_of(as_attachment("bundle.cab", data),
                                         filename__enabled=True)
    assert view.errors == []
    assert _members(view) == [("notes.txt", NOTES), ("setup.exe", EXE)]
    assert _events(findings) == [("attachment_deleted", "setup.exe")]


def test_a_setup_exe_in_an_arj_is_removed_by_its_name():
    view, findings, _ = verdict_of(as_attachment("bundle.arj", stored_arj(
        {"notes.txt": NOTES, "setup.exe": EXE})), filename__enabled=True)
    assert view.errors == []
    assert _members(view) == [("notes.txt", NOTES), ("setup.exe", EXE)]
    assert _events(findings) == [("attachment_deleted", "setup.exe")]


def test_an_iso_file_is_named_by_its_rock_ridge_name_and_its_primary_name():
    script = b'MsgBox "hello"\r\n'
    data = _iso({b"NOTES.TXT;1": (b"", NOTES), b"RUN.TXT;1": (b"run.vbs", script)})
    view, findings, _ = verdict_of(as_attachment("disk.iso", data), filename__enabled=True)
    assert view.errors == []
    assert _members(view) == [("NOTES.TXT", NOTES), ("run.vbs", script)]
    assert view.parts[-1].other_names == ["RUN.TXT"]
    assert _events(findings) == [("attachment_deleted", "run.vbs")]


def test_a_joliet_image_gives_its_joliet_names_first():
    path = CORPUS / "archives" / "strelka" / "test.iso"
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    view = view_of(as_attachment("test.iso", path.read_bytes()))
    assert [(p.filename, p.other_names) for p in view.parts if p.origin == "archive"] == [
        ("lorem.txt", ["LOREM.TXT"])]


def test_an_szdd_file_is_expanded_under_the_name_expand_gives_it():
    view, findings, _ = verdict_of(as_attachment("setup.ex_", _szdd(EXE)),
                                   filename__enabled=True)
    assert view.errors == []
    assert _members(view) == [("setup.exe", EXE)]
    assert _events(findings) == [("attachment_deleted", "setup.exe")]


@pytest.mark.parametrize("name", ["clam.cab", "clam.arj", "clam.newc.cpio", "clam.odc.cpio",
                                  "clam.bin-le.cpio", "clam.bin-be.cpio", "clam.exe.szdd"])
def test_the_clamav_test_files_clam_exe_meets_the_exe_pattern_and_the_antivirus(name):
    view, findings, verdict = verdict_of(as_attachment(name, _corpus(name)),
                                         filename__enabled=True)
    assert view.errors == []
    assert [(p.filename, p.data) for p in view.parts if p.origin == "archive"] == [
        ("clam.exe", _corpus("clam.exe"))]
    assert sorted(_events(findings)) == [("attachment_deleted", "clam.exe"),
                                         ("file_deleted", "clam.exe")]
    assert verdict.disposition == "deliver"


# --- damage and password protection --------------------------------------------------------

def test_a_garbled_arj_member_is_an_encrypted_container_listed_by_name():
    main = struct.pack("<BBBBBBBB", 30, 11, 1, 0, 0, 0, 2, 0) + bytes(22)
    member = struct.pack("<BBBBBBBBIIIIHHH", 30, 11, 1, 0, 1, 0, 0, 0, 0, len(EXE),
                         len(EXE), zlib.crc32(EXE), 0, 0, 0)
    data = arj_header(main, b"t.arj") + arj_header(member, b"setup.exe") + EXE + b"\x60\xea\0\0"
    view, findings, _ = verdict_of(as_attachment("bundle.arj", data), filename__enabled=True)
    archive = next(p for p in view.parts if p.container == "arj")
    assert archive.encrypted
    assert [p.filename for p in view.parts if p.origin == "archive"] == ["setup.exe"]
    assert ("attachment_deleted", "setup.exe") in _events(findings)


def test_a_quantum_cabinet_folder_is_an_unreadable_member_still_matched_by_name():
    cab = bytearray(_mszip_cab({"setup.exe": EXE}))
    cab[36 + 6] = 2                                 # the folder's method: Quantum
    view, findings, _ = verdict_of(as_attachment("bundle.cab", bytes(cab)),
                                   filename__enabled=True)
    assert [e.reason for e in view.errors] == [
        "cannot read cab member: unsupported compression method (Quantum)"]
    assert ("attachment_deleted", "setup.exe") in _events(findings)


def test_a_truncated_cpio_keeps_the_members_before_the_damage(tmp_path):
    data = _cpio_tool(tmp_path, {"setup.exe": EXE, "notes.txt": NOTES}, "newc")
    cut = data[:data.index(b"notes.txt") + 20]
    view = view_of(as_attachment("bundle.cpio", cut))
    assert _members(view) == [("setup.exe", EXE)]
    assert [e.reason for e in view.errors] == [
        "cannot read cpio container: cpio file data truncated"]


# --- the container limits ------------------------------------------------------------------

def test_a_cabinet_folder_that_inflates_past_the_ratio_is_a_container_limit():
    blocks = [bytes(32768)] * 64                    # 2 MiB of zeros in ~3 KiB
    data = _mszip_cab({"a.txt": b"x"}, blocks)
    view = view_of(as_attachment("bomb.cab", data))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_ratio"


def test_cabinet_files_overlapping_one_folder_are_each_charged():
    blocks = [bytes(range(256)) * 128] * 8          # 256 KiB, incompressible enough
    files = {f"f{i}.bin": b"" for i in range(64)}
    data = bytearray(_mszip_cab(files, blocks))
    at = 44
    for _ in files:                                 # every file: all 256 KiB at offset 0
        struct.pack_into("<II", data, at, 8 * 32768, 0)
        at = data.index(b"\0", at + 16) + 1
    view = view_of(as_attachment("overlap.cab", bytes(data)), container__max_total_mb=4)
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_total_mb"


def test_an_arj_member_declaring_a_bomb_ratio_is_refused_before_it_is_read():
    main = struct.pack("<BBBBBBBB", 30, 11, 1, 0, 0, 0, 2, 0) + bytes(22)
    member = struct.pack("<BBBBBBBBIIIIHHH", 30, 11, 1, 0, 0, 1, 0, 0, 0, 16,
                         512 * 2**20, 0, 0, 0, 0)
    data = arj_header(main, b"t.arj") + arj_header(member, b"big.bin") + bytes(16) + \
        b"\x60\xea\0\0"
    view = view_of(as_attachment("bomb.arj", data))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_file_mb"


def test_an_szdd_declaring_more_than_a_file_may_hold_is_refused():
    data = bytearray(_szdd(EXE))
    struct.pack_into("<I", data, 10, 2**31)
    view = view_of(as_attachment("setup.ex_", bytes(data)))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_file_mb"


def test_nested_engine_archives_count_toward_the_depth_limit(tmp_path):
    inner = _mszip_cab({"setup.exe": EXE})
    data = _cpio_tool(tmp_path, {"inner.cab": inner}, "newc")
    view, findings, _ = verdict_of(as_attachment("outer.cpio", data), filename__enabled=True)
    assert [p.location for p in view.parts if p.origin == "archive"] == [
        "part2/inner.cab", "part2/inner.cab/setup.exe"]
    assert ("attachment_deleted", "setup.exe") in _events(findings)
    view = view_of(as_attachment("outer.cpio", data), container__max_depth=1)
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_depth"


# --- the engines read the same formats -----------------------------------------------------

def test_the_builtin_engine_unpacks_cpio_and_iso_with_the_same_readers(tmp_path):
    data = _cpio_tool(tmp_path, {"notes.txt": NOTES, "setup.exe": EXE}, "newc")
    assert list(expand(data)) == [("cpio[0]", NOTES), ("cpio[1]", EXE)]
    iso = _iso({b"SETUP.EXE;1": (b"", EXE)})
    assert list(expand(iso)) == [("iso", EXE)]


def test_text_that_begins_like_a_cpio_magic_is_not_a_container():
    view = view_of(as_attachment("numbers.txt", b"070701 070707 are the dates\n"))
    assert view.errors == [] and view.parts[-1].true_type is None


# --- an ISO image's listing is bounded by the image (review18 R3) ------------------------------

def test_one_iso_file_under_100000_names_is_listed_once_with_every_name():
    names = [b"F%06d" % i for i in range(100_000)]
    files = list(iso9660.iso_files(_iso_one_file_named(names)))
    assert [(f.name, list(f.other_names), f.offset, f.size) for f in files] == [
        ("F000000", [n.decode() for n in names[1:]], 18 * 2048, 1)]


def test_a_name_past_the_16th_for_one_iso_file_still_meets_the_file_name_rules():
    names = [b"F%06d.TXT" % i for i in range(32)] + [b"SETUP.EXE"]
    view, findings, _ = verdict_of(as_attachment("disk.iso", _iso_one_file_named(names)),
                                   filename__enabled=True)
    assert view.errors == []
    [member] = [p for p in view.parts if p.origin == "archive"]
    assert (member.filename, member.other_names[-1]) == ("F000000.TXT", "SETUP.EXE")
    assert [(f.event, f.data["matched_name"]) for f in findings] == [
        ("attachment_deleted", "SETUP.EXE")]


def _iso_named_then(names: list[bytes], data: bytes, last: bytes, last_data: bytes) -> bytes:
    """An image whose root lists one file of `data` under each of `names`, then `last_data`
    as `last` (review18b's iso_repeat probe)."""
    root_size = len(_iso_directory([_iso_record(0, 0, 0, name) for name in (*names, last)]))
    first = 18 + root_size // 2048
    root = _iso_directory([_iso_record(first, len(data), 0, name) for name in names]
                          + [_iso_record(first + 1, len(last_data), 0, last)])
    return _iso_volume(root + data.ljust(2048, b"\0") + last_data.ljust(2048, b"\0"),
                       len(root))


HELLO_3300 = [b"A%05d.TXT" % i for i in range(3300)]


def test_a_file_after_one_listed_under_3300_names_is_unpacked_by_the_builtin_engine():
    # review18b R2: rule 5 listed hello.txt once per 16 names, 207 times; the engine's 200
    # items went on copies of it and EICAR.COM after it was never unpacked
    image = _iso_named_then(HELLO_3300, b"hello world\n", b"EICAR.COM", EICAR)
    assert [f.name for f in iso9660.iso_files(image)] == ["A00000.TXT", "EICAR.COM"]
    assert list(expand(image)) == [("iso[0]", b"hello world\n"), ("iso[1]", EICAR)]


def test_an_iso_file_listed_under_3300_names_is_one_part_and_the_virus_after_it_is_found():
    # review18b R2: 211 parts, each a copy of hello.txt charged and scanned again, and
    # container.max_files 100 dropped the message
    image = _iso_named_then(HELLO_3300, b"hello world\n", b"EICAR.COM", EICAR)
    view, findings, _ = verdict_of(as_attachment("disk.iso", image), container__max_files=100)
    assert view.limit_hit is None and view.errors == []
    assert [(p.filename, len(p.other_names)) for p in view.parts if p.origin == "archive"] == [
        ("A00000.TXT", 3299), ("EICAR.COM", 0)]
    assert [(f.rule, f.event, f.data.get("file")) for f in findings] == [
        ("av.on_unrepairable", "file_deleted", "EICAR.COM")]


def _iso_deep(levels: int, leaves: tuple[bytes, ...] = (b"LEAF.EXE",)) -> bytes:
    """An image whose root holds NOTES.TXT and a chain of `levels` directories, each named
    with 200 characters, the last holding EXE under each of `leaves` (review18's
    iso_dos.deep_chain)."""
    sector = 2048                                   # directory k at sector 19 + k
    last_size = len(_iso_directory([_iso_record(0, 0, 0, leaf) for leaf in leaves]))
    exe_at = 19 + levels - 1 + last_size // sector  # then EXE and NOTES, a sector each

    def directory(k: int) -> bytes:
        size = last_size if k == levels - 1 else sector
        return _iso_record(19 + k, size, 2, b"D" * 192 + b"%08d" % k)

    root = _iso_directory([directory(0), _iso_record(exe_at + 1, len(NOTES), 0, b"NOTES.TXT")])
    chain = [_iso_directory([directory(k + 1)]) for k in range(levels - 1)]
    last = _iso_directory([_iso_record(exe_at, len(EXE), 0, leaf) for leaf in leaves])
    contents = b"".join(data.ljust(sector, b"\0") for data in (EXE, NOTES))
    return _iso_volume(root + b"".join(chain) + last + contents, len(root))


def test_an_iso_path_longer_than_max_path_chars_is_not_read_and_is_an_error():
    view = view_of(as_attachment("disk.iso", _iso_deep(15)))   # 15 x 201 characters: read
    assert view.errors == []
    assert [p.filename.rsplit("/", 1)[-1] for p in view.parts if p.origin == "archive"] == [
        "NOTES.TXT", "LEAF.EXE"]
    view = view_of(as_attachment("disk.iso", _iso_deep(30)))   # 30 x 201: not
    assert _members(view) == [("NOTES.TXT", NOTES)]
    assert [e.reason for e in view.errors] == [
        f"cannot read iso container: a path longer than {iso9660.MAX_PATH_CHARS} characters: "
        "the rest of the image was not read"]


def test_iso_paths_past_max_paths_chars_in_all_end_the_listing_with_an_error():
    leaves = tuple(b"L%059d" % i for i in range(5000))      # 5,000 paths of 4,080 characters
    listed = []
    with pytest.raises(ValueError, match=f"paths of more than {iso9660.MAX_PATHS_CHARS}"):
        for item in iso9660.iso_files(_iso_deep(20, leaves)):
            listed += [item.name, *item.other_names]
    assert 0 < sum(map(len, listed)) <= iso9660.MAX_PATHS_CHARS
    assert "NOTES.TXT" in listed


def test_iso_records_past_max_records_end_the_listing_with_an_error():
    names = [b"F%06d" % i for i in range(iso9660.MAX_RECORDS + 1)]
    listed = []
    with pytest.raises(ValueError, match=f"more than {iso9660.MAX_RECORDS} directory records"):
        for item in iso9660.iso_files(_iso_one_file_named(names)):
            listed += [item.name, *item.other_names]
    assert len(listed) == iso9660.MAX_RECORDS


# --- one reading of a name's octets (review18 D2) ---------------------------------------------

@pytest.mark.parametrize("raw", [b"r\xe9sum\xe9.exe", b"r\xc3\xa9sum\xc3\xa9.exe"])
def test_a_name_reads_the_same_in_cpio_iso_uuencode_and_a_header(tmp_path, raw):
    assert name_text(raw) == "résumé.exe"
    [listed] = cpio.cpio_files(_cpio_tool(tmp_path, {raw: NOTES}, "newc"))
    [primary] = iso9660.iso_files(_iso({raw.upper() + b";1": (b"", NOTES)}))
    [rock_ridge] = iso9660.iso_files(_iso({b"RESUME.EXE;1": (raw, NOTES)}))
    [block] = uu_blocks(b"begin 644 " + raw + b"\n`\nend\n")
    assert (listed.name, rock_ridge.name, block.name, header_text(raw)) == ("résumé.exe",) * 4
    assert primary.name == name_text(raw.upper())


# --- the ratio rule is the budget's (review18 D3) ---------------------------------------------

def test_the_room_of_a_compressed_member_is_the_budgets_ratio_rule():
    budget = Budget(max_ratio=10, max_file_octets=100 << 20, max_total_octets=200 << 20)
    assert budget.room() == (100 << 20) + 1
    assert budget.room(packed=1000) == RATIO_MIN_OCTETS + 1
    assert budget.room(packed=2 << 20) == (20 << 20) + 1
    assert budget.room(packed=20 << 20) == (100 << 20) + 1
