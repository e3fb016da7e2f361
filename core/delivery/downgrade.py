"""8-bit message content made 7-bit for a next hop without 8BITMIME (RFC 6152 §3).

What this module owns
    `downgrade(raw)`: the 7-bit equivalent of a message, or `Unconvertible` saying why
    there is none. RFC 6152 §3 leaves a client two choices for 8-bit content and a server
    without 8BITMIME: convert it to 7-bit or do not deliver it. `core/delivery/session.py`
    decides when (its rule 4) and sends the result; this module reads no file.

Rules
    1. Only what carries 8-bit octets changes. A leaf part whose body has them is
       re-encoded, text/* as quoted-printable and anything else as base64, and its
       Content-Transfer-Encoding field says so (in place of the first such field, any
       later one dropped, or added as the last field of its header). A multipart or
       message/rfc822 part around it whose field said 8bit or binary now says 7bit. A
       quoted-printable body with raw 8-bit octets (3 of the 4,277 corpus messages) is
       decoded first, as decoders read it: they pass such octets through. Every other byte
       (the other header fields, their order and folding, delimiter lines, preambles,
       parts without 8-bit octets) is copied as it is: parts are found on the raw bytes by
       the pipeline's MIME reader (core/pipeline/decompose/mime.py) and headers edited by
       its HeaderEditor (core/pipeline/rewrite.py), never re-serialised by the email
       package, which rewrites headers.
    2. A body's line breaks become CRLF before it is encoded: the delivery client sends
       CRLF for every bare CR and LF anyway (core/smtp/client.py rule 4), so that is what a
       next hop with 8BITMIME receives and decodes, and what this one decodes too.
    3. Raw 8-bit octets in a header section stay as they are: no encoding is declared
       for them, so no conversion is faithful (Postfix sends them unchanged too). What else
       cannot honestly become 7-bit raises Unconvertible (session.py then sends the message
       as received): 8-bit octets in a preamble, epilogue or delimiter line, in
       a message/* type other than rfc822 and the internationalised ones, in a
       multipart without a boundary that is found, in a body whose encoding is not 7bit,
       8bit, binary or (for a leaf) quoted-printable, or below MIME nesting the pipeline
       does not follow either.
    4. message/global (RFC 6532 §3.7) and the DSN's message/global-headers and
       message/global-delivery-status (RFC 6533 §6) may be encoded, unlike message/rfc822:
       through a 7-bit hop they go in base64. A bounce quoting UTF-8 header fields was
       refused with 554 by a strict next hop without 8BITMIME and never reached its sender
       (regress11 finding 4).
    5. A converted message body in a message without MIME-Version gets "MIME-Version: 1.0",
       without which its new Content-Transfer-Encoding field means nothing (RFC 2045 §4).

Never: change a message that is all 7-bit (it is returned as the same object), or raise
anything but Unconvertible for what a message holds.
"""

from __future__ import annotations

import binascii
import re

from core.pipeline.decompose import MAX_MIME_NESTING
from core.pipeline.decompose.content_fields import content_info
from core.pipeline.decompose.mime import DelimiterSearch, find_parts, split_header
from core.pipeline.rewrite import HeaderEditor

__all__ = ["Unconvertible", "downgrade"]

IDENTITY_ENCODINGS = ("7bit", "8bit", "binary")     # RFC 2045 §6.2: no transformation
BASE64_LINE_OCTETS = 57                             # 76 characters, RFC 2045 §6.8

_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


ENCODABLE_MESSAGE_TYPES = frozenset({"message/global", "message/global-headers",
                                     "message/global-delivery-status",
                                     "message/global-disposition-notification"})


class Unconvertible(Exception):
    """The message has 8-bit octets where no encoding can take them (rule 3); the text
    says what and where."""


def downgrade(raw: bytes) -> bytes:
    """The message `raw` with every 8-bit body re-encoded as 7-bit (rule 1); `raw` itself
    when it has no 8-bit octet. Raises Unconvertible (rule 3)."""
    if raw.isascii():
        return raw
    out: list[bytes] = []
    _Downgrader(raw, out).entity(0, len(raw), "message", "text/plain", 0)
    return b"".join(out)


class _Downgrader:
    def __init__(self, buf: bytes, out: list[bytes]):
        self.buf = buf
        self.out = out
        # Each nesting level asks again about a range inside the last one: both searches
        # remember what they found, so a deep nest costs a few times its size, not its
        # depth times (as the pipeline's walk: decompose/mime.py rule 5).
        self.delimiters = DelimiterSearch(buf)
        self._searched_from = self._next_8bit = -1

    def has_8bit(self, start: int, end: int) -> bool:
        """Whether buf[start:end] has an octet over 127."""
        if not self._searched_from <= start <= self._next_8bit:
            found = _EIGHT_BIT.search(self.buf, start)
            self._searched_from = start
            self._next_8bit = found.start() if found else len(self.buf)
        return self._next_8bit < end

    def entity(self, start: int, end: int, location: str, default_type: str,
               nesting: int) -> None:
        """Append the entity at buf[start:end] (a message or a MIME part), made 7-bit."""
        buf = self.buf
        if not self.has_8bit(start, end):
            self.out.append(buf[start:end])
            return
        if nesting > MAX_MIME_NESTING:
            raise Unconvertible(f"MIME nesting deeper than {MAX_MIME_NESTING} levels "
                                f"at {location}")
        header = split_header(buf, start, end)
        body_start = header.body_start
        if not self.has_8bit(body_start, end):
            self.out.append(buf[start:end])
            return
        info = content_info(header.fields, default_type)
        encoding = info.transfer_encoding or "7bit"
        kind = info.content_type
        is_leaf = not kind.startswith(("multipart/", "message/"))
        if encoding not in IDENTITY_ENCODINGS and not (is_leaf
                                                       and encoding == "quoted-printable"):
            raise Unconvertible(f"8-bit octets in the {encoding} body of {location}")
        if kind.startswith("multipart/"):
            self.multipart(start, body_start, end, location, info, encoding, nesting)
        elif kind == "message/rfc822":
            self.out.append(self.header(start, body_start, encoding, "7bit"))
            self.entity(body_start, end, f"{location}/message", "text/plain", nesting + 1)
        elif kind in ENCODABLE_MESSAGE_TYPES:
            self.leaf(start, body_start, end, location, kind, encoding, header.fields)
        elif kind.startswith("message/"):
            raise Unconvertible(f"8-bit octets in the {kind} body of {location}")
        else:
            self.leaf(start, body_start, end, location, kind, encoding, header.fields)

    def multipart(self, start, body_start, end, location, info, encoding, nesting) -> None:
        children, _closed = (find_parts(self.buf, body_start, end, info.boundary,
                                        self.delimiters)
                             if info.boundary else ([], False))
        if not children:
            raise Unconvertible(f"8-bit octets in {location}, a {info.content_type} whose "
                                f"parts are not found")
        self.out.append(self.header(start, body_start, encoding, "7bit"))
        child_default = ("message/rfc822" if info.content_type == "multipart/digest"
                         else "text/plain")
        cursor = body_start
        for index, child in enumerate(children, 1):
            self.between(cursor, child.start, location)
            name = f"part{index}" if location == "message" else f"{location}.{index}"
            self.entity(child.start, child.end, name, child_default, nesting + 1)
            cursor = child.end
        self.between(cursor, end, location)

    def between(self, start: int, end: int, location: str) -> None:
        """Preamble, delimiter lines, epilogue: copied, but never 8-bit (rule 3)."""
        if self.has_8bit(start, end):
            raise Unconvertible(f"8-bit octets outside the parts of {location} "
                                f"(preamble, epilogue or delimiter line)")
        self.out.append(self.buf[start:end])

    def leaf(self, start, body_start, end, location, kind, encoding, fields) -> None:
        body = _crlf(self.buf[body_start:end])                  # rule 2
        is_text = kind.startswith("text/")
        if encoding == "quoted-printable":                      # rule 1
            body = binascii.a2b_qp(body)
            body = _crlf(body) if is_text else body
        if is_text:
            new, encoded = "quoted-printable", binascii.b2a_qp(body, istext=True)
        else:
            new, encoded = "base64", _base64(body)
        add_version = location == "message" and not any(
            name.lower() == "mime-version" for name, _value in fields)
        self.out.append(self.header(start, body_start, encoding, new,
                                    add_version=add_version, always=True))
        self.out.append(encoded)

    def header(self, start: int, body_start: int, encoding: str, new: str, *,
               add_version: bool = False, always: bool = False) -> bytes:
        """The header block at buf[start:body_start] (with the blank line that ends it)
        saying `new` as its transfer encoding where `always` or where it said 8bit or
        binary; else the block as it is."""
        raw = self.buf[start:body_start]
        if not always and encoding == "7bit":
            return raw
        editor = HeaderEditor(raw, b"\r\n" if b"\r\n" in raw else b"\n")
        editor.set("Content-Transfer-Encoding", new)
        if add_version:
            editor.add("MIME-Version", "1.0")           # rule 5
        return editor.bytes()


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _base64(data: bytes) -> bytes:
    """Lines of 76 characters joined by CRLF, ending in a line break when `data` did."""
    lines = [binascii.b2a_base64(data[at:at + BASE64_LINE_OCTETS], newline=False)
             for at in range(0, len(data), BASE64_LINE_OCTETS)]
    return b"\r\n".join(lines) + (b"\r\n" if data.endswith(b"\n") else b"")
