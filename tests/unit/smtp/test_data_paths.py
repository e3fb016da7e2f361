"""Message content in bulk: DataReader's fast path (`_read_plain`) must give exactly what the
line-by-line reader gives, and DataEncoder's fast path exactly what the general one gives —
on random content cut into random chunks (Hypothesis), with tiny limits so the limit
branches run too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.smtp.client import DataEncoder
from core.smtp.readers import DataReader

PIECES = [b"a", b"bc", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b".\r\n", b"x" * 9]
content = st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=6)


def _feed(data: bytes, points, reader: DataReader, read) -> list:
    buffer, results, start = bytearray(), [], 0
    for point in sorted(points) + [len(data)]:
        buffer += data[start:max(start, point)]
        start = max(start, point)
        while True:
            result = read(buffer)
            results.append((result.chunk, result.is_complete))
            if result.is_complete or not result.chunk:
                break
        if results[-1][1]:
            break
    return [results, bytes(buffer), reader.size, reader.line_too_long, reader.size_exceeded,
            reader.bare_line_endings]


@settings(max_examples=400, deadline=None)
@given(content, cuts, st.sampled_from([4, 8, 1000]), st.sampled_from([None, 12, 40, 10_000]))
def test_reader_fast_path_equals_line_by_line(data, points, max_line, max_message):
    fast, plain = DataReader(max_line, max_message), DataReader(max_line, max_message)
    assert _feed(data, points, fast, fast.read) == _feed(data, points, plain, plain._read_lines)


def test_reader_fast_path_takes_plain_content_and_leaves_the_rest():
    reader = DataReader(1000, None)
    buffer = bytearray(b"Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n")
    result = reader._read_plain(buffer)
    assert result.chunk == b"Subject: x\r\n\r\n.dot\r\nline\r\n" and result.is_complete
    assert buffer == b"QUIT\r\n" and reader.size == len(result.chunk)
    # a bare LF, a bare CR, an overlong line: the line-by-line reader decides
    for odd in (b"a\nb\r\n", b"a\rb\r\n", b"y" * 1000 + b"\r\n"):
        assert DataReader(1000, None)._read_plain(bytearray(odd)) is None


def _general(encoder: DataEncoder, data: bytes) -> bytes:
    return encoder._encode(data)


@settings(max_examples=400, deadline=None)
@given(content, cuts)
def test_encoder_fast_path_equals_general(data, points):
    fast, general = DataEncoder(), DataEncoder()
    out_fast, out_general, start = [], [], 0
    for point in sorted(points) + [len(data)]:
        piece = data[start:max(start, point)]
        start = max(start, point)
        out_fast.append(fast.encode(piece))
        out_general.append(_general(general, piece))
    out_fast.append(fast.end())
    out_general.append(general.end())
    assert b"".join(out_fast) == b"".join(out_general)
