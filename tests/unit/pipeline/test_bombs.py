"""Decompression bombs stop at the container limits within bounded memory: the corpus bombs
and bombs generated here (SPEC §3 container.*; ARCHITECTURE invariant 3). The assertions
are on extracted bytes and peak memory (tracemalloc), not on time."""

import bz2
import gzip
import io
import lzma
import tracemalloc
import zipfile
import zlib

import pytest

from core.pipeline.decompose import decompose_bytes
from core.pipeline.decompose.limits import MIB
from tests.unit.pipeline.support import CONTEXT, corpus_rows, message, settings

# Peak memory allowed for one bomb message beyond its own (encoded) size: the decomposer
# holds at most one member being read plus what it already extracted, both bounded by the
# limits that stopped it; the default limits stop these bombs after a few MiB.
PEAK_ALLOWANCE_OCTETS = 64 * MIB


def run(raw, **changes):
    values = settings(**changes)
    tracemalloc.start()
    try:
        view = decompose_bytes(raw, CONTEXT, values)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return view, peak


def assert_bounded(view, peak, raw, **changes):
    values = settings(**changes)
    assert view.limit_hit is not None, "the bomb was not stopped"
    assert view.extracted_octets <= values["container.max_total_mb"] * MIB
    assert peak <= 3 * len(raw) + PEAK_ALLOWANCE_OCTETS, f"peak {peak / MIB:.1f} MiB"


def bomb_rows():
    return corpus_rows("archives/", "bomb")


@pytest.mark.parametrize("index", range(9))
def test_corpus_bombs_stop_within_limits(index):
    rows = bomb_rows()
    if index >= len(rows):
        pytest.skip("fewer bombs in the corpus")
    path, _ = rows[index]
    raw = message(attachments=[(path.name, path.read_bytes())])
    view, peak = run(raw)
    assert_bounded(view, peak, raw)


def nested_zip(levels: int, leaf: bytes) -> bytes:
    data, name = leaf, "leaf.txt"
    for level in range(levels):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for copy in range(4):
                z.writestr(f"{copy}-{name}", data)
        data, name = out.getvalue(), f"layer{level}.zip"
    return data


def test_generated_42_zip_style_nesting_stops_at_ratio():
    bomb = nested_zip(4, b"\0" * (8 * MIB))          # 4^4 x 8 MiB = 2 GiB if expanded
    raw = message(attachments=[("42.zip", bomb)])
    view, peak = run(raw)
    assert_bounded(view, peak, raw)
    assert view.limit_hit.limit == "container.max_ratio"


def test_generated_deep_nesting_stops_at_depth():
    bomb = nested_zip(15, b"tiny")
    view, peak = run(message(attachments=[("deep.zip", bomb)]))
    assert view.limit_hit.limit == "container.max_depth"
    assert max(p.depth for p in view.parts) <= settings()["container.max_depth"]


def test_generated_many_entries_stops_at_file_count():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i in range(300):
            z.writestr(f"f{i}.txt", b"x")
    view, _ = run(message(attachments=[("many.zip", out.getvalue())]), container__max_files=100)
    assert view.limit_hit.limit == "container.max_files"
    assert len(view.parts) <= 101


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_generated_stream_bombs_stop(compress):
    raw = message(attachments=[("zeros.bin.x", compress(b"\0" * (64 * MIB)))])
    view, peak = run(raw)
    assert_bounded(view, peak, raw)


def test_total_size_limit_counts_across_members():
    data = bytes(range(256)) * 4096                     # 1 MiB, barely compressible
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for i in range(5):
            z.writestr(f"f{i}.bin", data)
    view, _ = run(message(attachments=[("big.zip", out.getvalue())]),
                  container__max_total_mb=8)         # the zip (5 MiB) + 3 members fit
    assert view.limit_hit.limit == "container.max_total_mb"
    assert view.limit_hit.location.startswith("part2/f")
    assert view.extracted_octets <= 8 * MIB


def test_file_size_limit_uses_declared_size_before_reading():
    data = bytes(range(256)) * 8192                     # 2 MiB
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("big.bin", data)
    view, _ = run(message(attachments=[("one.zip", out.getvalue())]), container__max_file_mb=1)
    assert view.limit_hit.limit == "container.max_file_mb"
    assert view.extracted_octets < 2 * MIB + 64 * 1024


def test_small_compressible_files_do_not_trip_the_ratio():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blank.txt", b" " * 200_000)              # ratio ~ 400, but small
    view, _ = run(message(attachments=[("ok.zip", out.getvalue())]))
    assert view.limit_hit is None


def overlapping_zip(copies: int, octets: int) -> bytes:
    """One deflated member of `octets` zeros listed `copies` times by the central directory,
    every entry pointing at the one local header (the full-overlap zip bomb)."""
    import struct
    data = bytes(octets)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = packer.compress(data) + packer.flush()
    fields = struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0x21, zlib.crc32(data), len(body),
                         len(data), 5, 0)
    local = b"PK\x03\x04" + fields + b"a.bin" + body
    central = b"".join(b"PK\x01\x02" + struct.pack("<H", 20) + fields
                       + struct.pack("<HHHII", 0, 0, 0, 0, 0) + b"a.bin" for _ in range(copies))
    return (local + central + b"PK\x05\x06"
            + struct.pack("<HHHHIIH", 0, 0, copies, copies, len(central), len(local), 0))


def test_a_zip_of_overlapping_members_is_the_archives_ratio():
    """content18 C4: read member by member, each overlapping member's ratio looked ordinary
    under a high container.max_ratio and every member after the first failed to open, a
    scan_error each and a hold; the members' sizes together are the archive's ratio."""
    raw = message(attachments=[("bomb.zip", overlapping_zip(50, MIB))])
    view, _peak = run(raw, container__max_ratio=10000)
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_ratio"
    assert not view.errors


def test_the_corpus_overlap_bomb_is_a_container_limit_not_a_thousand_errors():
    rows = [path for path, _ in bomb_rows() if path.name.startswith("overlap_full")]
    if not rows:
        pytest.skip("no overlap_full bomb in ../shared/corpus/archives")
    raw = message(attachments=[(rows[0].name, rows[0].read_bytes())])
    view, peak = run(raw, container__max_ratio=10000)
    assert view.limit_hit.limit == "container.max_ratio" and not view.errors
    assert_bounded(view, peak, raw, container__max_ratio=10000)
