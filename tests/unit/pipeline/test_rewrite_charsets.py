"""rewrite.py's disclaimer (add_text) keeps the text it is appended to as it was: the same
bytes once the transfer encoding is undone, in the part's own charset, followed by the
disclaimer (hostile-mime findings 2, 3 and 6: mojibake from a Latin-1 guess, MIME fields
without MIME-Version, LF breaks inside CRLF text, a BOM'd header moved into the body)."""

from __future__ import annotations

import base64
import email
import html
import quopri
import re
from email import policy

import pytest

from core.pipeline.decompose import decompose_bytes
from core.pipeline.findings import Finding
from core.pipeline.rewrite import rewrite
from tests.unit.pipeline.support import CONTEXT, CORPUS, corpus_rows, settings, view_of

DISCLAIMER = "\u2026 \u00dcn\u00efc\u00f6d\u00e9 disclaimer \u2014 test."
RUSSIAN = "Привет, коллеги! Отчёт готов.\r\n".encode("utf-8") + b"Stray byte: \xd1f\r\n"
HEAD = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: report\r\n"


def _disclaimer(raw: bytes, text: str = DISCLAIMER) -> bytes:
    finding = Finding(rule="disclaimer", action="add_text", event=None, reason="t", text=text)
    return rewrite(raw, view_of(raw), [finding])


def _single(charset: bytes | None, cte: bytes | None, body: bytes, ctype=b"text/plain"):
    fields = HEAD + b"MIME-Version: 1.0\r\n"
    fields += b"Content-Type: " + ctype + (b"; charset=" + charset if charset else b"") + b"\r\n"
    if cte:
        fields += b"Content-Transfer-Encoding: " + cte + b"\r\n"
    return fields + b"\r\n" + _encoded(body, cte)


def _encoded(data: bytes, cte: bytes | None) -> bytes:
    if cte == b"base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == b"quoted-printable":
        return quopri.encodestring(data.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    return data


def _leaves(raw: bytes) -> list[tuple[str, str | None, bytes]]:
    """(content type, charset, bytes once the transfer encoding is undone) of every text
    leaf, as the standard library reads the message."""
    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    return [(p.get_content_type(), p.get_content_charset(), p.get_payload(decode=True))
            for p in parsed.walk() if p.get_content_maintype() == "text"]


@pytest.mark.parametrize("cte", [b"8bit", b"quoted-printable", b"base64", b"7bit"])
def test_utf8_text_with_one_invalid_byte_keeps_every_letter(cte):
    """Finding 2: one stray byte made the whole part read as Latin-1 and written back as
    UTF-8, so every Cyrillic letter arrived as mojibake."""
    out = _disclaimer(_single(b"utf-8", cte, RUSSIAN))
    [(ctype, charset, data)] = _leaves(out)
    assert (ctype, charset) == ("text/plain", "utf-8")
    assert data == RUSSIAN + b"\r\n" + DISCLAIMER.encode("utf-8") + b"\r\n"
    assert b"\xd0\x9f\xd1\x80" in data             # "Пр" as sent, not "Ð\x9fÑ\x80"


def test_base64_and_quoted_printable_bodies_keep_their_encoded_lines_where_they_can():
    # quoted-printable: the original lines stay byte for byte, the disclaimer's follow
    raw = _single(b"utf-8", b"quoted-printable", RUSSIAN)
    out = _disclaimer(raw)
    assert out.startswith(raw) and out[len(raw):].isascii()
    # 8bit: the bytes are appended as they are, no field changes
    raw = _single(b"utf-8", b"8bit", RUSSIAN)
    assert _disclaimer(raw) == raw + b"\r\n" + DISCLAIMER.encode() + b"\r\n"


def test_gb2312_text_gets_a_disclaimer_gb2312_holds_in_gb2312():
    text = "第十一届中国国际投资贸易洽谈会\r\n".encode("gb2312")
    notice = "本邮件已经过扫描。"
    out = _disclaimer(_single(b"gb2312", b"base64", text), notice)
    [(_, charset, data)] = _leaves(out)
    assert charset == "gb2312"
    assert data == text + b"\r\n" + notice.encode("gb2312") + b"\r\n"


@pytest.mark.parametrize("charset, text", [
    (b"gb2312", "第十一届中国国际投资贸易洽谈会\r\n".encode("gb2312")),
    (b"iso-8859-5", "Привет\r\n".encode("iso-8859-5")),
    (None, "Sch\u00f6ne Gr\u00fc\u00dfe\r\n".encode("latin-1")),   # 8-bit, no charset
    (b"us-ascii", b"Caf\xe9 cr\xe8me\r\n"),                   # mislabelled Latin-1
])
@pytest.mark.parametrize("cte", [b"8bit", b"base64", b"quoted-printable"])
def test_text_whose_charset_cannot_hold_the_disclaimer_keeps_its_bytes(charset, text, cte):
    """The disclaimer goes into a text/plain part of its own after the text; the text's
    part is byte for byte the one sent."""
    raw = _single(charset, cte, text)
    out = _disclaimer(raw)
    leaves = _leaves(out)
    assert leaves[0][1:] == ((charset.decode() if charset else None), text)
    assert leaves[1] == ("text/plain", "utf-8", DISCLAIMER.encode("utf-8") + b"\r\n")
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed["MIME-Version"] == "1.0" and parsed["Subject"] == "report"
    original = raw[raw.index(b"Content-Type"):]
    assert original in out                           # its fields and body as they were


def test_a_text_part_in_an_alternative_is_wrapped_where_it_stands():
    latin = "Sch\u00f6ne Gr\u00fc\u00dfe\r\n".encode("latin-1")
    html_part = b"<html><body><p>Sch&ouml;ne Gr&uuml;&szlig;e</p></body></html>\r\n"
    raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=alt\r\n"
           b"\r\n--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + latin +
           b"--alt\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n" + html_part +
           b"--alt--\r\n")
    out = _disclaimer(raw, "Пересылка запрещена.")
    parsed = email.message_from_bytes(out, policy=policy.default)
    plain_holder, html_leaf = parsed.get_payload()
    assert plain_holder.get_content_type() == "multipart/mixed"
    plain, notice = plain_holder.get_payload()
    assert plain.get_payload(decode=True) == latin[:-2]     # its CRLF is the delimiter's
    assert notice.get_content().strip() == "Пересылка запрещена."
    # HTML with ASCII bytes only reads the same as UTF-8: relabelled, the addition in place
    assert html_leaf.get_content_charset() == "utf-8"
    markup = html_leaf.get_payload(decode=True)
    assert markup.startswith(b"<html><body><p>Sch&ouml;ne Gr&uuml;&szlig;e</p>")
    assert "Пересылка".encode() in markup and markup.endswith(b"</body></html>")
    assert decompose_bytes(out, CONTEXT, settings()).defects == []


def test_ascii_text_without_charset_is_relabelled_utf8_and_stays_7bit():
    raw = _single(None, None, b"Hello Bob,\r\nsee you at 10 = ten.\r\n")
    out = _disclaimer(raw)
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed["Content-Type"] == 'text/plain; charset="utf-8"'
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == \
        "Hello Bob,\nsee you at 10 = ten.\n\n" + DISCLAIMER + "\n"
    assert out.isascii()


def test_a_message_without_mime_fields_gets_mime_version_when_they_are_added():
    """Finding 3: Content-Type and Content-Transfer-Encoding were added without
    MIME-Version: 1.0, so a reader following RFC 2045 §4 showed the encoded text."""
    raw = HEAD + b"\r\nHello Bob,\r\nsee you at 10.\r\n"
    out = _disclaimer(raw)
    head = out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert b"MIME-Version: 1.0" in head
    assert head.index(b"MIME-Version: 1.0") < head.index(b'Content-Type: text/plain; '
                                                           b'charset="utf-8"')
    assert b"Content-Transfer-Encoding: quoted-printable" in head      # not base64
    assert out.split(b"\r\n\r\n", 1)[1].startswith(b"Hello Bob,\r\nsee you at 10.\r\n\r\n")
    # an ASCII disclaimer needs no MIME field at all: none is added
    out = _disclaimer(raw, "Confidential.")
    assert out == raw + b"\r\nConfidential.\r\n"
    # removing the only content adds them too
    removal = Finding(rule="t", action="remove_part", event=None, reason="t", part=0,
                      text="Removed \u00e9.")
    out = rewrite(raw, view_of(raw), [removal])
    assert email.message_from_bytes(out)["MIME-Version"] == "1.0"


def test_the_disclaimer_uses_the_texts_own_line_break():
    """Finding 6: LF breaks were added inside base64 text whose lines are CRLF (and the
    other way round)."""
    for brk in (b"\r\n", b"\n"):
        text = b"line one" + brk + b"line two" + brk
        out = _disclaimer(_single(b"utf-8", b"base64", text), "Footer\nsecond line")
        [(_, _, data)] = _leaves(out)
        assert data == text + brk + b"Footer" + brk + b"second line" + brk


def test_html_gets_the_disclaimer_before_body_end_with_its_bytes_kept():
    markup = "<html><body><p>Привет</p>\r\n</body></html>\r\n".encode("koi8-r")
    for cte in (b"8bit", b"quoted-printable", b"base64"):
        out = _disclaimer(_single(b"koi8-r", cte, markup, ctype=b"text/html"))
        [(_, charset, data)] = _leaves(out)
        assert charset == "koi8-r"
        head, tail = markup.split(b"</body>")
        assert data == head + b"<p>&#8230; &#220;n&#239;c&#246;d&#233; disclaimer &#8212; " \
            b"test.</p>\r\n</body>" + tail


def test_utf16_text_keeps_its_byte_order_and_goes_out_in_base64():
    text = b"\xfe\xff" + "Grüße\r\n".encode("utf-16-be")          # big-endian, by its mark
    out = _disclaimer(_single(b"utf-16", b"binary", text))
    parsed = email.message_from_bytes(out, policy=policy.compat32)
    assert parsed["Content-Transfer-Encoding"] == "base64"
    data = parsed.get_payload(decode=True)
    assert data.startswith(text) and data.decode("utf-16").endswith(DISCLAIMER + "\r\n")



@pytest.mark.parametrize("label", [b"ucs-2", b"unicode", b"csUnicode"])
def test_utf16_under_a_label_only_readers_know_gets_the_disclaimer_in_utf16(label):
    # readers take these labels as UTF-16LE (WHATWG); Python knows none of them, and the
    # disclaimer went into the UTF-16 bytes as ASCII, breaking the text after it
    html = "<html><body><p>Grüße</p></body></html>\r\n".encode("utf-16-le")
    out = _disclaimer(_single(label, b"base64", html, ctype=b"text/html"))
    parsed = email.message_from_bytes(out, policy=policy.compat32)
    text = parsed.get_payload(decode=True).decode("utf-16-le")
    assert text.startswith("<html><body><p>Grüße</p>")
    assert DISCLAIMER in text and text.endswith("</body></html>\r\n")

def test_a_header_behind_a_byte_order_mark_is_not_moved_into_the_body():
    """Finding 6: a message starting with a UTF-8 BOM had its whole header block encoded
    into the body after the disclaimer. It is left as it is."""
    raw = (b"Received: from client by gateway; Mon, 1 Jan 2024 00:00:00 +0000\r\n\xef\xbb\xbf"
           + HEAD + b"Content-Type: text/plain\r\n\r\nHello.\r\n")
    assert _disclaimer(raw) == raw
    assert _disclaimer(raw[raw.index(b"\xef"):]) == raw[raw.index(b"\xef"):]
    # header edits still go above it, where the gateway's fields are; the rest stays
    marks = [Finding(rule="t", action="add_header", event=None, reason="t", text="100",
                     header="X-Bulk"),
             Finding(rule="t", action="add_text", event=None, reason="t", text=DISCLAIMER)]
    out = rewrite(raw, view_of(raw), marks)
    hidden = raw.index(b"\xef")
    assert out == raw[:hidden] + b"X-Bulk: 100\r\n\r\n" + raw[hidden:]


def test_an_mbox_from_line_keeps_the_header_in_the_header():
    raw = (b"Received: from client by gateway; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From someone@example.org Mon Jan  1 00:00:00 2024\r\n" + HEAD + b"\r\nHello.\r\n")
    out = _disclaimer(raw)
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.startswith(raw.split(b"\r\n\r\n")[0])
    assert body.startswith(b"Hello.\r\n\r\n") and b"Subject:" not in body


# --- the shared corpus --------------------------------------------------------------------

def _text_bodies(raw: bytes) -> list[tuple[str, bytes]]:
    """(content type, decoded bytes) of the message's own text/plain and text/html bodies
    (not of attached messages), as decomposition finds them."""
    view = view_of(raw)
    out = []
    for part in view.parts:
        if part.depth == 0 and part.span and part.is_body_text \
                and part.content_type in ("text/plain", "text/html"):
            msg = email.message_from_bytes(raw[part.span[0]:part.span[1]], policy=policy.compat32)
            out.append((part.content_type, msg.get_payload(decode=True)))
    return out


def _corpus_path(relative: str):
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"shared corpus file {relative} not found under {CORPUS.resolve()}")
    return path


def _eight_bit_corpus(count: int) -> list:
    rows = [path for path, label in corpus_rows("spamham/") if label in ("spam", "ham")]
    picked = []
    for path in sorted(rows):
        raw = path.read_bytes()
        if len(raw) < 200_000 and not raw.isascii() and b"charset" in raw.lower():
            picked.append(path)
            if len(picked) == count:
                break
    return picked


def test_every_text_leaf_of_real_mail_is_the_original_plus_the_disclaimer():
    """mail_test_6 (UTF-8 with one bad byte, the report's example) and 8-bit spam and ham:
    each text body reads its original bytes, then the disclaimer, or is unchanged with the
    disclaimer in a part of its own; the disclaimer reads right wherever it went."""
    paths = [_corpus_path("mime/spamscope-mail-parser/mail_test_6")] + _eight_bit_corpus(40)
    assert len(paths) > 20
    for path in paths:
        raw = path.read_bytes()
        out = _disclaimer(raw)
        leaves = _leaves(out)
        assert DISCLAIMER in [_read(leaf) for leaf in leaves], path.name
        for ctype, data in _text_bodies(raw):
            if ctype == "text/plain":
                assert any(_grown_by(data, leaf) for leaf in leaves), path.name
            else:
                assert any(data == leaf or data in _without_disclaimer(leaf)
                           for _, _, leaf in leaves), path.name


def _grown_by(data: bytes, leaf) -> bool:
    """True when `leaf` is `data` as it was, or `data` then the disclaimer in the leaf's
    charset."""
    _, charset, content = leaf
    start = data.rstrip(b"\r\n")
    if content == data or not content.startswith(start):
        return content == data
    return content[len(start):].strip(b"\r\n").decode(charset or "ascii", "replace") \
        == DISCLAIMER


def _read(leaf) -> str:
    """The disclaimer as a leaf says it (the whole leaf, its last line, or its last HTML
    paragraph), in the leaf's charset, character references resolved."""
    ctype, charset, content = leaf
    try:
        text = content.decode(charset or "ascii", "replace")
    except LookupError:
        text = content.decode("latin-1")
    paragraphs = re.findall(r"<p>([^<]*)</p>", text) if ctype == "text/html" else []
    last = paragraphs[-1] if paragraphs else text.strip().splitlines()[-1] if text.strip() else ""
    return html.unescape(last.strip())


_HTML_ADDITION = re.compile(rb"<p>[^<]*disclaimer[^<]*</p>\r?\n")


def _without_disclaimer(markup: bytes) -> set[bytes]:
    """The markup without the disclaimer's paragraph, with and without the line break put
    in front of it."""
    found = _HTML_ADDITION.search(markup)
    if found is None:
        return set()
    start = found.start()
    brk = 2 if markup[:start].endswith(b"\r\n") else 1 if markup[:start].endswith(b"\n") else 0
    return {markup[:start] + markup[found.end():],
            markup[:start - brk] + markup[found.end():]}


def test_html_gets_the_disclaimer_before_its_last_body_end_tag():
    """A </body> in a script string is not the end of the body (regressions finding 3):
    there the disclaimer broke the script and was shown to no one."""
    markup = (b'<html><body><script>var t = "</body>";</script><p>Hello</p>\r\n'
              b"</body></html>\r\n")
    out = _disclaimer(_single(b"utf-8", b"8bit", markup, ctype=b"text/html"))
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body.startswith(b'<html><body><script>var t = "</body>";</script><p>Hello</p>')
    script_end = body.index(b"</script>")
    assert body.index("disclaimer".encode()) > script_end
    assert body.rstrip().endswith(b"</body></html>")


SIGNED_CONTENT = (b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe contract is attached.\r\n")
PGP_SIGNED = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
              b'micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="sig"\r\n\r\n'
              b"--sig\r\n" + SIGNED_CONTENT + b"--sig\r\n"
              b"Content-Type: application/pgp-signature; name=signature.asc\r\n\r\n"
              b"-----BEGIN PGP SIGNATURE-----\r\niQEzBAEBCAAdFiEE\r\n"
              b"-----END PGP SIGNATURE-----\r\n--sig--\r\n")
SMIME_OPAQUE = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
                b"smime-type=signed-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64"
                b"\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGg\r\n")

# tester29c C1: the disclaimer went in as the first part of multipart/encrypted, ahead of
# the control part RFC 1847 §2.2 and RFC 3156 §4 require first: no longer PGP/MIME
PGP_ENCRYPTED = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
                 b'protocol="application/pgp-encrypted"; boundary="pg"\r\n\r\n'
                 b"--pg\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
                 b"--pg\r\nContent-Type: application/octet-stream; name=encrypted.asc\r\n\r\n"
                 b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234567890abcdef\r\n"
                 b"-----END PGP MESSAGE-----\r\n--pg--\r\n")


@pytest.mark.parametrize("raw, signed_type", [(PGP_SIGNED, "multipart/signed"),
                                              (SMIME_OPAQUE, "application/pkcs7-mime"),
                                              (PGP_ENCRYPTED, "multipart/encrypted")])
def test_a_signed_message_gets_the_disclaimer_beside_what_is_signed(raw, signed_type):
    """Appended inside the signed text it broke every PGP/MIME and S/MIME signature
    (regressions finding 4): it goes into a part of its own, the signed entity unchanged."""
    out = _disclaimer(raw)
    head, body = raw.split(b"\r\n\r\n", 1)
    signed_entity = head.split(b"MIME-Version: 1.0\r\n", 1)[1] + b"\r\n\r\n" + body
    assert signed_entity in out                       # byte for byte: it still verifies
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    first, second = parsed.get_payload()
    assert first.get_content_type() == signed_type
    assert DISCLAIMER in second.get_content()
