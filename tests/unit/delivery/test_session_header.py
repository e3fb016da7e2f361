"""session._header_is_ascii: the SMTPUTF8 decision reads the header section only (rule 4)."""

import io

import pytest

from core.delivery import session

CASES = [
    (b"Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n", True),     # UTF-8 in the body only
    (b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nplain\r\n", False),
    (b"Subject: a\r\nX-Last: \xc3\xa9\r\n\r\n", False),          # last header line
    (b"\r\nGr\xc3\xbc\xc3\x9fe\r\n", True),                        # no header section at all
    (b"Subject: a\r\n", True),                                     # header only, no body
    (b"Subject: a\r\n X-Folded: \xc3\xa9\r\n\r\n", False),       # a folded line is header
    (b"", True),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, session.HEADER_CHUNK_OCTETS])
@pytest.mark.parametrize("data, expected", CASES)
def test_header_is_ascii_at_every_read_size(tmp_path, monkeypatch, data, expected, chunk):
    monkeypatch.setattr(session, "HEADER_CHUNK_OCTETS", chunk)
    path = tmp_path / "message"
    path.write_bytes(data)
    assert session._header_is_ascii(path) is expected


def test_header_is_ascii_reads_no_further_than_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "HEADER_CHUNK_OCTETS", 64)
    path = tmp_path / "message"
    path.write_bytes(b"Subject: a\r\n\r\n" + b"x" * 10_000)
    reads = []

    class Counted(io.BufferedReader):
        def read(self, size=-1):
            reads.append(size)
            return super().read(size)

    monkeypatch.setattr(session, "open", lambda name, mode: Counted(io.FileIO(name, mode)),
                        raising=False)
    assert session._header_is_ascii(path)
    assert reads == [64]
