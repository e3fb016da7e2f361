"""International text read as mail readers show it (i18n19 A1, A2, B6).

A1: header text no RFC 2047 word declares (a raw 8-bit Subject or file name, as Japanese,
Chinese, Korean and Russian mailers write it; raw ISO-2022-JP, which is 7-bit) was read as
Latin-1: `*特価*`, `*срочно*` and content terms in the Subject, and `*機密*` for a file name,
missed it, and events showed mojibake. Readers read it in the message's charset
(core/pipeline/decompose/mime.py rule 6). A2: one invalid byte in a UTF-8 text, raw Subject
or encoded word made all of it windows-1252 (or left the word as written), past every
non-Latin term; readers show the rest as written (charsets.py rule 5). B6: an encoded word
labelled us-ascii holding UTF-8 is read as a text part so labelled is.

The heuristic engine still reads the older reading, the one its model learned on
(`MessageView.as_learned`).

review19 R1: the listener reads the message's charset at a bounded cost (mime.head_charset);
R2: an attached message is read in its own charset.
"""

import base64

import pytest

from core.pipeline.decompose import mime
from core.pipeline.decompose.content_fields import decode_word_readings
from core.pipeline.decompose.mime import head_facts, message_charset
from core.smtp.reception import HEAD_OCTETS
from tests.unit.pipeline.support import corpus_rows, verdict_of, view_of

HEAD = b"From: tester@outside.test\r\nTo: user@local.test\r\nMIME-Version: 1.0\r\n"


def single(subject: bytes, charset: str | None, body: bytes, cte: bytes = b"8bit",
           subtype: bytes = b"plain") -> bytes:
    """One text part: `subject` as written, the body declared in `charset`."""
    ctype = b"text/" + subtype + (b"; charset=" + charset.encode() if charset else b"")
    return (HEAD + b"Subject: " + subject + b"\r\nContent-Type: " + ctype
            + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + body + b"\r\n")


def mixed(subject: bytes, text_charset: str, text: bytes, attachment_header: bytes) -> bytes:
    """multipart/mixed (no charset of its own): a text part in `text_charset`, then a file."""
    return (HEAD + b"Subject: " + subject + b"\r\n"
            b"Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
            b"--BB\r\nContent-Type: text/plain; charset=" + text_charset.encode() + b"\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text + b"\r\n"
            b"--BB\r\n" + attachment_header + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"%PDF-1.4 hello") + b"\r\n--BB--\r\n")


SUBJECT_LINES = ["*特価*", "*срочно*", "*광고*", "*免费*", "*免費*", "*ΠΡΟΣΦΟΡΑ*"]

RAW_SUBJECTS = [
    ("shift_jis", "shift_jis", "特価のお知らせ"),
    ("x-sjis", "cp932", "特価のお知らせ"),
    ("euc-jp", "euc_jp", "特価のお知らせ"),
    ("koi8-r", "koi8_r", "Срочно: отчёт"),
    ("windows-1251", "cp1251", "Срочно: отчёт"),
    ("gb2312", "gbk", "免费发票"),
    ("big5", "big5", "免費發票"),
    ("euc-kr", "cp949", "광고 안내"),
    ("iso-8859-7", "iso8859_7", "ΠΡΟΣΦΟΡΑ εβδομάδας"),
]


@pytest.mark.parametrize("label, codec, subject", RAW_SUBJECTS)
def test_a_raw_subject_in_the_messages_charset_meets_the_subject_lines(label, codec, subject):
    raw = single(subject.encode(codec), label, "こんにちは".encode(codec, "replace"))
    view, findings, verdict = verdict_of(raw, subject__enabled=True,
                                         subject__lines=SUBJECT_LINES)
    assert view.subject == subject                      # the events' subject column
    assert head_facts(raw).subject == subject           # the listener's, for its events
    assert verdict.disposition == "drop" and verdict.rule == "subject.lines"
    assert [f.data["subject"] for f in findings] == [subject]


def test_raw_iso_2022_jp_is_read_by_its_escape_sequences_whatever_the_charset():
    subject = "特価 機密のお知らせ"
    for charset in ("iso-2022-jp", None, "us-ascii"):
        raw = single(subject.encode("iso-2022-jp"), charset, b"hello", b"7bit")
        view, _, verdict = verdict_of(raw, subject__enabled=True, subject__lines=["*特価*"])
        assert view.subject == subject and head_facts(raw).subject == subject
        assert verdict.rule == "subject.lines"
    # ASCII with an ESC that is no ISO-2022-JP escape stays as written
    assert view_of(single(b"a\x1b[1mb", None, b"x")).subject == "a\x1b[1mb"


@pytest.mark.parametrize("label, codec, term, subject", [
    ("koi8-r", "koi8_r", "секретно", "Документ секретно"),
    ("windows-1251", "cp1251", "секретно", "Документ секретно"),
    ("shift_jis", "cp932", "機密", "機密のお知らせ"),
    ("gb2312", "gbk", "机密", "机密文件"),
])
def test_a_content_term_only_in_a_raw_subject_is_found(label, codec, term, subject):
    rule = {"enabled": True, "match": "any", "terms": [term], "none_of": []}
    raw = single(subject.encode(codec), label, "Добрый день".encode(codec, "replace"))
    _, findings, verdict = verdict_of(raw, rules__content=[rule])
    assert [f.event for f in findings] == ["content_rule_violation"]
    assert verdict.disposition == "drop"


def test_a_multipart_message_is_read_in_its_first_text_parts_charset():
    raw = mixed("Срочно: отчёт".encode("koi8_r"), "koi8-r", "Привет".encode("koi8_r"),
                b"Content-Type: application/pdf")
    assert message_charset(raw) == "koi8-r"
    view, _, verdict = verdict_of(raw, subject__enabled=True, subject__lines=["*срочно*"])
    assert view.subject == "Срочно: отчёт" == head_facts(raw).subject
    assert verdict.rule == "subject.lines"
    # the top part's charset wins; an attached message is another message
    assert message_charset(single(b"x", "euc-kr", b"x")) == "euc-kr"
    inner = HEAD + b"Content-Type: text/plain; charset=koi8-r\r\n\r\nx\r\n"
    assert message_charset(HEAD + b"Content-Type: message/rfc822\r\n\r\n" + inner) is None


def test_a_raw_file_name_in_the_messages_charset_meets_the_file_name_patterns():
    name = "機密資料.pdf".encode("cp932")
    raw = mixed("資料".encode("cp932"), "shift_jis", "添付します".encode("cp932"),
                b"Content-Type: application/pdf; name=\"" + name + b"\"\r\n"
                b"Content-Disposition: attachment; filename=\"" + name + b"\"")
    view, findings, _ = verdict_of(raw, filename__enabled=True, filename__patterns=["*機密*"])
    assert view.parts[2].filename == "機密資料.pdf"
    assert name.decode("latin-1") in view.parts[2].other_names     # the older reading too
    [deleted] = [f for f in findings if f.event == "attachment_deleted"]
    assert deleted.data["file"] == "機密資料.pdf"


def test_a_raw_gbk_file_name_is_named_as_readers_show_it():
    name = "发票.exe".encode("gbk")
    raw = mixed("发票".encode("gbk"), "gb2312", "请查收".encode("gbk"),
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Disposition: attachment; filename=\"" + name + b"\"")
    _, findings, _ = verdict_of(raw, filename__enabled=True, filename__patterns=["*.exe"])
    assert [f.data["file"] for f in findings if f.event == "attachment_deleted"] == ["发票.exe"]


def test_a_raw_display_name_reads_in_the_messages_charset():
    raw = single(b"hello", "shift_jis", b"x").replace(
        b"From: tester@outside.test", b"From: " + "山田 太郎".encode("cp932")
        + b" <tester@outside.test>")
    view = view_of(raw)
    assert view.header("from") == "山田 太郎 <tester@outside.test>"
    assert view.header_all("from", decoded=False) == ["山田 太郎 <tester@outside.test>"]


def test_without_a_charset_raw_non_utf8_text_stays_latin1_and_utf8_stays_utf8():
    assert view_of(single("café".encode("latin-1"), None, b"x")).subject == "café"
    assert view_of(single("Срочно".encode(), "koi8-r", b"x")).subject == "Срочно"


def test_the_heuristic_engine_reads_the_raw_subject_as_it_learned_it():
    subject = "特価のお知らせ".encode("cp932")
    view = view_of(single(subject, "shift_jis", b"x"))
    learned = view.as_learned()
    assert learned.subject == subject.decode("latin-1") == learned.header("subject")
    assert view.subjects() == ["特価のお知らせ", subject.decode("latin-1")]
    plain = view_of(single("Срочно".encode(), "koi8-r", b"x"))
    assert plain.as_learned() is plain


# --- A2: one bad byte in UTF-8 -----------------------------------------------------------

SECRET_RULE = {"enabled": True, "match": "any", "terms": ["секретно"], "none_of": []}


@pytest.mark.parametrize("subtype, body", [
    (b"plain", "Документ ".encode() + b"\xff" + " секретно.".encode()),
    (b"html", "<p>Документ секретно</p>".encode() + b"\xff"),
])
def test_a_utf8_text_with_one_bad_byte_is_read_as_utf8(subtype, body):
    view, findings, verdict = verdict_of(single(b"report", "utf-8", body, subtype=subtype),
                                         rules__content=[SECRET_RULE])
    assert "Документ" in view.parts[0].text and "\ufffd" in view.parts[0].text
    assert any("invalid UTF-8" in defect for defect in view.defects)     # still malformed
    assert [f.event for f in findings] == ["malformed", "content_rule_violation"]
    assert verdict.disposition == "drop"


@pytest.mark.parametrize("subject", [
    "Срочно: секретно ".encode() + b"\xff",                                  # raw
    b"=?utf-8?B?" + base64.b64encode("Срочно: секретно ".encode() + b"\xff") + b"?=",
    b"=?utf-8?Q?=" + "Срочно".encode().hex("=").upper().encode() + b"=FF_x?=",
])
def test_a_utf8_subject_with_one_bad_byte_meets_subject_lines_and_terms(subject):
    raw = single(subject, "utf-8", b"hello")
    view, findings, verdict = verdict_of(raw, subject__enabled=True,
                                         subject__lines=["*срочно*"],
                                         rules__content=[{**SECRET_RULE,
                                                          "terms": ["срочно"]}])
    assert view.subject.startswith("Срочно") and "\ufffd" in view.subject
    assert head_facts(raw).subject == view.subject
    assert verdict.rule == "subject.lines"
    assert {f.event for f in findings} >= {"subject_blocked", "content_rule_violation"}


def test_an_encoded_word_with_a_bad_byte_is_still_a_defect_and_learned_as_written():
    value = "=?utf-8?B?" + base64.b64encode(b"ok \xff").decode() + "?="
    assert decode_word_readings(value) == (["ok \ufffd", value], False)
    view = view_of(single(value.encode(), None, b"x"))
    assert "message: bad encoded word in Subject" in view.defects
    assert view.as_learned().subject == value


# --- B6: us-ascii words holding UTF-8 -------------------------------------------------------

def test_a_us_ascii_word_holding_utf8_reads_as_a_us_ascii_text_does():
    text = "Срочно: секретно".encode()
    word = "=?us-ascii?B?" + base64.b64encode(text).decode() + "?="
    readings, ok = decode_word_readings(word)
    assert ok and readings[0] == text.decode()
    assert readings[1].startswith("Ð¡Ñ")                       # the older reading: cp1252
    view, _, verdict = verdict_of(single(word.encode(), "us-ascii", text),
                                  subject__enabled=True, subject__lines=["*срочно*"],
                                  rules__content=[SECRET_RULE])
    assert view.parts[0].text.strip() == view.subject == text.decode()
    assert verdict.rule == "subject.lines"


# --- review19 R2: an attached message in its own charset ----------------------------------

def forwarding(inner: bytes, cte: bytes) -> bytes:
    """A KOI8-R message, with a file of a raw KOI8-R name, that forwards `inner`."""
    body = inner if cte == b"8bit" else base64.encodebytes(inner).replace(b"\n", b"\r\n")
    return (HEAD + b"Subject: " + "Пересылка".encode("koi8_r") + b"\r\n"
            b"Content-Type: multipart/mixed; boundary=\"OO\"\r\n\r\n"
            b"--OO\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n"
            + "См. ниже".encode("koi8_r") + b"\r\n"
            b"--OO\r\nContent-Type: application/pdf\r\n"
            b"Content-Disposition: attachment; filename=\"" + "отчёт.pdf".encode("koi8_r")
            + b"\"\r\n\r\n%PDF-1.4 hello\r\n"
            b"--OO\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte
            + b"\r\n\r\n" + body + b"\r\n--OO--\r\n")


@pytest.mark.parametrize("cte", [b"8bit", b"base64"])      # read in place, and decoded
def test_a_forwarded_message_is_read_in_its_own_charset(cte):
    name = "機密資料.xls".encode("cp932")
    inner = mixed("機密".encode("cp932"), "shift_jis", "添付します".encode("cp932"),
                  b"Content-Type: application/vnd.ms-excel\r\n"
                  b"Content-Disposition: attachment; filename=\"" + name + b"\"")
    raw = forwarding(inner, cte)
    view, findings, _ = verdict_of(raw, filename__enabled=True,
                                   filename__patterns=["*機密*", "*отчёт*"])
    assert view.subject == "Пересылка"
    names = [p.filename for p in view.parts if p.filename]
    assert names == ["отчёт.pdf", "機密資料.xls"]          # the outer's, the inner's
    assert name.decode("latin-1") in view.parts[-1].other_names    # the older reading too
    deleted = [f.data["file"] for f in findings if f.event == "attachment_deleted"]
    assert deleted == ["отчёт.pdf", "機密資料.xls"]


# --- review19 R1: the listener's charset at a bounded cost --------------------------------

def _continuations(count: int) -> bytes:
    return b"; ".join(b"name*%d*=utf-8''%%ff%%fe" % i for i in range(count))


def _nest(levels: int) -> bytes:
    out = b"Content-Type: multipart/mixed; boundary=a0\r\n\r\n"
    for level in range(1, levels):
        out += b"--a%d\r\nContent-Type: multipart/mixed; boundary=a%d\r\n\r\n" % (
            level - 1, level)
    return out + b"--a%d\r\nContent-Type: application/x\r\n\r\n" % (levels - 1) \
        + b"--x\r\n" * 20_000


_PARAMS_1000 = b"; ".join(b"p%d=%d" % (i, i) for i in range(1000))
HOSTILE_HEADS = {      # after a Subject with one raw 8-bit byte, cut at HEAD_OCTETS
    "one Content-Type of RFC 2231 continuations":
        b"Content-Type: application/x; " + _continuations(3000) + b"\r\n\r\n",
    "one Content-Type of plain parameters":
        b"Content-Type: text/plain; " + b"; ".join(b'a%d="xxxxxxxxxx"' % i for i in range(5000))
        + b"\r\n\r\n",
    "8 parts with a 1000-parameter Content-Type each":
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + (b"--b\r\nContent-Type: text/x; " + _PARAMS_1000 + b"\r\n\r\nx\r\n") * 8,
    "5000 fields with 8-bit values":
        b"".join(b"X-H%d: \xff\xfe\xfd\xfc\r\n" % i for i in range(5000)) + b"\r\n",
    "3000 Content-Type fields":
        b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n" % i for i in range(3000))
        + b"\r\n",
    "20 nested multiparts over 20,000 '--x' lines": _nest(20),
}


@pytest.mark.parametrize("rest", HOSTILE_HEADS.values(), ids=HOSTILE_HEADS.keys())
def test_the_listener_reads_a_bounded_part_of_a_hostile_head_for_the_charset(rest,
                                                                            monkeypatch):
    """head_facts runs on the listener's event loop for every message. For a Subject with
    undeclared octets it read the charset with `message_charset`: split_header and
    content_info over every part's whole header, 45 to 140 ms a hostile 64 KiB head (0.2 ms
    before). Counted, not timed: the octets the field readers are given, against the
    head's size, and whether the delimiter index (built by Python, line by line) is
    built."""
    head = (b"Subject: \xff\r\n" + rest)[:HEAD_OCTETS]
    assert len(head) == HEAD_OCTETS
    seen, indexed = [], []
    split_header, content_info = mime.split_header, mime.content_info
    build_index = mime.DelimiterSearch._build_index

    def counted_split(buf, start, end):
        seen.append(end - start)
        return split_header(buf, start, end)

    def counted_info(fields, *args):
        seen.append(sum(len(name) + len(value) for name, value in fields))
        return content_info(fields, *args)

    def counted_index(search):
        indexed.append(len(search.buf))
        return build_index(search)

    monkeypatch.setattr(mime, "split_header", counted_split)
    monkeypatch.setattr(mime, "content_info", counted_info)
    monkeypatch.setattr(mime.DelimiterSearch, "_build_index", counted_index)
    assert head_facts(head).subject == "ÿ"           # no charset read: the older reading
    assert sum(seen) < HEAD_OCTETS // 16 and indexed == []


def test_the_listener_finds_the_charset_the_decomposer_finds_in_the_corpus():
    """Every corpus message with undeclared octets in its header (a raw 8-bit Subject...):
    the listener's bounded reading in its first HEAD_OCTETS finds the charset the
    decomposer's finds, but where the header is longer than that."""
    compared = 0
    for path, _label in corpus_rows():
        raw = path.read_bytes() if path.suffix == ".eml" else b""
        head = raw[:HEAD_OCTETS]
        if (head.isascii() and b"\x1b" not in head) or \
                not mime.split_header(raw, 0, len(raw)).undeclared:
            continue
        compared += 1
        if mime.split_header(head, 0, len(head)).body_start < len(head):
            assert mime.head_charset(head) == message_charset(raw), path
    assert compared > 0


def test_the_listener_reads_the_charset_through_nested_multiparts():
    raw = (HEAD + b"Subject: " + "特価".encode("cp932") + b"\r\n"
           b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
           b"micalg=sha-256; boundary=S\r\n\r\n--S\r\n"
           b"Content-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\n"
           b"Content-Type: multipart/alternative; boundary=A\r\n\r\n--A\r\n"
           b"Content-Type: text/plain; charset=shift_jis\r\n\r\nx\r\n--A--\r\n--M--\r\n"
           b"--S\r\nContent-Type: application/pkcs7-signature\r\n\r\nsig\r\n--S--\r\n")
    assert mime.head_charset(raw) == message_charset(raw) == "shift_jis"
    assert head_facts(raw).subject == view_of(raw).subject == "特価"



@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
@pytest.mark.parametrize("stray,charset", [
    (b"bogus line", None),           # starts the body: the Content-Type below is body text
    (b"Bad Name: z", None),          # a blank inside a field name: no field either
    (b" folded", "koi8-r"),          # a continuation of the Subject
    (b">From x", "koi8-r"),          # an mbox line followed by more header: header
    (b"X-A: 1", "koi8-r"),
])
def test_the_listener_ends_the_header_where_the_decomposer_does(eol, stray, charset):
    """review19 r4 C2: a line that is no field ends the header (mime.py rule 4), and
    head_charset read a Content-Type field below it that the decomposer reads as body: the
    listener's events read "При" where the pipeline's read the older form."""
    raw = eol.join([b"Subject: \xf0\xd2\xc9", stray, b"Content-Type: text/plain; charset=koi8-r",
                    b"", b"body", b""])
    assert mime.head_charset(raw) == message_charset(raw) == charset
    assert head_facts(raw).subject == view_of(raw).subject
