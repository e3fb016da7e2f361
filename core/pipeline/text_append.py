"""Text appended to a text part in the part's own charset and transfer encoding (the
disclaimer: rewrite.py's add_text), and lines of a text replaced by other text (a uuencoded
file removed from a text: rewrite.py's remove_part). `with_text` and `with_lines_replaced`
say how; rewrite.py decides where.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re

from core.pipeline.decompose import charsets
from core.pipeline.decompose.mime import decode_transfer
from core.pipeline.view import Part
from core.smtp.protocol import MAX_TEXT_LINE_OCTETS

__all__ = ["with_text", "with_lines_replaced", "base64_lines", "quoted_printable",
           "line_break"]


def base64_lines(data: bytes, nl: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + nl for i in range(0, len(encoded), 76))


def with_text(raw: bytes, part: Part, added: str, nl: bytes, content_type: str | None
              ) -> tuple[bytes, dict[str, str]] | None:
    """(the part's body with `added` appended — before </body> in HTML —, the changes its
    header needs), or None when the text cannot go into this body faithfully and goes into
    a text part of its own beside it (rewrite.py: _wrapped, _wrap_root). `content_type` is the part's
    Content-Type value as written.

    The body's own text is never decoded and encoded again: its bytes (once the transfer
    encoding is undone) stay exactly as they were, in its own charset, and only the addition
    is encoded, into that charset. What a decoder would guess for bytes it cannot read
    (Latin-1 for UTF-8 with one bad byte, ISO-8859-1 for what clients read as
    windows-1252, GB2312 for GBK) must not be written back as the text: every reader would
    get mojibake where it showed the sender's text before. Hence:
      a charset that holds the addition (UTF-8 always; its invalid bytes stay as they
                    were): the addition is appended in that charset.
      US-ASCII or no charset, with bytes that are ASCII or UTF-8 (as decompose/text.py
                    reads them), or ASCII-only text in a charset that reads ASCII as ASCII:
                    relabelled charset="utf-8", which reads those bytes the same, and the
                    addition appended as UTF-8.
      otherwise, HTML: the addition in the part's charset with character references
                    (&#1044;) for what it lacks, which every charset can carry.
      otherwise, plain text: None — a legacy charset without the addition's characters,
                    8-bit text in no known charset. Also for a transfer encoding that cannot
                    be undone exactly. The administrator's disclaimer is then readable
                    beside the text, and the sender's text untouched, rather than the text
                    converted by a guess.
    The transfer encoding stays when it can carry the result: 8bit and binary take the
    bytes; quoted-printable keeps its lines and gets the addition's; 7bit takes a 7-bit
    addition, else becomes quoted-printable — the text stays readable as it was and the
    message 7-bit; base64 is encoded again. A charset whose "\\n" is not the byte 0x0A
    (UTF-16, UTF-32) always goes in base64, which SMTP can carry.
    """
    body = raw[part.body_span[0]:part.body_span[1]]
    encoding = (part.transfer_encoding or "").strip().lower()
    if encoding not in _KEPT_ENCODINGS:
        return None
    data, error, defect = decode_transfer(body, encoding)
    if error or defect or (encoding == "base64" and _after_padding(body)):
        return None                 # encoding it again would lose what decoding left out
    is_html = part.content_type == "text/html"
    codec = _codec(part.charset)
    if codec is not None and not _ascii_compatible(codec):
        new = _with_wide_text(data, codec, added, is_html)
        if new is None:
            return None
        changes = {} if encoding == "base64" else {"Content-Transfer-Encoding": "base64"}
        return base64_lines(new, nl), changes
    changes: dict[str, str] = {}
    work = data if encoding == "base64" else body     # where the offsets below point
    brk = line_break(work, b"\r\n" if encoding == "base64" else nl)
    found = _body_end(work) if is_html else None
    at = found.start() if found else len(work)
    before = work[:at]
    ends_line = before.endswith(b"\n") and not (encoding == "quoted-printable"
                                                and before.rstrip(b"\r\n").endswith(b"="))
    text = _addition(added, is_html, brk.decode(), ends_line)
    note_codec = _note_codec(text, part, codec, data, content_type, changes, is_html)
    if note_codec is not None:
        addition = text.encode(note_codec)
    elif is_html:
        addition = text.encode(codec or "ascii", "xmlcharrefreplace")
    else:
        return None
    if encoding == "base64":
        return base64_lines(data[:at] + addition + data[at:], nl), changes
    if encoding == "quoted-printable":
        if not before.endswith(b"\n"):          # a soft break: the addition's own line
            before += brk if before.endswith(b"=") else b"=" + brk
        return before + quoted_printable(addition, brk) + work[at:], changes
    return _kept_or_quoted_printable(before + addition + work[at:], addition, encoding, brk,
                                     changes)


def with_lines_replaced(raw: bytes, part: Part, regions, nl: bytes, content_type: str | None
                        ) -> tuple[bytes, dict[str, str]] | None:
    """(the body of text part `part` with each region of its decoded `data` replaced, the
    changes its header needs), or None when this body cannot be rebuilt from `part.data`.
    `regions` are (start, end, text) with `end` where a line's text ends (decompose/
    uuencoded.py's blocks): a region with a text gets that text, its lines ended as the
    body's are; one without goes with the line break after it, so no empty line is left.

    Only the regions change. In a body written as it is read (7bit, 8bit, binary, an
    encoding read as written) every other octet stays as it was; a 7bit body that a
    non-ASCII text (or a line too long for SMTP) would break becomes quoted-printable. A
    base64 or quoted-printable body is decoded, edited and encoded again in its encoding:
    what it says is kept, how its lines were encoded is not (a reader decodes the same
    text). The text goes in the part's charset; one it cannot hold there relabels the part
    UTF-8 when its bytes read alike in UTF-8 (ASCII text), else has "?" for what the
    charset lacks. None: the body does not decode to `part.data` (a part read otherwise
    than its field says), or a charset that is not ASCII-compatible."""
    body = raw[part.body_span[0]:part.body_span[1]]
    data = part.data
    encoding = (part.transfer_encoding or "").strip().lower()
    written = body == data
    if not written and (encoding not in ("base64", "quoted-printable")
                        or decode_transfer(body, encoding)[0] != data):
        return None
    codec = _codec(part.charset)
    if codec is not None and not _ascii_compatible(codec):
        return None
    brk = line_break(data, b"\r\n" if encoding == "base64" else nl)
    changes: dict[str, str] = {}
    notes = {text: brk.decode().join(_lines(text)) for _start, _end, text in regions if text}
    # one charset for all the notes: each in the part's, or all in UTF-8
    note_codec = _note_codec("".join(notes.values()), part, codec, data, content_type,
                             changes, False) or codec or "ascii"
    pieces, added, at = [], [], 0
    for start, end, text in sorted(regions):
        if start < at:
            continue
        pieces.append(data[at:start])
        if text:
            encoded = notes[text].encode(note_codec, "replace")
            pieces.append(encoded)
            added.append(encoded)
        elif data.startswith(brk, end):
            end += len(brk)
        at = end
    new = b"".join(pieces) + data[at:]
    if encoding == "base64":
        return base64_lines(new, nl), changes
    if encoding == "quoted-printable":
        return quoted_printable(new, brk), changes
    return _kept_or_quoted_printable(new, brk.join(added), encoding, brk, changes)


def _note_codec(text: str, part: Part, codec: str | None, data: bytes,
                content_type: str | None, changes: dict[str, str], is_html: bool
                ) -> str | None:
    """The codec the `text` put into part `part` is written in (`with_text`,
    `with_lines_replaced`): the part's own (`codec`, "ascii" for no charset) when it holds
    the text; else UTF-8, the part relabelled so in `changes`, when its bytes `data` read
    alike in UTF-8 (`_reads_as_utf8`); else None, left to the caller (review18 D1: one rule
    for both)."""
    try:
        text.encode(codec or "ascii")
        return codec or "ascii"
    except UnicodeEncodeError:
        if _reads_as_utf8(data, part.charset, codec, is_html):
            changes["Content-Type"] = _relabelled(content_type, part.content_type)
            return "utf-8"
        return None


def _kept_or_quoted_printable(new: bytes, added: bytes, encoding: str, brk: bytes,
                              changes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A 7bit, 8bit or binary body `new`, which had `added` put in: as it is when what was
    added fits it (lines SMTP carries; 7-bit in a 7bit body), else quoted-printable."""
    fits = max(map(len, added.split(b"\n"))) <= MAX_TEXT_LINE_OCTETS - 2
    if fits and (encoding not in _SEVEN_BIT or added.isascii()):
        return new, changes
    changes["Content-Transfer-Encoding"] = "quoted-printable"
    return quoted_printable(new, brk), changes


_KEPT_ENCODINGS = ("7bit", "", "8bit", "binary", "quoted-printable", "base64")
_SEVEN_BIT = ("7bit", "")
_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)


def _body_end(data: bytes) -> re.Match | None:
    """The last </body>: an earlier one may be text inside a <script> string, where the
    addition would break the script and be shown to no one."""
    found = None
    for found in _BODY_END.finditer(data):
        pass
    return found
_CHARSET_PARAM = re.compile(r'(;\s*charset\s*=\s*)("[^"]*"|[^;\s]*)', re.IGNORECASE)


def _with_wide_text(data: bytes, codec: str, added: str, is_html: bool) -> bytes | None:
    """`data` in a charset that is not ASCII-compatible (UTF-16, UTF-32, EBCDIC) with the
    addition; None when the bytes do not decode to exactly themselves. A byte order mark
    decides the byte order of the addition, and stays a character of the text."""
    if codec in ("utf-16", "utf-32"):
        bom_le = codecs.BOM_UTF16_LE if codec == "utf-16" else codecs.BOM_UTF32_LE
        bom_be = codecs.BOM_UTF16_BE if codec == "utf-16" else codecs.BOM_UTF32_BE
        # without a mark Python reads little-endian; the gateway's checks read it so
        codec += "-be" if data.startswith(bom_be) and not data.startswith(bom_le) else "-le"
    try:
        text = data.decode(codec)
        if text.encode(codec) != data:
            return None
    except UnicodeError:
        return None
    found = _body_end(text.encode("ascii", "replace")) if is_html else None
    at = found.start() if found else len(text)     # ASCII "replace" keeps the indexes
    first = text.find("\n")
    brk = "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"
    addition = _addition(added, is_html, brk, text[:at].endswith("\n"))
    try:
        encoded = addition.encode(codec, "xmlcharrefreplace" if is_html else "strict")
    except UnicodeEncodeError:
        return None
    return text[:at].encode(codec) + encoded + text[at:].encode(codec)


def _addition(added: str, is_html: bool, brk: str, ends_line: bool) -> str:
    """The text to insert, its lines ended with the body's own line break `brk`: after a
    blank line in plain text, as a paragraph in HTML."""
    lines = _lines(added)
    if is_html:
        text = "<p>" + ("<br>" + brk).join(map(html.escape, lines)) + "</p>" + brk
        return text if ends_line else brk + text
    return (brk if ends_line else brk + brk) + brk.join(lines) + brk


def _lines(text: str) -> list[str]:
    """The lines of an administrator's text, whatever its line breaks."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _codec(charset: str | None) -> str | None:
    """The codec the addition is written in: the declared charset's as Python knows it, which
    is stricter than readers (decompose/charsets.py rule 4: bytes in it read alike for all),
    "ascii" for none (RFC 2045 §5.2), None for a name Python does not know."""
    name = (charset or "us-ascii").strip().strip('"').lower()
    try:
        return codecs.lookup(name).name
    except LookupError:
        # A label only readers know, which they read as UTF-16 ("ucs-2", "unicode"): the
        # addition must go in as UTF-16 too, never as ASCII bytes inside the UTF-16 text.
        return _WIDE_READINGS.get(charsets.encoding(name) or "")


_WIDE_READINGS = {"utf-16le": "utf-16-le", "utf-16be": "utf-16-be"}


def _reads_as_utf8(data: bytes, charset: str | None, codec: str | None,
                   is_html: bool) -> bool:
    """True when labelling `data` UTF-8 keeps what it says: US-ASCII (or no charset) with
    ASCII or UTF-8 bytes, which is how the gateway's own checks read it — but not HTML with
    no charset whose <meta> declares another, which readers and those checks decode by;
    ASCII-only bytes that readers read as ASCII under `charset` (decompose/charsets.py, so
    "x-sjis" too; not ISO-2022-JP's escapes, not HZ's "~{")."""
    if codec == "ascii":
        if is_html and charset is None and not data.isascii() \
                and charsets.html_charset(data) not in (None, "utf-8"):
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if not data.isascii():
        return False
    try:
        return charsets.decode(data, charset, "replace") == data.decode("ascii")
    except LookupError:
        return False


def _relabelled(value: str | None, content_type: str) -> str:
    """The Content-Type value with charset="utf-8", its other parameters as they were."""
    if value is None or not value.isascii() \
            or value.split(";", 1)[0].strip().lower() != content_type:
        # none, or one decomposition did not take as written (a multipart without a
        # boundary of its own is read as text/plain): what the part is read as
        return f'{content_type}; charset="utf-8"'
    if _CHARSET_PARAM.search(value):
        return _CHARSET_PARAM.sub(r'\1"utf-8"', value, count=1)
    return value.rstrip().rstrip(";") + '; charset="utf-8"'


def _after_padding(body: bytes) -> bool:
    """Base64 with data after its padding: decode_transfer stops there, as Python does."""
    return b"=" in body and bool(body.split(b"=", 1)[1].strip(b"= \t\r\n"))


def line_break(data: bytes, default: bytes) -> bytes:
    first = data.find(b"\n")
    if first < 0:
        return default
    return b"\r\n" if first > 0 and data[first - 1:first] == b"\r" else b"\n"


def quoted_printable(data: bytes, brk: bytes) -> bytes:
    """`data` quoted-printable (RFC 2045 §6.7): each `brk` a hard line break, every other
    octet that needs it encoded (a bare CR or LF too), lines of at most 76 characters."""
    lines = data.split(brk)
    encoded = [binascii.b2a_qp(line, istext=False).replace(b"=\n", b"=" + brk)
               for line in lines]
    return brk.join(encoded)


def _ascii_compatible(codec: str) -> bool:
    try:
        return "a\r\n".encode(codec) == b"a\r\n"
    except (LookupError, UnicodeEncodeError):
        return False
