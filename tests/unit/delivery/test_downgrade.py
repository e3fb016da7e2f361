"""downgrade.py: 8-bit bodies re-encoded as 7-bit, every other byte kept (RFC 6152 §3).

The oracle for "the same content" is Python's email parser: every leaf part of the
converted message decodes to what the same leaf of the original decodes to (line breaks
compared as CRLF, as the delivery client sends them both).
"""

from __future__ import annotations

import base64
import email
import re
from pathlib import Path

import pytest

from core.delivery.downgrade import Unconvertible, downgrade

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "spamham"


def leaves(raw: bytes) -> list[tuple[str, bytes]]:
    """(content type, decoded body with CRLF line breaks) of every leaf, in order."""
    found = []
    for part in email.message_from_bytes(raw).walk():
        if part.is_multipart():
            continue
        body = part.get_payload(decode=True) or b""
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        found.append((part.get_content_type(), body))
    return found


def header_of(raw: bytes) -> bytes:
    return raw[:re.search(rb"\r?\n\r?\n", raw).end()]


def assert_same_content(original: bytes, converted: bytes) -> None:
    assert converted.isascii()
    assert leaves(converted) == leaves(original)


# --- single parts ---------------------------------------------------------------------------

UTF8_TEXT = (b"Received: from a.test by b.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
             b"From: Anna <anna@a.test>\r\n"
             b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
             b"X-Folded: one\r\n\ttwo\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n"
             b"content-transfer-encoding:   8BIT\r\n"
             b"X-After: kept\r\n"
             b"\r\n"
             b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln.\r\n"
             b".a line starting with a dot = and an equals sign \r\n"
             + "ünïcödé ".encode() * 20 + b"\r\n")


def test_utf8_text_becomes_quoted_printable_and_decodes_the_same():
    converted = downgrade(UTF8_TEXT)
    assert_same_content(UTF8_TEXT, converted)
    assert b"\r\nContent-Transfer-Encoding: quoted-printable\r\n" in converted
    assert b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln." in converted
    assert max(map(len, converted.split(b"\r\n"))) <= 76     # RFC 2045 §6.7 (5)


def test_every_other_header_field_is_kept_byte_for_byte_in_its_place():
    converted = downgrade(UTF8_TEXT)
    assert header_of(converted) == header_of(UTF8_TEXT).replace(
        b"content-transfer-encoding:   8BIT", b"Content-Transfer-Encoding: quoted-printable")


def test_latin1_text_without_encoding_fields_gets_them():
    raw = (b"From: a@a.test\nSubject: caf\n\nun caf\xe9 cr\xe8me\nzwei\n")
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    assert header_of(converted) == (b"From: a@a.test\nSubject: caf\n"
                                    b"Content-Transfer-Encoding: quoted-printable\n"
                                    b"MIME-Version: 1.0\n\n")        # its own line breaks
    assert converted.endswith(b"un caf=E9 cr=E8me\r\nzwei\r\n")


def test_7bit_label_on_8bit_content_is_not_believed():
    raw = (b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n\r\nna\xc3\xafve\r\n")
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    assert header_of(converted) == (b"MIME-Version: 1.0\r\n"
                                    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")


def test_8bit_non_text_becomes_base64():
    payload = bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\nend\r\n"
    raw = (b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + payload)
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    assert b"Content-Transfer-Encoding: base64\r\n" in converted
    assert email.message_from_bytes(converted).get_payload(decode=True) == payload


def test_quoted_printable_with_raw_8bit_octets_is_encoded_again():
    # as in 3 spam messages of the corpus: decoders pass the raw octets through
    raw = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"caf=E9 and caf\xe9, a soft=\r\nbreak\r\n")
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    assert converted.endswith(b"\r\n\r\ncaf=E9 and caf=E9, a softbreak\r\n")


def test_all_ascii_message_is_returned_unchanged():
    raw = b"Subject: plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nonly ascii\r\n"
    assert downgrade(raw) is raw


# --- structure ----------------------------------------------------------------------------

ALTERNATIVE = (b"From: a@a.test\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative; boundary=\"=_b1\"\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n"
               b"This is a multi-part message in MIME format.\r\n"
               b"--=_b1\r\n"
               b"Content-Type: text/plain; charset=iso-8859-1\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n"
               b"Ol\xe1, se\xf1or.\r\n"
               b"--=_b1\r\n"
               b"Content-Type: text/html; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n"
               b"PHA+T2zDoSwgc2XDsW9yLjwvcD4=\r\n"
               b"--=_b1--\r\n"
               b"epilogue\r\n")


def test_multipart_converts_the_8bit_part_and_keeps_the_others_byte_for_byte():
    converted = downgrade(ALTERNATIVE)
    assert_same_content(ALTERNATIVE, converted)
    html_part = ALTERNATIVE[ALTERNATIVE.index(b"--=_b1\r\nContent-Type: text/html"):]
    assert converted.endswith(html_part)                 # second part, close, epilogue
    assert converted.startswith(
        b"From: a@a.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=\"=_b1\"\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"        # it said 8bit: no longer true
        b"This is a multi-part message in MIME format.\r\n"
        b"--=_b1\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Ol=E1, se=F1or.\r\n--=_b1\r\n")


def attached(inner: bytes, cte: bytes = b"8bit") -> bytes:
    return (b"From: a@a.test\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
            b"--outer\r\nContent-Type: text/plain\r\n\r\nsee the attached message\r\n"
            b"--outer\r\nContent-Type: message/rfc822\r\n"
            b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n"
            + inner + b"\r\n--outer--\r\n")


INNER = (b"From: b@b.test\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
         b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         b"\xe2\x82\xac 10\r\n"
         b"--inner\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: binary\r\n\r\n"
         b"%PDF-1.4 \xff\xfe\r\n"
         b"--inner--\r\n")


def test_attached_message_is_converted_inside_and_says_7bit():
    raw = attached(INNER)
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    assert b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" \
        b"From: b@b.test\r\nSubject: inner\r\n" in converted
    assert b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n" \
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=E2=82=AC 10\r\n--inner" in converted
    assert b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n" \
        in converted


def test_digest_parts_are_attached_messages():
    raw = (b"MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n"
           b"--d\r\n\r\nSubject: one\r\n\r\nna\xc3\xafve\r\n--d--\r\n")
    converted = downgrade(raw)
    assert_same_content(raw, converted)
    # no MIME-Version added there: the message's own counts for its parts
    assert b"--d\r\n\r\nSubject: one\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" \
        b"na=C3=AFve\r\n--d--\r\n" in converted


# --- what cannot be converted ------------------------------------------------------------

@pytest.mark.parametrize("kind", [b"message/global", b"message/global-headers",
                                  b"message/global-delivery-status"])
def test_internationalised_message_parts_go_through_a_7bit_hop_in_base64(kind):
    # RFC 6532 §3.7, RFC 6533 §6: unlike message/rfc822 they may be encoded; a bounce
    # quoting UTF-8 header fields was sent 8-bit to a next hop without 8BITMIME
    inner = b"Subject: Gr\xc3\xbc\xc3\x9fe\r\nFrom: j\xc3\xb6rg@example.test\r\n\r\n"
    raw = (b"MIME-Version: 1.0\r\nContent-Type: multipart/report; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n"
           b"--b\r\nContent-Type: " + kind + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + inner + b"--b--\r\n")
    converted = downgrade(raw)
    assert converted.isascii()
    part = converted.split(b"--b\r\n")[2].split(b"--b--")[0]
    fields, _, body = part.partition(b"\r\n\r\n")
    assert b"Content-Transfer-Encoding: base64" in fields
    assert base64.b64decode(body) == inner[:-2]     # the last CRLF is the delimiter's


@pytest.mark.parametrize("raw, where", [
    (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     b"--b\r\nContent-Type: message/partial\r\n\r\nSubject: x\r\n\r\n\xc3\xa9\r\n--b--\r\n",
     "8-bit octets in the message/partial body of part1"),
    (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     b"Pr\xe9ambule\r\n--b\r\n\r\nx\r\n--b--\r\n",
     "8-bit octets outside the parts of message"),
    (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n\xe9\r\n",
     "a multipart/mixed whose parts are not found"),
    (b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nZ\xe9==\r\n",
     "8-bit octets in the base64 body of message"),
])
def test_what_cannot_honestly_be_7bit_is_refused(raw, where):
    with pytest.raises(Unconvertible) as info:
        downgrade(raw)
    assert where in str(info.value)


def test_8bit_header_fields_stay_as_they_are_and_the_body_is_converted():
    raw = b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    assert downgrade(raw) == (b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n"
                              b"Content-Transfer-Encoding: quoted-printable\r\n"
                              b"MIME-Version: 1.0\r\n\r\nGr=C3=BC=C3=9Fe\r\n")


@pytest.mark.parametrize("raw", [
    b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nplain body\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Disposition: attachment; filename=\"caf\xe9.txt\"\r\n\r\nx\r\n--b--\r\n",
])
def test_a_message_whose_only_8bit_octets_are_in_header_fields_is_unchanged(raw):
    assert downgrade(raw) == raw


# --- real mail ------------------------------------------------------------------------------

def _corpus_8bit() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return [path for path in sorted(CORPUS.rglob("*"))
            if path.is_file() and not path.read_bytes().isascii()]


def _bodies_are_7bit(raw: bytes) -> bool:
    """No 8-bit octet in any leaf's body (header fields may keep theirs: rule 3)."""
    return all(part.is_multipart() or part.get_payload().isascii()
               for part in email.message_from_bytes(raw).walk())


def test_real_8bit_mail_converts_to_the_same_content():
    paths = _corpus_8bit()
    if not paths:
        pytest.skip(f"the shared corpus is not at {CORPUS.resolve()}")
    converted = 0
    for path in paths:
        raw = path.read_bytes()
        result = downgrade(raw)
        assert _bodies_are_7bit(result), path
        assert leaves(result) == leaves(raw), path
        converted += 1
    assert converted >= 300, converted


def test_a_deep_nest_with_8bit_text_at_its_end_converts_whole():
    """Every level asks about a range inside the last one (downgrade.py remembers where the
    next 8-bit octet is, and shares the pipeline's delimiter search)."""
    depth = 90
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(depth))
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    raw = (b"MIME-Version: 1.0\r\n" + head + b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + b"plain " * 1000 + b"caf\xc3\xa9" + tail)
    assert_same_content(raw, downgrade(raw))
