"""Decoders for the formats core/scan/unpack.py looks into, one module per format family.

A decoder returns the members it extracted as bytes. A member that decoded in full but whose
stored CRC-32 does not match comes back as CrcMismatch (a bytes subclass) rather than being
dropped: the content is what gets scanned, and a flipped checksum byte must not hide it
(ClamAV scans such members too). unpack.expand labels it "...(crc mismatch)". A stream that
is structurally broken still raises ValueError.
"""

from __future__ import annotations

__all__ = ["CrcMismatch"]


class CrcMismatch(bytes):
    """A fully decoded member whose data does not match its stored CRC-32."""

    __slots__ = ()
