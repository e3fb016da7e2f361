"""PDF streams and strings, the PDF part of what the antivirus engines look into
(core/scan/unpack.py; docs/antivirus.md "What the builtin engine unpacks").

    pdf_streams(data) -> Iterator[bytes]   the FlateDecode streams inflated, in file order
    pdf_strings(data) -> list[bytes]       the strings outside streams, decrypted, as one item

A PDF that opens with the empty user password is no encrypted container (SPEC §3
encrypted.*; core/pipeline/decompose/encryption.py) and is delivered, yet its streams and
strings are encrypted (RC4 or AES): they are scanned decrypted (_PdfDecryption), or an owner
password would hide known malware from the engine. Other PDFs have no strings item.

Rules
    1. Each octet is searched, inflated and decrypted a bounded number of times, whatever the
       data: a stream ends at its `endstream` looked for only up to the next `stream`
       keyword, a literal string at its ")" or the next `endobj` (x4-cost finding 4).
    2. At most MAX_ITEMS streams, each at most MAX_ITEM_OCTETS; at most MAX_PDF_STRINGS
       strings in one item of at most MAX_ITEM_OCTETS; at most MAX_SLOW_RC4_OCTETS of the
       PDF decrypted with the pure-Python RC4 (key lengths OpenSSL refuses). unpack.expand
       pulls the streams one at a time and stops when its budget is spent.
    3. A stream that inflates to nothing is skipped and does not count towards MAX_ITEMS.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import zlib
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4 as _ARC4
except ImportError:                            # cryptography 42 (pyproject: >= 42)
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4 as _ARC4

# The scan code reads the pipeline's PDF key function because the decomposer's empty-password
# check is what lets such a PDF through undeleted, and the same check yields its file keys:
# the engine decrypts exactly the PDFs the pipeline delivers, and /Encrypt is read in one place.
from core.pipeline.decompose.encryption import pdf_empty_password_keys, rc4

__all__ = ["pdf_streams", "pdf_strings"]

MAX_ITEMS = 200                        # the budget of core/scan/unpack.py
MAX_ITEM_OCTETS = 32 * 2**20
MAX_PDF_DICT_OCTETS = 64 * 1024        # of a stream's dictionary, read for /Type and /Crypt
MAX_SLOW_RC4_OCTETS = 4 * 2**20        # of a PDF decrypted with RC4 in pure Python (_rc4)
MAX_PDF_STRINGS = 65536                # strings of an encrypted PDF decrypted (pdf_strings)
_NOT_HEX = bytes(c for c in range(256) if c not in b"0123456789abcdefABCDEF")


_PDF_STREAM = re.compile(rb"stream\r?\n")
# `n g obj`: the object whose number and generation make a stream's key (ISO 32000-1 §7.6.2)
_PDF_HEADER = rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+obj\b"
_PDF_OBJECT = re.compile(_PDF_HEADER)
# what the string walk steps on: comments, `<<`, strings, object ends, streams, object headers
_PDF_STRING_WALK = re.compile(rb"%[^\r\n]*|<<|[(<]|endobj\b|stream\r?\n|" + _PDF_HEADER)
_PDF_PARENTHESIS = re.compile(rb"[()\\]")
_PDF_STRING_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|[\s\S])|\r\n?")
_PDF_ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"\r\n": b"",
                b"\r": b"", b"\n": b""}               # a backslash before a line end continues it
_PDF_NAME_ESCAPE = re.compile(rb"#([0-9a-fA-F]{2})")
_PDF_XREF = re.compile(rb"/Type[\x00\s]*/XRef\b")
_PDF_METADATA = re.compile(rb"/Type[\x00\s]*/Metadata\b")
_PDF_CRYPT = re.compile(rb"/Crypt\b")
_PDF_CRYPT_NAME = re.compile(rb"/Name[\x00\s]*/([^\x00\s()<>\[\]{}/%]*)")


def pdf_streams(data: bytes) -> Iterator[bytes]:
    """The inflated FlateDecode streams: each from its `stream` keyword to its `endstream`,
    looked for only up to the next `stream` keyword (at most to the end of the data), so each
    octet is searched and inflated a bounded number of times (x4-cost finding 4: every
    `stream` used to take the rest of the file up to the last `endstream`).

    A PDF that opens with the empty user password is no encrypted container (SPEC §3
    encrypted.*; decompose/encryption.py) and is delivered, yet its streams are encrypted:
    each is decrypted first (_PdfDecryption), under the object of the last `n g obj` since
    the previous `stream` keyword. Streams in object streams are decrypted with theirs."""
    keys = pdf_empty_password_keys(data)
    decryption = _PdfDecryption(keys) if keys else None
    view, count, searched = memoryview(data), 0, 0     # slices of a view copy nothing
    match = _PDF_STREAM.search(data)
    while match is not None and count < MAX_ITEMS:
        start = match.end()
        following = _PDF_STREAM.search(data, start)
        limit = following.end() if following else len(data)    # "endstream" holds "stream"
        end = data.find(b"endstream", start, limit)
        if end < 0:
            end = following.start() if following else len(data)
        header = None
        if decryption is not None and not data.endswith(b"end", 0, match.start()):
            for header in _PDF_OBJECT.finditer(data, searched, match.start()):
                pass                           # the last one; each octet searched once
        searched = match.start()
        if header is not None:
            dictionary = data[header.end():min(match.start(),
                                               header.end() + MAX_PDF_DICT_OCTETS)]
            inflated = decryption.stream(view[start:end], (int(header[1]), int(header[2])),
                                         dictionary)
        else:
            inflated = _inflated(view[start:end])
        if inflated:                           # empty streams do not use up MAX_ITEMS
            count += 1
            yield inflated
        match = following


def _inflated(body) -> bytes:
    try:
        return zlib.decompressobj().decompress(body, MAX_ITEM_OCTETS)
    except zlib.error:
        return b""


class _PdfDecryption:
    """The streams and strings of a PDF that opens with the empty user password: ISO 32000-1
    §7.6.2 algorithm 1 (object key = MD5 of the file key, the object number's low 3 octets
    and the generation's 2, little-endian, and "sAlT" for AES; min(n + 5, 16) octets of it)
    with RC4 or AES-128-CBC (the IV first), and AES-256-CBC under the file key itself for
    AESV3 (ISO 32000-2 §7.6.3.2). The crypt filter is the stream's own /Crypt filter, else
    none for a cross-reference stream (§7.5.8.2) or, under /EncryptMetadata false, a metadata
    stream, else /StmF. Bounded: at most MAX_ITEM_OCTETS of a stream are decrypted, and
    MAX_SLOW_RC4_OCTETS of the PDF with an RC4 key length `cryptography` refuses."""

    def __init__(self, keys):
        self.keys = keys                       # encryption.PdfKey, latest first
        self.slow_octets = MAX_SLOW_RC4_OCTETS

    def stream(self, body, reference: tuple[int, int], dictionary: bytes) -> bytes:
        """The stream decrypted and inflated; decrypted only when it does not inflate (stored
        without compression); inflated only when it is not encrypted after all. Several keys
        (incremental updates) are each tried on the first blocks: only one under which the
        stream starts as zlib data decrypts it all."""
        names = _PDF_NAME_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), dictionary)
        ciphers = [(key, method) for key in self.keys
                   if (method := self._method(key, names)) is not None]
        for key, method in ciphers:
            if _starts_zlib(self.decrypt(key, method, reference, body[:48], whole=False)):
                inflated = _inflated(self.decrypt(key, method, reference,
                                                  body[:MAX_ITEM_OCTETS + 32]))
                if inflated:
                    return inflated
        inflated = _inflated(body)
        if inflated or not ciphers:
            return inflated
        key, method = ciphers[0]
        if method == "RC4":                    # the end of line before `endstream` (§7.3.8.1)
            body = body[:-2] if body[-2:] == b"\r\n" else \
                body[:-1] if body[-1:] in (b"\n", b"\r") else body
        plain = self.decrypt(key, method, reference, body[:MAX_ITEM_OCTETS + 32])
        return plain[:MAX_ITEM_OCTETS]

    @staticmethod
    def _method(key, names: bytes) -> str | None:
        if key.filters and _PDF_CRYPT.search(names):
            name = _PDF_CRYPT_NAME.search(names)   # a /Crypt filter without one is /Identity
            return key.filters.get(name[1].decode("latin-1")) if name else None
        if _PDF_XREF.search(names) or (not key.encrypt_metadata
                                       and _PDF_METADATA.search(names)):
            return None
        return key.streams

    def decrypt(self, key, method: str, reference: tuple[int, int], data,
                whole: bool = True) -> bytes:
        """`data` decrypted, without AES's PKCS #5 padding when it is `whole` (not a first
        part); b"" when the key does not fit the cipher."""
        object_key = key.file_key
        if method != "AESV3":
            number, generation = reference
            object_key = hashlib.md5(object_key + (number & 0xFFFFFF).to_bytes(3, "little")
                                     + (generation & 0xFFFF).to_bytes(2, "little")
                                     + (b"sAlT" if method == "AESV2" else b"")).digest()
            object_key = object_key[:min(len(key.file_key) + 5, 16)]
        try:
            if method == "RC4":
                return self._rc4(object_key, data)
            blocks = (len(data) - 16) // 16 * 16
            if blocks <= 0:
                return b""
            decryptor = Cipher(algorithms.AES(object_key), modes.CBC(bytes(data[:16]))) \
                .decryptor()
            plain = decryptor.update(data[16:16 + blocks])
            if whole and 1 <= plain[-1] <= 16 and plain.endswith(plain[-1:] * plain[-1]):
                plain = plain[:-plain[-1]]
            return plain
        except ValueError:                     # an AES key of another length
            return b""

    def _rc4(self, key: bytes, data) -> bytes:
        try:
            return Cipher(_ARC4(key), mode=None).decryptor().update(data)
        except ValueError:                     # key lengths OpenSSL's RC4 refuses (11-15)
            pass
        data = bytes(data[:max(0, self.slow_octets)])
        self.slow_octets -= len(data)
        return rc4(key, data)


def pdf_strings(data: bytes) -> list[bytes]:
    """The literal and hex strings of a PDF that opens with the empty user password, outside
    its streams (those in object streams are decrypted with them), each decrypted under its
    object's key (the latest key, /StrF's method) and unescaped, joined by line breaks: one
    item of at most MAX_ITEM_OCTETS from at most MAX_PDF_STRINGS strings. They are what an
    unencrypted PDF shows in its own bytes (a JavaScript /JS string, say). A literal string
    is read to its closing parenthesis or to the next `endobj`, and each stream is stepped
    over, so each octet is searched once."""
    keys = pdf_empty_password_keys(data)
    if not keys or keys[0].strings is None:
        return []
    decryption, out, count = _PdfDecryption(keys), bytearray(), 0
    at, reference, object_end = 0, None, -1
    while count < MAX_PDF_STRINGS and len(out) < MAX_ITEM_OCTETS \
            and (token := _PDF_STRING_WALK.search(data, at)) is not None:
        at, kind = token.end(), token[0][:2]
        if token[1] is not None:
            reference = (int(token[1]), int(token[2]))
            continue
        if kind == b"en":
            reference = None                   # the trailer's /ID is not encrypted
        elif kind == b"st" and not data.endswith(b"end", 0, token.start()):
            at = data.find(b"endstream", at)
            if at < 0:
                break
        elif kind == b"<":
            close = data.find(b">", at)
            close = len(data) if close < 0 else close
            digits = data[at:close].translate(None, _NOT_HEX)
            raw, at = binascii.unhexlify(digits + b"0" * (len(digits) & 1)), close + 1
        elif kind == b"(":
            if object_end < at:
                object_end = data.find(b"endobj", at)
                object_end = len(data) if object_end < 0 else object_end
            raw, at = _pdf_literal(data, at, object_end)
        if reference is not None and kind in (b"<", b"("):
            out += decryption.decrypt(keys[0], keys[0].strings, reference, raw) + b"\n"
            count += 1
    return [bytes(out[:MAX_ITEM_OCTETS])] if out else []


def _pdf_literal(data: bytes, at: int, stop: int) -> tuple[bytes, int]:
    """The literal string from `at` (after its "(") to its balancing ")" or to `stop`,
    unescaped (ISO 32000-1 §7.3.4.2), and where the walk goes on."""
    depth, position = 1, at
    while depth and (mark := _PDF_PARENTHESIS.search(data, position, stop)) is not None:
        position = mark.end() + (mark[0] == b"\\")
        depth += {b"(": 1, b")": -1}.get(mark[0], 0)
    if depth:
        return _PDF_STRING_ESCAPE.sub(_pdf_unescaped, data[at:stop]), stop
    return _PDF_STRING_ESCAPE.sub(_pdf_unescaped, data[at:position - 1]), position


def _pdf_unescaped(escape: re.Match) -> bytes:
    escaped = escape[1]
    if escaped is None:
        return b"\n"                           # an unescaped end of line is read as LF
    if escaped[0] in b"01234567":
        return bytes([int(escaped, 8) & 0xFF])
    return _PDF_ESCAPED.get(escaped, escaped)


def _starts_zlib(prefix: bytes) -> bool:
    try:
        zlib.decompressobj().decompress(prefix)
        return True
    except zlib.error:
        return False
