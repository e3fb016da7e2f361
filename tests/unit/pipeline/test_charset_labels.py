"""Charset labels read as mail readers read them (decompose/charsets.py), in bodies, encoded
words and RFC 2231 file names, and an HTML part's <meta> charset where its MIME header names
none. Regression for i18n findings 2, 3 and 9: labels Python's codec registry does not know
("x-sjis", "windows-31j", "x-gbk", "windows-874", ...) fell back to UTF-8/Latin-1 or failed
outright, and "gb2312", "iso-8859-1", "shift_jis", "euc-kr" were read more narrowly than
readers read them, so subject lines, content terms and file-name patterns missed text every
reader shows."""

from __future__ import annotations

import base64
import email
import email.header
from email import policy

import pytest
import webencodings.labels

from core.pipeline.decompose import charsets
from core.pipeline.decompose.content_fields import content_info
from core.pipeline.decompose.fieldvalue import decode_words_text
from core.pipeline.decompose.text import decode_text
from core.pipeline.findings import Finding
from core.pipeline.rewrite import rewrite
from tests.unit.pipeline.support import view_of

# (label, Python codec that writes what readers read under it, text) — labels Python's
# registry does not know; each is what some reader sends or shows
UNKNOWN_TO_PYTHON = [
    ("windows-31j", "cp932", "これは機密です"),
    ("x-sjis", "shift_jis", "今日は無料です"),
    ("x-gbk", "gbk", "请查收發票"),
    ("csgb2312", "gb2312", "今天免费领取"),
    ("gb_2312", "gb2312", "今天免费领取"),
    ("x-euc-jp", "euc_jp", "これは機密です"),
    ("cseuckr", "euc_kr", "기밀 문서입니다"),
    ("windows-949", "cp949", "똠방각하 기밀"),
    ("ks_c_5601-1989", "euc_kr", "기밀 문서입니다"),
    ("windows-874", "cp874", "เอกสารลับ \u2026"),
    ("iso-8859-8-i", "iso8859_8", "מסמך סודי"),
    ("x-mac-cyrillic", "mac_cyrillic", "Это секретно"),
    ("x-cp1251", "cp1251", "Это секретно"),
    ("iso88591", "cp1252", "ma sœur, café"),
    ("koi8", "koi8_r", "Это секретно"),
    ("cn-big5", "big5", "機密文件"),
]

# labels Python knows, but reads more narrowly than readers do (the Standard's table)
WIDER_THAN_PYTHON = [
    ("gb2312", "gbk", "请查收發票"),                     # GBK-only 發
    ("iso-8859-1", "cp1252", "ma sœur \u201cle\u201d \u20ac"),   # 0x9C, 0x93, 0x94, 0x80
    ("us-ascii", "cp1252", "\u201cquoted\u201d \u2013 caf\xe9"),  # and not UTF-8
    ("iso-8859-9", "cp1254", "\u0160ifre \u2018gizli\u2019"),    # 0x8A, 0x91, 0x92
    ("tis-620", "cp874", "ลับ \u2026 \u20ac"),                     # 0x85, 0x80
    ("shift_jis", "cp932", "①機密②"),                             # NEC row 13
    ("euc-kr", "cp949", "똠방각하"),                              # cp949's extension
]


@pytest.mark.parametrize("label, codec, text", UNKNOWN_TO_PYTHON + WIDER_THAN_PYTHON)
def test_a_body_is_read_in_the_charset_readers_read_its_label_as(label, codec, text):
    assert decode_text(text.encode(codec), label) == (text, None)


@pytest.mark.parametrize("label, codec, text", UNKNOWN_TO_PYTHON + WIDER_THAN_PYTHON)
def test_an_encoded_word_is_read_in_the_charset_readers_read_its_label_as(label, codec, text):
    encoded = base64.b64encode(text.encode(codec)).decode()
    decoded = decode_words_text(f"Re: =?{label}?B?{encoded}?= [x]")
    # a us-ascii word is joined to the text around it with a space more, as make_header does
    assert " ".join(decoded.split()) == f"Re: {text} [x]"


def test_every_label_of_the_encoding_standard_reads_as_that_encoding():
    for label, name in webencodings.labels.LABELS.items():
        if name == "replacement":           # charsets.py rule 3: Python's codec, if any
            continue
        assert charsets.encoding(label.upper()) == name, label
        data = "plain ASCII".encode(name) if name.startswith("utf-16") else b"plain ASCII"
        assert charsets.decode(data, f" {label} ") == "plain ASCII", label


def test_windows_code_pages_read_every_c1_byte_so_latin1_words_never_fail():
    # iso-8859-1 is windows-1252 to readers; its five bytes windows-1252 leaves undefined are
    # C1 controls, as ISO-8859-1 had them, so such a word still decodes
    assert charsets.decode(bytes(range(0x80, 0xA0)), "iso-8859-1") == (
        "€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ")
    assert decode_words_text("=?iso-8859-1?q?s=9Cur=81?=") == "sœur\x81"
    assert charsets.decode(b"\x81\xdb", "windows-874", "replace") == "\x81\ufffd"


def test_utf16_reads_its_byte_order_mark_and_little_endian_without_one():
    assert decode_text("Das ist geheim".encode("utf-16-be"), "utf-16") != \
        ("Das ist geheim", None)
    for data in ("Das ist geheim".encode("utf-16-le"),
                 b"\xff\xfe" + "Das ist geheim".encode("utf-16-le"),
                 b"\xfe\xff" + "Das ist geheim".encode("utf-16-be")):
        assert decode_text(data, "utf-16") == ("Das ist geheim", None)
        assert decode_text(data, "unicodefeff") == ("Das ist geheim", None)


def test_labels_only_python_knows_still_read_and_unknown_ones_fall_back():
    assert decode_text("Grüße".encode("utf-7"), "utf-7") == ("Grüße", None)
    assert decode_text("Grüße".encode("cp850"), "cp850") == ("Grüße", None)
    assert decode_text("x".encode(), "base64") == ("x", "unknown charset 'base64'")
    assert decode_text("\u201cGrüße\u201d".encode("cp1252"), "x-nonesuch") == (
        "\u201cGrüße\u201d", "unknown charset 'x-nonesuch'")
    assert decode_text("Grüße".encode(), "x-nonesuch") == ("Grüße",
                                                             "unknown charset 'x-nonesuch'")


@pytest.mark.parametrize("value", [
    "=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=",
    "Re: =?ISO-8859-2?Q?=B1?= plain =?koi8-r?q?=F0?=(x)",
    "=?utf-8?q?a?= =?UTF8?q?b?= =?us-ascii?q?c?= d =?ascii?q?e?=",
    "=?unknown-8bit?q?caf=E9?= x",
    "a \\ =?utf-8?q?b?=) (=?utf-8?q?c?=",
    "=?x-unknown?q?a?=",
    "=?utf-8?b?!!!?=",
])
def test_words_in_labels_python_reads_alike_decode_as_the_email_package_decodes_them(value):
    """decode_words_text rewrites make_header's joining of the decoded words; where the
    charsets are read alike, the text (or the exception) is the email package's."""
    def outcome(decode):
        try:
            return decode(value)
        except Exception as exc:
            return type(exc)
    assert outcome(decode_words_text) == outcome(
        lambda v: str(email.header.make_header(email.header.decode_header(v))))


def test_an_rfc2231_file_name_is_read_in_the_charset_readers_read_its_label_as():
    name = "請求書.js"
    quoted = "".join(f"%{b:02X}" for b in name.encode("cp932"))
    info = content_info([("Content-Type", "application/octet-stream"),
                         ("Content-Disposition", f"attachment; filename*=x-sjis''{quoted}")])
    assert info.filename == name
    info = content_info([("Content-Type", f"application/octet-stream; "
                                          f"name*=windows-31j''{quoted}")])
    assert info.filename == name


def test_an_encoded_word_file_name_in_an_unknown_to_python_label_is_read():
    raw = (b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attachment\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b'Content-Disposition: attachment; filename="=?x-sjis?B?aW52b2ljZS5qcw==?="\r\n'
           b"\r\nWScript.Echo(1)\r\n--b--\r\n")
    view = view_of(raw)
    assert view.parts[2].filename == "invoice.js"
    assert view.defects == []


# --- i18n finding 9: an HTML part's <meta> charset where the MIME header names none -----------

SECRET = "Это секретно"


@pytest.mark.parametrize("head", [
    b"<html><head><meta charset=windows-1251></head>",
    b'<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=windows-1251">',
    b"<meta http-equiv=content-type content='text/html;charset = \"cp1251\"'>",
    b"<!-- <meta charset=koi8-r> --><meta charset=windows-1251>",
    b'<p title="<meta charset=koi8-r>"><meta name=x charset="x-cp1251">',
    b"<meta charset=nonesuch><meta charset=utf-7><meta charset=windows-1251>",
    b"<meta content='text/html; charset=koi8-r'><meta charset=windows-1251>",  # no pragma
])
def test_html_without_a_charset_is_read_by_its_meta_as_browsers_read_it(head):
    data = head + f"<body>{SECRET}</body></html>".encode("cp1251")
    text, defect = decode_text(data, None, is_html=True)
    assert SECRET in text and defect is None


def test_the_meta_charset_counts_only_for_html_without_a_mime_charset():
    data = b"<meta charset=windows-1251>" + SECRET.encode("cp1251")
    assert SECRET not in decode_text(data, None)[0]                       # text/plain
    assert SECRET not in decode_text(data, "koi8-r", is_html=True)[0]     # MIME's wins
    late = b"<p>" + b" " * charsets.PRESCAN_OCTETS + data                 # past 1024 bytes
    assert SECRET not in decode_text(late, None, is_html=True)[0]
    assert charsets.html_charset(b"<meta charset=utf-16le>") == "utf-8"
    assert charsets.html_charset(b"<meta charset=x-user-defined>") == "windows-1252"
    assert charsets.html_charset(b'<meta charset="koi8-r') is None        # never closed
    assert charsets.html_charset(b"<!--><meta charset=koi8-r>") == "koi8-r"


# --- the disclaimer (text_append.py): reading side only -------------------------------------

HEAD = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: report\r\nMIME-Version: 1.0\r\n"


def _disclaimer(raw: bytes, text: str) -> bytes:
    finding = Finding(rule="disclaimer", action="add_text", event=None, reason="t", text=text)
    return rewrite(raw, view_of(raw), [finding])


def _text_leaves(raw: bytes) -> list[tuple[str, str | None, bytes]]:
    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    return [(p.get_content_type(), p.get_content_charset(), p.get_payload(decode=True))
            for p in parsed.walk() if p.get_content_maintype() == "text"]


def test_ascii_text_in_a_label_only_readers_know_takes_the_disclaimer_in_place():
    """ASCII in "x-sjis" reads the same as UTF-8, so the part is relabelled and the
    disclaimer goes inline, as for any charset Python knows (not into a part of its own)."""
    raw = HEAD + b"Content-Type: text/plain; charset=x-sjis\r\n\r\nHello Bob\r\n"
    out = _disclaimer(raw, "本メールはスキャン済みです。")
    [(ctype, charset, data)] = _text_leaves(out)
    assert (ctype, charset) == ("text/plain", "utf-8")
    assert data.decode("utf-8").split() == ["Hello", "Bob", "本メールはスキャン済みです。"]


def test_html_without_a_charset_whose_meta_declares_one_is_not_relabelled_utf8():
    """Its bytes happen to be valid UTF-8, but readers read them by the <meta>: relabelled
    UTF-8, "РЎ" (cp1251 D0 A1) would show as "С". The addition goes in as character
    references, which read alike in any charset the meta may name."""
    markup = b"<html><head><meta charset=windows-1251></head><body>" + \
        "РЎ".encode("cp1251") + b"</body></html>\r\n"
    out = _disclaimer(HEAD + b"Content-Type: text/html\r\n\r\n" + markup, "Проверено.")
    [(ctype, charset, data)] = _text_leaves(out)
    assert (ctype, charset) == ("text/html", None)
    assert data.startswith(markup[:-len(b"</body></html>\r\n")])
    assert "&#1055;&#1088;".encode() in data and data.isascii() is False
