"""Delimiter lines found at a bounded cost, whatever the nesting (decompose/mime.py rule 5,
decompose/__init__.py rule 4; hostile-mime finding 5: each of the 100 levels followed searched
the whole rest of the message, so a 20,000-level nest cost 100 times its size).

The work is counted, not timed: `DelimiterSearch.octets` and the decomposer's budget of
MAX_DELIMITER_SEARCH_FACTOR times the size, which the nests here stay under only if every
level does not search the message again."""

import base64
import random

import pytest

from core.pipeline.decompose import MAX_DELIMITER_SEARCH_FACTOR, MAX_MIME_NESTING
from core.pipeline.decompose.content_fields import content_info
from core.pipeline.decompose.mime import (INDEX_MIN_OCTETS_PER_LINE, DelimiterSearch,
                                          find_parts, split_header)
from tests.support.mail import EICAR_ATTACHMENT, nested_multipart
from tests.support.mail import deep_nest as nested
from tests.unit.pipeline.support import view_of

TOP = b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
NOT_FOLLOWED = f"MIME nesting deeper than {MAX_MIME_NESTING} levels not followed"
TOO_COSTLY = "MIME structure too costly to follow"


def deep_nest(levels: int) -> bytes:
    return nested(levels, TOP)


# --- the same parts as before --------------------------------------------------------------

def test_a_nest_past_the_limit_has_its_first_levels_where_they_are_and_stops_there():
    raw = deep_nest(3000)
    view = view_of(raw)
    assert len(view.parts) == MAX_MIME_NESTING + 1
    for k, part in enumerate(view.parts[1:], 1):
        # level k: after the line "--b(k-1)" (which starts its parent's body, so owns no
        # line break), up to the line break before "--b(k-1)--"
        opener = b"\r\n--b%d\r\n" % (k - 1)
        start = raw.index(opener) + len(opener)
        end = raw.index(b"\r\n--b%d--\r\n" % (k - 1))
        assert (part.span, part.cut, part.parent) == ((start, end), (start - len(opener) + 2, end),
                                                      k - 1)
        assert part.content_type == "multipart/mixed"
    [error] = view.errors
    assert error.part == MAX_MIME_NESTING and NOT_FOLLOWED in error.reason
    assert not view.parts[-1].is_multipart and view.parts[-1].data == b""


def test_content_nested_past_the_limit_is_still_not_followed():
    view = view_of(nested_multipart(2000, EICAR_ATTACHMENT))
    [error] = view.errors
    assert NOT_FOLLOWED in error.reason
    assert view.parts[error.part].location.count(".") == MAX_MIME_NESTING - 1
    assert not any(p.filename == "eicar.com" for p in view.parts)


def test_a_nest_within_the_limit_is_followed_to_its_last_part():
    view = view_of(nested_multipart(MAX_MIME_NESTING, EICAR_ATTACHMENT))
    assert not view.errors
    assert view.parts[-1].filename == "eicar.com"


def test_a_nest_in_an_encoded_attached_message_is_searched_in_its_own_buffer():
    inner = deep_nest(3000)
    raw = (TOP + b"Content-Type: multipart/mixed; boundary=out\r\n\r\n--out\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--out\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(inner).replace(b"\n", b"\r\n") + b"--out--\r\n")
    view = view_of(raw)
    [error] = view.errors
    assert NOT_FOLLOWED in error.reason
    assert view.parts[error.part].location.startswith("part2/message")


# the shapes the index must answer exactly as a direct search does: line breaks of rule 2,
# blanks after delimiters, a boundary ending in blanks, lookalike lines, a close delimiter
# missing, the same boundary at two levels, a boundary that is also another's close line
SHAPES = {
    "crlf": b"--a\r\nX: 1\r\n\r\nx\r\n--a\r\n\r\ny\r\n--a--\r\nepilogue\r\n--a\r\n",
    "lf_and_cr": b"pre\n--a\nX: 1\n\nx\r--a \t\r\ry\n--a--\t\n",
    "lookalikes": b"--ab\r\n--a\r\n-- a\r\n x--a\r\n--a-\r\n--a---\r\n--a\r\n--a--\r\n",
    "unclosed": b"--a\r\n\r\none\r\n--a\r\n\r\ntwo",
    "boundary_is_close": b"--a--\r\n--a\r\n\r\nz\r\n--a----\r\n--a--\r\n",
    "blanks_in_boundary": b"--a \r\n--a  \r\n--a\r\n--a \t\r\n--a --\r\n",
    "at_buffer_end": b"--a\r\n\r\nlast\r\n--a--",
}


def _indexable(text: bytes) -> bytes:
    """`text` and filler after it, so that even a text of nothing but "--" lines is indexed."""
    return text + b"\n" + b"y" * INDEX_MIN_OCTETS_PER_LINE * len(text)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("boundary", ["a", "a ", "a--", "-"])
def test_the_index_finds_the_delimiters_a_direct_search_finds(name, boundary):
    text = SHAPES[name]
    buf = _indexable(text)
    for start in range(len(text) + 1):
        for end in (len(text), *(at for at in range(start, len(text)) if text[at] in b"\r\n")):
            direct = find_parts(buf, start, end, boundary, DelimiterSearch(buf))
            indexed = find_parts(buf, start, end, boundary, DelimiterSearch(buf, 0))
            assert indexed == direct, (start, end)


def test_the_index_agrees_with_a_direct_search_on_random_buffers():
    rng = random.Random(7)
    atoms = [b"-", b"--", b"a", b"a ", b"\r", b"\n", b"\r\n", b" ", b"\t", b"x", b"--a",
             b"--a--", b"\n--a\n", b"\r--a--\r\n", b"--a \t\r"]
    for _ in range(3000):
        text = b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 40)))
        start = rng.randint(0, len(text))
        end = rng.randint(start, len(text))
        boundary = rng.choice(["a", "a ", "a\t", "a-", "-", "aa", "a--", " ", "a\n"])
        buf = _indexable(text)
        assert (find_parts(buf, start, end, boundary, DelimiterSearch(buf, 0))
                == find_parts(buf, start, end, boundary, DelimiterSearch(buf))), (buf, start, end)


# --- the work counted ----------------------------------------------------------------------

def _walk(buf: bytes, start: int, end: int, search: DelimiterSearch, nesting: int = 0) -> None:
    """The decomposer's MIME walk, multiparts only."""
    header = split_header(buf, start, end)
    info = content_info(header.fields)
    if info.boundary is None or nesting == MAX_MIME_NESTING:
        return
    children, _closed = find_parts(buf, header.body_start, end, info.boundary, search)
    for child in children:
        _walk(buf, child.start, child.end, search, nesting + 1)


def test_the_delimiter_search_of_a_deep_nest_costs_a_few_times_its_size():
    raw = deep_nest(20_000)                  # 1.4 MB, the finding's smallest
    search = DelimiterSearch(raw)
    _walk(raw, 0, len(raw), search)
    assert search.octets <= 4 * len(raw)


def test_searching_every_level_of_a_deep_nest_directly_costs_the_nesting_times_its_size():
    # what the search did before rule 5, counted the same way
    raw = deep_nest(20_000)
    search = DelimiterSearch(raw, direct_factor=float("inf"))
    _walk(raw, 0, len(raw), search)
    assert search.octets > (MAX_MIME_NESTING - 2) * len(raw)


# --- the budget ----------------------------------------------------------------------------

def _blank_boundaries_nest(levels: int) -> bytes:
    # level k's boundary: "x" and (levels - k) blanks; every deeper delimiter line ("x" and
    # fewer blanks) is in the index under the same text and must be looked at, by every level
    out = [TOP]
    for k in range(levels):
        boundary = b"x" + b" " * (levels - k)
        out.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
                   + boundary + b"\r\n")
    out.append(b"Content-Type: text/plain\r\n\r\ninner\r\n")
    out += [b"--x" + b" " * (levels - k) + b"--\r\n" for k in range(levels - 1, -1, -1)]
    return b"".join(out)


def _dense_nest(levels: int) -> bytes:
    # so many lines starting with "--" that the buffer is not indexed (mime.py
    # INDEX_MIN_OCTETS_PER_LINE): every level searches it directly
    out = [TOP]
    out += [b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (k, k)
            for k in range(levels)]
    out.append(b"Content-Type: text/plain\r\n\r\n" + b"--\r\n" * 100_000)
    out += [b"--b%d--\r\n" % k for k in range(levels - 1, -1, -1)]
    return b"".join(out)


@pytest.mark.parametrize("raw", [_blank_boundaries_nest(200), _dense_nest(20)],
                         ids=["boundaries_ending_in_blanks", "dense_dash_lines"])
def test_a_structure_past_the_search_budget_is_unprocessable(raw):
    view = view_of(raw)
    [error] = view.errors
    assert error.reason.startswith(TOO_COSTLY)
    assert f"more than {MAX_DELIMITER_SEARCH_FACTOR} times" in error.reason
    stopped = view.parts[error.part]
    assert stopped is view.parts[-1] and not stopped.is_multipart and stopped.data == b""
    assert stopped.location.count(".") < MAX_MIME_NESTING - 1      # well before the limit


def test_a_few_levels_of_a_dense_buffer_stay_within_the_budget():
    view = view_of(_dense_nest(5))
    assert not view.errors
    assert view.parts[-1].data == b"--\r\n" * 99_999 + b"--"  # the last break is the close's
