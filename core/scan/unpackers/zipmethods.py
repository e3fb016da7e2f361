"""Zip members in the compression methods Python's zipfile refuses but the engines read:
Deflate64 (method 9, by the `inflate64` package) and PKWARE implode (method 6, implode.py).
One reader for the pipeline's decomposer (core/pipeline/decompose/archives.py), which makes
such a member a part of its own, and for the engines' unpacker (core/scan/unpack.py).

    method_name(method)                        the name an error says ("Deflate64")
    MemberReader(data, method, flags, offset, compressed, size, crc, limit=None)
                                               .read(n) -> the next decoded chunk, b"" at the end

Rules
    1. Output stops at the member's declared size (`size`), as zipfile's own readers stop,
       and at `limit` when given: the caller checks that size against its limits before
       reading, and charges what comes out as it comes (the decomposer's budget, the
       engines' Budget). A size of None (a local header that leaves it to a data
       descriptor) reads a Deflate64 stream to its end, at most `limit` octets, unchecked.
    2. Deflate64 is fed INPUT_OCTETS of compressed data at a time, so one chunk is at most
       about INPUT_OCTETS * 8 / 18 * 65538 octets (a length code of 1 bit, 16 extra bits and
       a 1-bit distance code copy 65538 octets): about 7 MiB, however the member was built.
       Implode is decoded in one call up to the declared size (implode.explode stops there).
    3. A member that is damaged raises ValueError; one that decodes in full to data whose
       CRC-32 differs from the directory's raises CrcError (a ValueError) at the read after
       its last chunk, as zipfile raises BadZipFile there: every octet came out first, so
       the engines can scan it all the same (unpackers.CrcMismatch).
"""

from __future__ import annotations

import struct
import zlib

from core.scan.unpackers import implode

__all__ = ["METHOD_NAMES", "READ_METHODS", "DEFLATE64_METHOD", "MemberReader", "CrcError",
           "method_name"]

DEFLATE64_METHOD = 9
READ_METHODS = (DEFLATE64_METHOD, implode.IMPLODE_METHOD)
INPUT_OCTETS = 256
MAX_UNSIZED_OCTETS = 2**31             # a member without a size or a limit (never both here)
# APPNOTE 4.4.5, for the methods an error may name
METHOD_NAMES = {1: "shrink", 2: "reduce", 3: "reduce", 4: "reduce", 5: "reduce",
                6: "implode", 9: "Deflate64", 10: "PKWARE DCL implode", 18: "IBM TERSE",
                19: "IBM LZ77", 20: "zstd (old id)", 93: "zstd", 94: "MP3", 95: "xz",
                96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AE-x encryption"}


def method_name(method: int) -> str:
    """"Deflate64", or "method 42" for one APPNOTE does not name."""
    return METHOD_NAMES.get(method, f"method {method}")


class CrcError(ValueError):
    """The member decoded in full, but not to the data its CRC-32 names."""


class MemberReader:
    """The decoded bytes of one member read by `read(n)` (rules 1-3). `offset` is its local
    header's offset in `data`; the rest comes from the zip's directory entry (or the local
    header)."""

    def __init__(self, data: bytes, method: int, flags: int, offset: int, compressed: int,
                 size: int | None, crc: int | None, limit: int | None = None):
        if method not in READ_METHODS:
            raise NotImplementedError(f"unsupported compression method ({method_name(method)})")
        if size is None and method != DEFLATE64_METHOD:
            raise ValueError("implode member without its size")
        if data[offset:offset + 4] != b"PK\x03\x04" or offset + 30 > len(data):
            raise ValueError("zip local header expected")
        name_length, extra_length = struct.unpack_from("<HH", data, offset + 26)
        start = offset + 30 + name_length + extra_length
        self._body = memoryview(data)[start:start + compressed]
        if len(self._body) != compressed:
            raise ValueError("zip member truncated")
        self._method, self._flags = method, flags
        # the whole member is wanted (so its CRC can be checked), or only its first octets
        self._whole = size is not None and (limit is None or limit >= size)
        self._left = min(n for n in (size, limit, MAX_UNSIZED_OCTETS) if n is not None)
        self._crc = crc if self._whole else None
        self._sized = size is not None
        self._at = 0
        self._inflater = None
        self._done = False
        self._crc_so_far = 0
        self._bad_crc = False

    def read(self, _n: int = -1) -> bytes:
        """The next chunk of decoded data (any length; rule 2 bounds it), b"" at the end."""
        if self._done:
            if self._bad_crc:
                self._bad_crc = False
                raise CrcError("Bad CRC-32")
            return b""
        if self._method == implode.IMPLODE_METHOD:
            chunk = implode.explode(bytes(self._body), self._left, self._flags, self._left)
            self._done = True
        else:
            chunk = self._inflate()
        chunk = chunk[:self._left]
        self._left -= len(chunk)
        if self._crc is not None:
            self._crc_so_far = zlib.crc32(chunk, self._crc_so_far)
        if self._left <= 0:
            self._done = True
            self._bad_crc = self._crc is not None and self._crc_so_far != self._crc
        return chunk

    def _inflate(self) -> bytes:
        import inflate64
        if self._inflater is None:
            self._inflater = inflate64.Inflater()
        while self._at < len(self._body) and not self._inflater.eof:
            piece = bytes(self._body[self._at:self._at + INPUT_OCTETS])
            self._at += len(piece)
            try:
                out = self._inflater.inflate(piece)
            except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
                raise
            except Exception as exc:          # the package's own errors on damaged data
                raise ValueError(f"Deflate64 data damaged ({exc})") from None
            if out:
                return out
        self._done = True                     # the stream (or its input) ended
        if self._sized and self._left > 0:
            raise ValueError("zip member data ends early")
        return b""
