"""A part in a Content-Transfer-Encoding no reader here knows (content18 B1;
core/pipeline/decompose/__init__.py rule 6).

An attachment sent `Content-Transfer-Encoding: x-foo` (base64 of EICAR inside) was read as
8bit: only `malformed`, delivered, the EICAR bytes never scanned; MIME-tools' x-gzip64 test
message likewise. SPEC §3 scan.unprocessable names "undecodable transfer encoding of an
attachment": such an attachment is now a scan_error with the configured handling. The
message text in such an encoding stays malformed only (readers show it as written, which is
what is scanned), and an identity encoding misspelt ("8-bit", "7bits") is read as 8bit.
"""

import base64

import pytest

from tests.support.mail import EICAR
from tests.unit.pipeline.support import CORPUS, verdict_of, view_of


def with_attachment(encoding: str, body: bytes, ctype: str = 'application/octet-stream; '
                    'name="x.bin"') -> bytes:
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: e\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
            b"--BB\r\nContent-Type: text/plain\r\n\r\nhello there\r\n"
            b"--BB\r\nContent-Type: " + ctype.encode() + b"\r\n"
            b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n"
            + body + b"\r\n--BB--\r\n")


EICAR_B64 = base64.b64encode(EICAR)


@pytest.mark.parametrize("handling,disposition", [
    ("hold", "hold"), ("drop", "drop"), ("deliver", "deliver")])
def test_an_attachment_in_an_unknown_transfer_encoding_is_unprocessable(handling, disposition):
    view, findings, verdict = verdict_of(with_attachment("x-foo", EICAR_B64),
                                         scan__unprocessable=handling)
    [error] = view.errors
    assert error.part == 2 and "'x-foo'" in error.reason
    [finding] = [f for f in findings if f.event == "scan_error"]
    assert finding.rule == "scan.unprocessable" and "x.bin" in finding.reason
    assert verdict.disposition == disposition
    assert view.parts[2].data == EICAR_B64          # scanned as written


def test_mime_tools_x_gzip64_message_is_unprocessable():
    path = CORPUS / "mime" / "mime4j" / "mimetools-testmsgs" / "x-gzip64.msg"
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    view, findings, verdict = verdict_of(path.read_bytes())
    assert any("'x-gzip64'" in error.reason for error in view.errors)
    assert verdict.disposition == "hold"


def test_the_message_text_in_an_unknown_encoding_is_malformed_only_and_read_as_written():
    raw = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: t\r\n"
           b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-foo\r\n\r\n"
           b"zqxsecret plans\r\n")
    rule = {"enabled": True, "match": "any", "terms": ["zqxsecret"], "none_of": []}
    view, findings, verdict = verdict_of(raw, rules__content=[rule])
    assert view.errors == []
    assert any("'x-foo'" in defect for defect in view.defects)
    assert [f.event for f in findings] == ["malformed", "content_rule_violation"]


@pytest.mark.parametrize("spelling", ["8-bit", "7bits", "8 bit", "7-BIT"])
def test_an_identity_encoding_misspelt_is_read_as_8bit_for_an_attachment_too(spelling):
    view, findings, verdict = verdict_of(with_attachment(spelling, b"plain bytes"))
    assert view.errors == [] and view.parts[2].data == b"plain bytes"
    assert [f.event for f in findings] == ["malformed"] and verdict.disposition == "deliver"


def test_an_attached_message_in_an_unknown_encoding_is_unprocessable_and_still_walked():
    inner = (b"From: b@outside.test\r\nSubject: inner\r\nContent-Type: application/x-foo; "
             b"name=\"run.exe\"\r\n\r\nMZ...\r\n")
    view = view_of(with_attachment("x-foo", inner, "message/rfc822"))
    assert [view.parts[e.part].content_type for e in view.errors] == ["message/rfc822"]
    assert "run.exe" in [p.filename for p in view.parts]


def test_repeated_encodings_one_unknown_conflict():
    raw = with_attachment("7bit\r\nContent-Transfer-Encoding: x-foo", b"data")
    view = view_of(raw)
    assert any("conflicting Content-Transfer-Encoding" in e.reason for e in view.errors)
