"""head_facts (the SMTP listener's quick read of the Subject and the Received count) reads a
header as split_header does, whatever its line ends: CRLF, bare LF or bare CR (mime.py rule
2). smtp-security finding 6: it knew only LF, so a Subject after a bare CR was missing from
the accepted event and Received fields after one were left out of the hop count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.pipeline.decompose.content_fields import decode_words
from core.pipeline.decompose.mime import head_facts, split_header

ENDINGS = [b"\r\n", b"\n", b"\r"]


def _read_by_split_header(head: bytes) -> tuple[str, int]:
    fields = split_header(head, 0, len(head)).fields
    subjects = [value for name, value in fields if name.lower() == "subject"]
    received = sum(name.lower() == "received" for name, _ in fields)
    return (decode_words(subjects[0])[0] if subjects else ""), received


def test_a_subject_after_a_bare_cr_is_read():
    facts = head_facts(b"X-A: 1\rSubject: forbidden stuff\r\n\r\nbody\r\n")
    assert facts.subject == "forbidden stuff"


def test_received_fields_after_bare_crs_are_counted_and_the_body_is_not():
    head = (b"Received: from a\rReceived: from b\r\tby c\rX-A: 1\rreceived : from d\r\r"
            b"Received: in the body\r\n")
    assert head_facts(head).received == 3
    assert _read_by_split_header(head)[1] == 3


def test_a_subject_folded_with_each_kind_of_line_end_is_read_whole():
    for ending in ENDINGS:
        head = b"Subject: one" + ending + b" two" + ending + b"\tthree" + ending + ending + b"x"
        assert head_facts(head).subject == "one two three", ending


def test_the_header_ends_at_two_line_ends_of_any_kind():
    for first in ENDINGS:
        for second in ENDINGS:
            if first == b"\r" and second.startswith(b"\n"):
                continue                      # CR then LF is one line end, not two
            head = b"X-A: 1" + first + second + b"Subject: in the body\r\n"
            assert head_facts(head).subject == "", (first, second)


_NAMES = st.sampled_from([b"Subject", b"Received", b"X-A", b"SUBJECT", b"received", b"To"])
_WORDS = st.text(alphabet="abc =?:;", min_size=0, max_size=12).map(str.encode)
_FIELD = st.tuples(_NAMES, st.sampled_from([b":", b" :", b": "]), _WORDS,
                   st.lists(st.tuples(st.sampled_from([b" ", b"\t"]), _WORDS), max_size=2))
_ENDING = st.sampled_from(ENDINGS)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_FIELD, _ENDING, st.lists(_ENDING, max_size=2)), max_size=8),
       _ENDING)
def test_head_facts_reads_what_split_header_reads(lines, last):
    head = b""
    for (name, colon, value, folds), ending, fold_endings in lines:
        head += name + colon + value
        for (blank, text), fold_ending in zip(folds, fold_endings):
            head += fold_ending + blank + text
        head += ending
    head += last + b"Subject: in the body\r\nReceived: in the body\r\n"
    facts = head_facts(head)
    assert (facts.subject, facts.received) == _read_by_split_header(head)
