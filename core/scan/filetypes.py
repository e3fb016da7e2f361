"""What a buffer is, for signature target types (ClamAV's TargetType) and PE offsets.

`target_types(data, hint)` -> the set of ClamAV target types a buffer belongs to (0 always);
`pe_layout(data)` -> entry point and section table as file offsets, or None for a non-PE.
Pure functions over bytes; a malformed header is "not that type", never an exception.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

__all__ = ["target_types", "pe_layout", "PeLayout", "normalise_html", "normalise_text",
           "looks_like_mail"]

_HTML_RE = re.compile(rb"<\s*(?:html|head|body|script|a\s|iframe|div|table|meta|form|"
                      rb"!doctype)", re.IGNORECASE)
_MAIL_HEADER = re.compile(rb"^(?:From |(?:From|To|Subject|Received|Return-Path|Message-ID|"
                          rb"MIME-Version|Content-Type|Date):)", re.IGNORECASE)


@dataclass(frozen=True)
class PeLayout:
    entry_point: int                                  # file offset of the entry point
    sections: tuple[tuple[int, int], ...]             # (raw offset, raw size) each


def pe_layout(data: bytes) -> PeLayout | None:
    if len(data) < 64 or data[:2] != b"MZ":
        return None
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    if pe_offset + 24 > len(data) or data[pe_offset:pe_offset + 4] != b"PE\0\0":
        return None
    sections_count, = struct.unpack_from("<H", data, pe_offset + 6)
    optional_size, = struct.unpack_from("<H", data, pe_offset + 20)
    optional = pe_offset + 24
    if optional + 20 > len(data):
        return None
    entry_rva, = struct.unpack_from("<I", data, optional + 16)
    table = optional + optional_size
    sections = []
    rvas = []
    for index in range(min(sections_count, 96)):
        at = table + index * 40
        if at + 40 > len(data):
            break
        vsize, vaddr, rsize, raddr = struct.unpack_from("<IIII", data, at + 8)
        sections.append((raddr, rsize))
        rvas.append((vaddr, max(vsize, rsize), raddr))
    entry = entry_rva
    for vaddr, size, raddr in rvas:
        if vaddr <= entry_rva < vaddr + size:
            entry = entry_rva - vaddr + raddr
            break
    return PeLayout(entry, tuple(sections))


def looks_like_mail(data: bytes) -> bool:
    head = data[:2048]
    lines = head.split(b"\n", 8)[:8]
    return sum(1 for line in lines if _MAIL_HEADER.match(line)) >= 2


def target_types(data: bytes, hint: str | None = None) -> set[int]:
    """ClamAV target types of `data` (0 = any, always); `hint` is the declared content
    type or the decomposer's true type."""
    out = {0}
    head = data[:1024]
    if pe_layout(data) is not None:
        out.add(1)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        out.add(2)
    if hint in ("text/html", "html") or _HTML_RE.search(head):
        out.add(3)
    if hint in ("message/rfc822", "message") or looks_like_mail(data):
        out.add(4)
    if head[:6] in (b"GIF87a", b"GIF89a") or head.startswith(b"\x89PNG") or \
            head.startswith(b"\xff\xd8\xff") or head.startswith(b"BM"):
        out.add(5)
    if head.startswith(b"\x7fELF"):
        out.add(6)
    if head and len(head.translate(None, _PRINTABLE)) < 0.1 * len(head):
        out.add(7)
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf",
                    b"\xcf\xfa\xed\xfe"):
        out.add(9)
    if b"%PDF-" in head:
        out.add(10)
    if head[:3] in (b"FWS", b"CWS", b"ZWS"):
        out.add(11)
    if head.startswith(b"\xca\xfe\xba\xbe"):
        out.add(12)
    return out


_TAGS = re.compile(rb"\s+")
_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def normalise_html(data: bytes) -> bytes:
    """ClamAV-like HTML normalisation: lower case, runs of white space as one space."""
    return _TAGS.sub(b" ", data.lower())


def normalise_text(data: bytes) -> bytes:
    """Normalised ASCII text (target 7): lower case, white space collapsed."""
    return _TAGS.sub(b" ", data.lower())
