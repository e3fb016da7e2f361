"""Raw MIME on bytes, with offsets (RFC 2045-2049, RFC 5322).

The pipeline must know where every part lies in the file, so that rewrite.py can cut one
part out and leave the others byte-identical; Python's email package re-serialises instead.
So: headers and multipart boundaries are found here on the raw bytes; the email package is
used only to read one header value (parameters, RFC 2231 continuations, RFC 2047 words).

Rules
    1. Nothing here raises on hostile input: every oddity becomes a defect string and the
       parsing goes on with the most useful reading (Postel, as mail parsers must).
    2. Offsets are into the buffer given; line ends may be CRLF or bare LF (the spool stores
       what was received; SMTP gives CRLF).
    3. A delimiter line owns the line break before it (RFC 2046 §5.1.1), so a part's bytes
       end before that break, and cutting (break + delimiter line + part) removes the part
       and leaves the multipart well formed.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message

__all__ = ["HeaderBlock", "split_header", "ContentInfo", "content_info", "find_parts",
           "ChildSpan", "decode_transfer", "decode_words", "header_text"]

MAX_HEADER_FIELDS_KEPT = 2000    # of a part's header, kept for the view (the rest: defect)


@dataclass
class HeaderBlock:
    fields: list[tuple[str, str]]   # (name, unfolded value as text), in order
    body_start: int                 # offset of the body (after the blank line)
    defects: list[str]


def header_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_end(buf: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(end of the header block, start of the body), or None when there is no blank line."""
    if buf.startswith(b"\r\n", start) or buf.startswith(b"\n", start):
        return start, start + (2 if buf[start:start + 1] == b"\r" else 1)
    lf = buf.find(b"\n\n", start, end)
    crlf = buf.find(b"\n\r\n", start, end)
    candidates = [(i + 1, i + 2) for i in (lf,) if i >= 0]
    candidates += [(i + 1, i + 3) for i in (crlf,) if i >= 0]
    return min(candidates) if candidates else None


def split_header(buf: bytes, start: int, end: int) -> HeaderBlock:
    defects: list[str] = []
    found = _header_end(buf, start, end)
    if found is None:
        header_stop, body_start = end, end
        defects.append("no blank line after the header")
    else:
        header_stop, body_start = found
    fields: list[tuple[str, str]] = []
    name: str | None = None
    value: list[bytes] = []
    dropped = 0
    for line in buf[start:header_stop].split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if name is None:
                defects.append("continuation line before the first header")
            else:
                value.append(line)
            continue
        if name is not None:
            if len(fields) < MAX_HEADER_FIELDS_KEPT:
                fields.append((name, _unfold(value)))
            else:
                dropped += 1
        colon = line.find(b":")
        if colon <= 0 or b" " in line[:colon].strip(b" \t"):
            name = None
            if b"\x00" in line:
                defects.append("NUL in the header")
            elif not line.startswith(b"From "):      # mbox separator line: tolerated
                defects.append("header line without a field name")
            continue
        name = header_text(line[:colon].strip())
        value = [line[colon + 1:]]
    if name is not None:
        if len(fields) < MAX_HEADER_FIELDS_KEPT:
            fields.append((name, _unfold(value)))
        else:
            dropped += 1
    if dropped:
        defects.append(f"{dropped} header fields past {MAX_HEADER_FIELDS_KEPT} not read")
    return HeaderBlock(fields, body_start, defects)


def _unfold(lines: list[bytes]) -> str:
    return header_text(b" ".join(part.strip(b" \t") for part in lines)).strip()


def decode_words(value: str) -> tuple[str, bool]:
    """RFC 2047 encoded words decoded; (text, ok). Never raises."""
    if "=?" not in value:
        return value, True
    try:
        return str(make_header(decode_header(value))), True
    except Exception:
        return value, False


@dataclass
class ContentInfo:
    content_type: str           # "text/plain"
    boundary: str | None
    charset: str | None
    filename: str | None
    disposition: str | None
    transfer_encoding: str | None
    defects: list[str]


def content_info(fields: list[tuple[str, str]], default_type: str = "text/plain") -> ContentInfo:
    message = Message()
    defects: list[str] = []
    cte = None
    for name, value in fields:
        lower = name.lower()
        if lower in ("content-type", "content-disposition"):
            if message[name] is not None:
                defects.append(f"duplicate {name}")
                continue
            message[name] = value
        elif lower == "content-transfer-encoding" and cte is None:
            cte = value.strip().lower() or None
    if default_type != "text/plain":
        message.set_default_type(default_type)
    try:
        content_type = message.get_content_type()
        raw_type = message.get("content-type")
        if raw_type is not None and "/" not in str(raw_type).split(";")[0]:
            defects.append("invalid Content-Type")
        boundary = message.get_param("boundary")
        if isinstance(boundary, tuple):
            boundary = boundary[2]
        charset = message.get_content_charset()
        filename = message.get_filename()
        disposition = message.get_content_disposition()
    except Exception as exc:   # a header the email package cannot read at all
        defects.append(f"unreadable content headers ({type(exc).__name__})")
        return ContentInfo(default_type, None, None, None, None, cte, defects)
    if filename is not None:
        filename, ok = decode_words(str(filename))
        if not ok:
            defects.append("bad encoded word in a file name")
        filename = filename.replace("\x00", "").strip() or None
    if boundary is not None:
        boundary = str(boundary).strip('"')
    return ContentInfo(content_type, boundary or None, charset, filename, disposition, cte,
                       defects)


@dataclass
class ChildSpan:
    start: int          # first byte of the child (its header)
    end: int            # end of the child (before the line break owned by the next delimiter)
    cut_start: int      # start of the line break + delimiter line before the child (rule 3)


def find_parts(buf: bytes, start: int, end: int, boundary: str
               ) -> tuple[list[ChildSpan], bool]:
    """The children of a multipart body in buf[start:end], and whether the close delimiter
    was found."""
    delim = re.compile(rb"^--" + re.escape(boundary.encode("utf-8", "surrogateescape"))
                       + rb"(--)?[ \t]*\r?$", re.MULTILINE)
    children: list[ChildSpan] = []
    open_start: int | None = None
    open_cut = 0
    closed = False
    for match in delim.finditer(buf, start, end):
        line_start = match.start()
        brk = 0
        if line_start > start and buf[line_start - 1:line_start] == b"\n":
            brk = 2 if line_start - 2 >= start and buf[line_start - 2:line_start - 1] == b"\r" else 1
        if open_start is not None:
            children.append(ChildSpan(open_start, max(open_start, line_start - brk), open_cut))
        if match.group(1):
            closed = True
            open_start = None
            break
        line_end = match.end()
        next_line = buf.find(b"\n", line_end, end)
        open_start = end if next_line < 0 else next_line + 1
        open_cut = line_start - brk
    if open_start is not None:
        children.append(ChildSpan(open_start, end, open_cut))
    return children, closed


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_UU_BEGIN = re.compile(rb"^begin[ \t]+[0-7]{3,4}[ \t]+", re.MULTILINE)


def decode_transfer(body: bytes, encoding: str | None) -> tuple[bytes, str | None, str | None]:
    """(decoded bytes, error, defect). An error means the content could not be decoded
    (unprocessable for an attachment); a defect means it was decoded leniently."""
    enc = (encoding or "7bit").strip().lower()
    if enc in ("7bit", "8bit", "binary", ""):
        return body, None, None
    if enc == "base64":
        clean = _B64_JUNK.sub(b"", body.split(b"=", 1)[0] if b"=" in body else body)
        defect = None
        if len(clean) % 4 == 1:
            clean = clean[:-1]
            defect = "base64 with a stray final character"
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean), None, defect
        except (binascii.Error, ValueError) as exc:
            return b"", f"undecodable base64 ({exc})", None
    if enc == "quoted-printable":
        try:
            return binascii.a2b_qp(body), None, None
        except (binascii.Error, ValueError) as exc:
            return b"", f"undecodable quoted-printable ({exc})", None
    if enc in ("x-uuencode", "uuencode", "x-uue", "uue"):
        return _decode_uu(body)
    return body, None, f"unknown Content-Transfer-Encoding {enc!r} (read as 8bit)"


def _decode_uu(body: bytes) -> tuple[bytes, str | None, str | None]:
    begin = _UU_BEGIN.search(body)
    if begin is None:
        return b"", "uuencoded part without a begin line", None
    out = bytearray()
    lines = body[begin.end():].split(b"\n")[1:]
    for line in lines:
        line = line.rstrip(b"\r")
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:                       # some encoders pad badly; decode what the count says
                count = (line[0] - 32) & 63
                out += binascii.a2b_uu(line[:1 + (count * 4 + 2) // 3])
            except (binascii.Error, IndexError) as exc:
                return bytes(out), f"undecodable uuencode ({exc})", None
    return bytes(out), None, None
