"""What unpack.py's RTF, uuencode and PDF readers cost on hostile input (x4-cost findings 2-4):
a start marker without its end marker must not make a reader take the rest of the data, so each
input octet is decoded, searched or inflated a bounded number of times; and `expand` pulls a
reader's items only while the budget has room. The bounds are counted, never timed; the objects
found are the right ones, and EICAR hidden behind such damage is still detected."""

from __future__ import annotations

import binascii
import types
import zlib

import pytest

from core.scan import unpack
from core.scan.unpack import MAX_ITEMS, Budget, expand, uudecode
from core.scan.unpackers import pdf
from tests.unit.scan.support import corpus_or_skip, shipped_engine


def _eicar() -> bytes:
    path = corpus_or_skip() / "eicar" / "eicar.com"
    if not path.is_file():
        pytest.skip(f"EICAR test file not in the shared corpus ({path})")
    return path.read_bytes()


def _counting(monkeypatch, module_name: str, function: str, **keep) -> list[int]:
    """Replace unpack's `module_name` by a shim whose `function` records the size of its
    first argument; returns the list of sizes."""
    real = getattr(unpack, module_name)
    sizes: list[int] = []

    def wrapper(arg, *rest, **kw):
        sizes.append(len(arg))
        return getattr(real, function)(arg, *rest, **kw)

    shim = types.SimpleNamespace(**{name: getattr(real, name) for name in keep})
    setattr(shim, function, wrapper)
    monkeypatch.setattr(unpack, module_name, shim)
    return sizes


# --- expand and the budget -------------------------------------------------------------------

def test_expand_pulls_a_producers_items_only_while_the_budget_has_room(monkeypatch):
    pulled = []

    def produce():
        for index in range(1000):
            pulled.append(index)
            yield b"item %d" % index

    monkeypatch.setattr(unpack, "_candidates", lambda data, decompose, budget:
                        iter([("many", produce)]))
    found = list(expand(b"anything", budget=Budget(items=3)))
    assert found == [("many[0]", b"item 0"), ("many[1]", b"item 1"), ("many[2]", b"item 2")]
    assert len(pulled) <= 3 + 1                 # one item of look-ahead at most


def test_expand_numbers_items_only_when_a_producer_has_several(monkeypatch):
    candidates = [("one", lambda: iter([b"a"])), ("two", lambda: iter([b"b", b"c"])),
                  ("damaged", lambda: iter([b"d", 1 // 0]))]
    monkeypatch.setattr(unpack, "_candidates", lambda data, decompose, budget: iter(candidates))
    assert list(expand(b"x")) == [("one", b"a"), ("two[0]", b"b"), ("two[1]", b"c")]


# --- RTF \objdata (finding 2) ----------------------------------------------------------------

def test_rtf_object_without_closing_brace_ends_at_the_next_objdata():
    data = b"{\\rtf1 " + b"{\\*\\objdata 41424344\r\n" * 50
    assert list(expand(data)) == [(f"rtf-object[{i}]", b"ABCD") for i in range(50)]


def test_rtf_objects_are_cut_at_the_brace_or_the_next_objdata_whichever_comes_first():
    data = (b"{\\rtf1 {\\*\\objdata 4142}} text 4344 {\\object{\\*\\objdata 45 46\r\n"
            b"{\\*\\objdata 4748}")
    assert [item for _, item in expand(data)] == [b"AB", b"EF", b"GH"]


def test_rtf_objects_hex_decode_each_octet_at_most_once(monkeypatch):
    decoded = _counting(monkeypatch, "binascii", "unhexlify")
    data = b"{\\rtf1 " + b"\\objdata " + b"0" * 117 + b"\\objdata" * 150
    items = [item for _, item in expand(data)]
    assert items == [b"\0" * 58]
    assert sum(decoded) <= len(data)


def test_rtf_objects_are_decoded_only_while_the_budget_has_room(monkeypatch):
    decoded = _counting(monkeypatch, "binascii", "unhexlify")
    data = b"{\\rtf1 " + b"{\\*\\objdata 4142434445464748494a\r\n" * 1000
    items = [item for _, item in expand(data)]
    assert items == [b"ABCDEFGHIJ"] * MAX_ITEMS
    assert len(decoded) <= MAX_ITEMS + 1


def test_eicar_in_an_rtf_object_after_objects_without_brace_is_detected():
    data = (b"{\\rtf1 " + b"{\\*\\objdata 0102\r\n" * 100 + b"{\\*\\objdata "
            + binascii.hexlify(_eicar()) + b"}}")
    found = shipped_engine().scan(data)
    assert found is not None and found.name == "Mailmoat.Test.EICAR"
    assert found.where.startswith("rtf-object")


# --- uuencode (finding 3) --------------------------------------------------------------------

def test_uu_block_without_end_ends_at_the_next_begin():
    line = binascii.b2a_uu(b"Cat")
    data = b"hello\r\n" + b"begin 644 a.txt\r\n" * 3 + (b"begin 644 a.txt\r\n" + line) * 20
    assert uudecode(data) == [b""] * 3 + [b"Cat"] * 20


def test_uu_blocks_with_end_lines_are_unchanged():
    line = binascii.b2a_uu(b"Cat")
    data = (b"begin 644 a\n" + line + b"`\nend\ntext\nbegin 644 b\n" + line + b"begin 644 c\n"
            + line + b"end\n")
    # the inner "begin" belongs to block b, whose decoding stops at that line, as before
    assert uudecode(data) == [b"Cat", b"Cat"]


def test_uu_search_reads_each_octet_a_bounded_number_of_times(monkeypatch):
    scanned = []

    class Recording:
        def __init__(self, pattern):
            self.pattern = pattern

        def search(self, data, pos=0):
            match = self.pattern.search(data, pos)
            scanned.append((match.end() if match else len(data)) - pos)
            return match

    for name in ("_UU_BEGIN", "_UU_END"):
        monkeypatch.setattr(unpack, name, Recording(getattr(unpack, name)))
    data = b"begin 644 a\r\n" * 2000 + b"no end\r\n" * 100
    assert len(uudecode(data)) == 2000
    assert sum(scanned) <= 3 * len(data)


def test_eicar_uuencoded_without_end_line_is_detected():
    eicar = _eicar()
    lines = b"".join(binascii.b2a_uu(eicar[at:at + 45]) for at in range(0, len(eicar), 45))
    data = b"begin 644 x\r\n" * 100 + b"begin 644 eicar.com\n" + lines
    found = shipped_engine().scan(data)
    assert found is not None and found.name == "Mailmoat.Test.EICAR"
    assert found.where.startswith("uuencode")


# --- PDF streams (finding 4) -----------------------------------------------------------------

def test_pdf_streams_inflate_each_octet_a_bounded_number_of_times(monkeypatch):
    inflated = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *args):
            self.inner = real(*args)

        def decompress(self, body, *rest):
            inflated.append(len(body))
            return self.inner.decompress(body, *rest)

    monkeypatch.setattr(pdf, "zlib", types.SimpleNamespace(decompressobj=Counting,
                                                           error=zlib.error))
    data = b"%PDF-1.4\n" + b"stream\nX" * 2000 + b"endstream\n"
    assert list(expand(data)) == []
    assert 0 < sum(inflated) <= 2 * len(data)        # 0: the shim is not where PDFs inflate


def test_pdf_streams_are_found_with_and_without_endstream():
    body = zlib.compress(b"hello world" * 10)
    data = (b"%PDF-1.4\n1 0 obj\nstream\n" + body + b"\nendstream\nendobj\n"
            b"2 0 obj\nstream\r\nnot zlib\r\nendstream\nendobj\n"
            b"3 0 obj\nstream\n" + body + b"\nendobj\n"            # endstream missing
            b"4 0 obj\nstream\n" + body)                            # cut short
    assert [item for _, item in expand(data)] == [b"hello world" * 10] * 3


def test_eicar_in_a_pdf_stream_after_streams_without_zlib_is_detected():
    data = (b"%PDF-1.4\n" + b"stream\nX" * 500 + b"stream\n" + zlib.compress(_eicar())
            + b"\nendstream\n")
    found = shipped_engine().scan(data)
    assert found is not None and found.name == "Mailmoat.Test.EICAR"
    assert found.where.startswith("pdf-stream")
