"""Header values read in linear time with the email package's results (decompose/fieldvalue.py;
x4-cost findings 5 and 6).

The hostile inputs are large enough that the email package's own readers take minutes on
them (quadratic); here they must give the right reading. No test measures time."""

import email.header
import email.message
from email.message import Message

import pytest

from core.pipeline.decompose.fieldvalue import decode_header, split_params
from core.pipeline.decompose.content_fields import content_info, decode_words
from tests.unit.pipeline.support import view_of

HOSTILE_CHARS = 400_000     # the email package: ~7 minutes per reading; here: milliseconds


def _raw(header: bytes, body: bytes = b"hello\r\n") -> bytes:
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nMessage-ID: <1@outside.test>\r\n"
            + header + b"\r\n" + body)


def _folded(name: bytes, value: bytes, width: int = 900) -> bytes:
    lines = [name + b": " + value[:width]]
    lines += [b" " + value[i:i + width] for i in range(width, len(value), width)]
    return b"\r\n".join(lines) + b"\r\n"


# --- finding 5: Content-Type / Content-Disposition parameters (CPython gh-136063) ---------------

def test_open_quote_in_content_type_parameters_reads_the_parameters_before_it():
    info = content_info([
        ("Content-Type", 'text/plain; charset=UTF-8; name="a.txt"; junk="' + ";" * HOSTILE_CHARS),
        ("Content-Disposition", 'attachment; filename="b.txt"; x="' + ";" * HOSTILE_CHARS)])
    assert (info.content_type, info.charset, info.filename, info.disposition, info.defects) \
        == ("text/plain", "utf-8", "b.txt", "attachment", [])


def test_open_quote_in_a_mime_part_header_keeps_the_multipart_structure():
    junk = b'; a="' + b";" * HOSTILE_CHARS
    raw = _raw(b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n",
               b"--BB\r\n" + _folded(b"Content-Type", b"application/pdf; name=x.pdf" + junk)
               + b"\r\n%PDF-1.4 hi\r\n--BB--\r\n")
    view = view_of(raw)
    assert [(p.content_type, p.filename) for p in view.parts] == [
        ("multipart/mixed", None), ("application/pdf", "x.pdf")]


@pytest.mark.parametrize("params", [
    'charset="utf-8"; format=flowed',
    'name*0*=UTF-8\'\'na%C3%AFve; name*1=".txt"',                    # RFC 2231 §3 and §4
    'name*=iso-8859-1\'en\'%A3rates.pdf',
    'boundary="--=_a;b\\"c"; charset=us-ascii',                       # ";" and \" quoted
    'name="a\\\\"; b="c;d"',
    ' ; ;charset = "koi8-r" ;',
    'name="open; charset=utf-8',                                       # an open quote
    'title*0="a"; title*=b',                                          # sort(None, 0): raises
])
def test_parameters_read_as_the_email_package_reads_them(params):
    ours = content_info([("Content-Type", "text/plain; " + params),
                         ("Content-Disposition", "inline; " + params)])
    reference = Message()
    reference["Content-Type"] = "text/plain; " + params
    reference["Content-Disposition"] = "inline; " + params
    try:
        expected = (reference.get_content_charset(), reference.get_filename(),
                    reference.get_param("boundary"))
    except Exception:
        assert ours.defects and ours.defects[0].startswith("unreadable content headers")
        return
    if isinstance(expected[2], tuple):
        expected = expected[:2] + (expected[2][2],)
    boundary = expected[2].strip('"') if expected[2] is not None else None
    assert (ours.charset, ours.filename, ours.boundary) == (
        expected[0], expected[1], boundary or None)


def test_every_parameter_reader_goes_through_the_linear_split(monkeypatch):
    # ParamMessage overrides the email package's private Message._get_params_preserve: should
    # a Python release stop calling it, the quadratic split would come back unnoticed
    from core.pipeline.decompose import fieldvalue
    seen = []
    monkeypatch.setattr(fieldvalue, "split_params",
                        lambda value: seen.append(value) or email.message._parseparam(value))
    info = content_info([("Content-Type", "multipart/mixed; boundary=b; charset=x"),
                         ("Content-Disposition", "attachment; filename=f")])
    assert (info.boundary, info.charset, info.filename) == ("b", "x", "f")
    assert set(seen) == {"multipart/mixed; boundary=b; charset=x", "attachment; filename=f"}


def test_split_params_is_the_email_package_split():
    from email.message import _parseparam
    for value in ['a="b;c"; d=e', 'a="\\";"; b', '"', ';', '', 'A = "x" ; B=\'y;z\'',
                  'a="x\\\\"; b="y', 'x=";\\";";y']:
        assert split_params(value) == _parseparam(value), value


# --- finding 6: RFC 2047 encoded words never closed ---------------------------------------------

def test_encoded_words_never_closed_are_kept_as_text_after_a_decoded_one():
    unclosed = "=?utf-8?q?x " * (HOSTILE_CHARS // 8)
    text, ok = decode_words("=?utf-8?q?caf=C3=A9?= " + unclosed)
    assert ok and text == "café " + unclosed


def test_encoded_words_never_closed_in_subject_and_other_headers():
    unclosed = b"=?utf-8?q?x " * (HOSTILE_CHARS // 8)
    raw = _raw(_folded(b"Subject", b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= " + unclosed)
               + _folded(b"X-Foo", unclosed))
    view = view_of(raw)
    assert view.subject.startswith("Grüße =?utf-8?q?x =?utf-8?q?x")
    assert view.subject.endswith("=?utf-8?q?x")
    assert view.header_all("x-foo")[0].startswith("=?utf-8?q?x =?utf-8?q?x")


@pytest.mark.parametrize("value", [
    "=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=",                     # space between words goes
    "Re: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= plain",
    "=?utf-8?b?w6k?=",                                                 # missing padding
    "=?utf-8?q?a?b?= tail",                                           # "?" inside: Python's reading
    "=?utf-8?q?open word =?utf-8?q?closed?=",
    "=?utf-8?q?x\n?= =?utf-8?q?y?=",                                  # a line break in the word
    "=?a\nb?q?x?=",                                                     # ...in the charset
    "=?utf-8?q?a\x0bb?=",                                       # \x0b: a line for splitlines
    "  =?us-ascii?q?a?=\n =?us-ascii?q?b?=  c",
    "=?x-unknown?q?a?=",                                                # unknown charset: raises
    "=?utf-8?b?!!!?=",                                                  # bad base64: raises
    "=?a=?q?x?=",
])
def test_encoded_words_decode_as_the_email_package_decodes_them(value):
    def outcome(decode):
        try:
            return str(email.header.make_header(decode(value)))
        except Exception as exc:
            return type(exc)
    assert outcome(decode_header) == outcome(email.header.decode_header)
