"""UPX-packed PE files: the NRV2B / NRV2D / NRV2E decompressors of the UCL library (the
methods UPX uses for win32 executables), so body signatures see the unpacked program as
clamd's UPX unpacker lets ClamAV see it.

Only what signatures need: the packed stream of the UPX1 section is decompressed, nothing is
rebuilt (no imports, no relocations). Bounded: a PE with UPX0/UPX1 sections of at most
MAX_INPUT_OCTETS, output capped at MAX_OUTPUT_OCTETS; a malformed stream simply ends the
attempt. Pure Python bit-by-bit, so the caps keep the cost to a few milliseconds per KiB.
"""

from __future__ import annotations

import struct

__all__ = ["unpack_upx"]

MAX_INPUT_OCTETS = 1 * 2**20
MAX_OUTPUT_OCTETS = 2 * 2**20


class _Bits:
    """UCL's little-endian 32-bit bit buffer (getbit_le32)."""

    __slots__ = ("src", "pos", "bb", "bc")

    def __init__(self, src: bytes, pos: int):
        self.src, self.pos, self.bb, self.bc = src, pos, 0, 0

    def bit(self) -> int:
        if self.bc == 0:
            if self.pos + 4 > len(self.src):
                raise EOFError
            self.bb = struct.unpack_from("<I", self.src, self.pos)[0]
            self.pos += 4
            self.bc = 32
        self.bc -= 1
        return (self.bb >> self.bc) & 1

    def byte(self) -> int:
        if self.pos >= len(self.src):
            raise EOFError
        value = self.src[self.pos]
        self.pos += 1
        return value


def _copy(dst: bytearray, m_off: int, m_len: int) -> None:
    if m_off > len(dst) or m_off <= 0:
        raise ValueError("match before the start")
    start = len(dst) - m_off
    if m_off >= m_len:                       # no overlap: one slice
        dst += dst[start:start + m_len]
        return
    for k in range(m_len):
        dst.append(dst[start + k])


def _decompress(src: bytes, pos: int, method: str, limit: int) -> bytes:
    bits, dst, last_m_off = _Bits(src, pos), bytearray(), 1
    getbit, getbyte = bits.bit, bits.byte
    while len(dst) < limit:
        while getbit():
            dst.append(getbyte())
        m_off = 1
        if method == "nrv2b":
            while True:
                m_off = m_off * 2 + getbit()
                if getbit():
                    break
            if m_off == 2:
                m_off = last_m_off
            else:
                m_off = (m_off - 3) * 256 + getbyte()
                if m_off == 0xFFFFFFFF:
                    break
                m_off += 1
                last_m_off = m_off
            m_len = getbit()
            m_len = m_len * 2 + getbit()
            if m_len == 0:
                m_len = 1
                while True:
                    m_len = m_len * 2 + getbit()
                    if getbit():
                        break
                m_len += 2
            m_len += m_off > 0xD00
        else:
            while True:
                m_off = m_off * 2 + getbit()
                if getbit():
                    break
                m_off = (m_off - 1) * 2 + getbit()
            if m_off == 2:
                m_off = last_m_off
                m_len = getbit()
            else:
                m_off = (m_off - 3) * 256 + getbyte()
                if m_off == 0xFFFFFFFF:
                    break
                m_len = (m_off ^ 0xFFFFFFFF) & 1
                m_off = (m_off >> 1) + 1
                last_m_off = m_off
            if method == "nrv2d":
                m_len = m_len * 2 + getbit()
                if m_len == 0:
                    m_len = 1
                    while True:
                        m_len = m_len * 2 + getbit()
                        if getbit():
                            break
                    m_len += 2
            else:                                   # nrv2e
                if m_len:
                    m_len = 1 + getbit()
                elif getbit():
                    m_len = 3 + getbit()
                else:
                    m_len = 1
                    while True:
                        m_len = m_len * 2 + getbit()
                        if getbit():
                            break
                    m_len += 3
            m_len += m_off > 0x500
        _copy(dst, m_off, m_len + 1)
    return bytes(dst)


def _upx1_start(data: bytes) -> int | None:
    if len(data) > MAX_INPUT_OCTETS or data[:2] != b"MZ" or len(data) < 0x40:
        return None
    pe, = struct.unpack_from("<I", data, 0x3C)
    if pe + 24 > len(data) or data[pe:pe + 4] != b"PE\0\0":
        return None
    count, = struct.unpack_from("<H", data, pe + 6)
    optional, = struct.unpack_from("<H", data, pe + 20)
    table = pe + 24 + optional
    names = {}
    for index in range(min(count, 16)):
        at = table + 40 * index
        if at + 40 > len(data):
            break
        name = data[at:at + 8].rstrip(b"\0")
        names[name] = struct.unpack_from("<I", data, at + 20)[0]      # PointerToRawData
    if b"UPX1" not in names or b"UPX0" not in names:
        return None
    return names[b"UPX1"]


def unpack_upx(data: bytes) -> list[bytes]:
    """The unpacked image of a UPX-packed PE (one item), or [] when it is not one or no
    method decodes it."""
    start = _upx1_start(data)
    if start is None:
        return []
    for method in ("nrv2b", "nrv2e", "nrv2d"):
        try:
            out = _decompress(data, start, method, MAX_OUTPUT_OCTETS)
        except (EOFError, ValueError, IndexError):
            continue
        if len(out) >= 256:
            return [out]
    return []
