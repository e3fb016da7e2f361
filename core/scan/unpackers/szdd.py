"""MS-DOS COMPRESS.EXE files (SZDD: what EXPAND.EXE reads, `setup.ex_`), as libclamav's
msexpand.c reads them.

    SZDD_MAGIC
    szdd(data, limit) -> bytes            the file, at most min(declared size, limit) octets
    declared_size(data) -> int            the size the header gives
    expanded_name(name, data) -> str      the name EXPAND.EXE gives the file it writes

Layout: "SZDD" 88 F0 27 33, the method ("A"), the last character of the expanded name
(the one the compressed name replaced with "_"), the expanded size (u32 LE), then LZSS
with a 4 KiB window primed with spaces. The decomposer (core/pipeline/decompose/
engine_archives.py) and the builtin engine (core/scan/unpack.py) both read it here.
"""

from __future__ import annotations

import struct

__all__ = ["SZDD_MAGIC", "szdd", "declared_size", "expanded_name"]

SZDD_MAGIC = b"SZDD\x88\xf0\x27\x33"
HEADER_OCTETS = 14


def declared_size(data: bytes) -> int:
    if len(data) < HEADER_OCTETS:
        raise ValueError("SZDD header truncated")
    return struct.unpack_from("<I", data, 10)[0]


def expanded_name(name: str, data: bytes) -> str:
    """`setup.ex_` with the header's missing character "e" is setup.exe (EXPAND.EXE -r); a
    name without the "_" loses a ".szdd" or "._" ending it was given, else stays as it is."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1] or "data"
    missing = chr(data[9]) if len(data) > 9 and 0x20 < data[9] < 0x7F else ""
    if base.endswith("_") and len(base) > 1:
        return base[:-1] + missing if missing else base[:-1]
    for ending in (".szdd", "._"):
        if base.lower().endswith(ending) and len(base) > len(ending):
            return base[:-len(ending)]
    return base


def szdd(data: bytes, limit: int) -> bytes:
    """The expanded file: LZSS with a 4 KiB window primed with spaces, at most
    min(declared size, limit) octets."""
    size = min(declared_size(data), limit)
    window = bytearray(b" " * 4096)
    pos, i, out = 4096 - 16, HEADER_OCTETS, bytearray()
    while i < len(data) and len(out) < size:
        control = data[i]
        i += 1
        for bit in range(8):
            if i >= len(data) or len(out) >= size:
                break
            if control & (1 << bit):
                value = data[i]
                i += 1
                out.append(value)
                window[pos] = value
                pos = (pos + 1) & 4095
            else:
                if i + 1 >= len(data):
                    i = len(data)
                    break
                lo, hi = data[i], data[i + 1]
                i += 2
                where, length = lo | ((hi & 0xF0) << 4), (hi & 0x0F) + 3
                for k in range(length):
                    value = window[(where + k) & 4095]
                    out.append(value)
                    window[pos] = value
                    pos = (pos + 1) & 4095
    return bytes(out[:size])
