"""Decoders for the formats core/scan/unpack.py looks into, one module per format family.

A decoder returns the members it extracted as bytes. A member that decoded in full but whose
stored CRC-32 does not match comes back as CrcMismatch (a bytes subclass) rather than being
dropped: the content is what gets scanned, and a flipped checksum byte must not hide it
(ClamAV scans such members too). unpack.expand labels it "...(crc mismatch)". A stream that
is structurally broken still raises ValueError.

A name an archive stores as octets in no declared charset (cpio, ISO 9660 primary and Rock
Ridge names, a uuencoded `begin` line) reads as `name_text` says: UTF-8, else Latin-1, which
never fails. The decomposer reads header text the same way (mime.header_text), with the
message's charset between the two where a reader reads it so (mime.read_undeclared).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CrcMismatch", "name_text"]


class CrcMismatch(bytes):
    """A fully decoded member whose data does not match its stored CRC-32."""

    __slots__ = ()


def name_text(raw: bytes, declared: Callable[[bytes], str] | None = None) -> str:
    """Octets of a name as text: UTF-8 when they are, else `declared(raw)` when given and it
    reads them (the charset the context declares: for header text, the message's,
    decompose/mime.py read_undeclared), else Latin-1. `declared` raises ValueError
    (UnicodeDecodeError) or LookupError for octets it does not read."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared is not None:
        try:
            return declared(raw)
        except (ValueError, LookupError):
            pass
    return raw.decode("latin-1")
