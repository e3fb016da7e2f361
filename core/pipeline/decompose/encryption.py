"""Password protection of documents that are not archives (SPEC §3 encrypted.*): PDF and
Office files (OLE compound files with an encryption header, encrypted OOXML packages),
through msoffcrypto-tool's detector. Archives (zip, 7z, rar) are told by their own readers
in archives.py.

A PDF is password-protected when it does not open with the empty user password. An
/Encrypt dictionary alone is not enough: with an empty user password and an owner password
that only restricts printing or copying (bank statements, government forms) every reader
opens the file without asking, so it is no password-protected file. The standard security
handler's own check decides: ISO 32000-1 §7.6.3.3 algorithm 2 and §7.6.3.4 algorithms 4-6
(MD5 and RC4) for R2-R4; ISO 32000-2 §7.6.4.4.10 algorithm 11 with the §7.6.4.3.3 algorithm
2.B hash (SHA-2 and AES-128) for R6, and one SHA-256 for R5 (Adobe's extension level 3).

Rules kept for PDF, whose bytes are untrusted:
1. Cautious: whatever cannot be read or checked is encrypted — an /Encrypt whose dictionary
   is missing or malformed, a handler other than /Standard, an unknown revision, a value
   given indirectly, more /Encrypt entries or file identifiers than we look at. Where the
   file has several (incremental updates), every /Encrypt dictionary must open with the
   empty password under every file identifier, so no reading a viewer might pick needs a
   password.
2. Bounded: each dictionary is read from a window of DICT_OCTETS with at most MAX_DEPTH
   nesting, at most MAX_ENCRYPT_ENTRIES /Encrypt entries, MAX_DEFINITIONS definitions of
   one object and MAX_FILE_IDS identifiers are looked at, and the key derivations have
   fixed round counts (R6's hash ends by round 288, see `_hash_r6`).
3. Names are compared as PDF reads them, #xx escapes included (/Encr#79pt is /Encrypt).

The same check yields the file key, so `pdf_empty_password_keys` hands the keys of a PDF that
opens without a password to the antivirus engine, which decrypts its streams before looking
into them (core/scan/unpackers/pdf.py): such a file is delivered, and its content must not be hidden
from the scan.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["pdf_is_encrypted", "pdf_empty_password_keys", "PdfKey", "office_is_encrypted"]

DICT_OCTETS = 64 * 1024           # the most text one dictionary or array may span
MAX_DEPTH = 8                     # nesting of dictionaries and arrays inside one
MAX_ENCRYPT_ENTRIES = 8           # /Encrypt entries (one per trailer) looked at
MAX_DEFINITIONS = 8               # definitions of one object number (incremental updates)
MAX_FILE_IDS = 16                 # /ID arrays looked at
MAX_KEYS = 4                      # distinct file keys pdf_empty_password_keys hands out

# ISO 32000-1 §7.6.3.3 algorithm 2 step a: the padding string, all of it for the empty password
PASSWORD_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")

_WHITESPACE = b"\x00\t\n\x0c\r "
_SPACE = rb"[\x00\t\n\x0c\r ]"
_NAME_END = rb"(?=[\x00\t\n\x0c\r ()<>\[\]{}/%]|\Z)"
# digits bounded: int() refuses over 4300 of them, and no value we read needs more than 10
_NUMBER = re.compile(rb"[+-]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})")
_REFERENCE_TAIL = re.compile(_SPACE + rb"+(\d{1,10})" + _SPACE + rb"+R" + _NAME_END)
_REGULAR = re.compile(rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]*")
_KEYWORD = re.compile(rb"(true|false|null)" + _NAME_END)
_COMMENT = re.compile(rb"%[^\r\n]*")
_NAME_ESCAPE = re.compile(rb"#([0-9a-fA-F]{2})")


def _name_pattern(name: str) -> bytes:
    """A regex for /name with any of its characters written as a #xx escape (either case)."""
    def either(char: str) -> bytes:
        digits = b"".join(b"[%c%c]" % (d, bytes([d]).upper()[0]) for d in b"%02x" % ord(char))
        return b"(?:" + re.escape(char.encode()) + b"|#" + digits + b")"
    return b"/" + b"".join(either(char) for char in name) + _NAME_END


# an /Encrypt entry whose value is a reference or a direct dictionary, which starts at group 1
_ENCRYPT_ENTRY = re.compile(_name_pattern("Encrypt") + _SPACE + rb"*(\d+" + _SPACE + rb"+\d+"
                            + _SPACE + rb"+R|<<)")
_ID_ARRAY = re.compile(_name_pattern("ID") + _SPACE + rb"*(\[)")


class _Unreadable(Exception):
    """The PDF's encryption cannot be read; the caller counts the file as encrypted."""


class _NeedsPassword(_Unreadable):
    """The empty user password does not open the PDF."""


class _Name(str):
    """A PDF name, without its slash and with #xx escapes read."""


class _Reference(tuple):
    """An indirect reference `n g R` as (n, g)."""


@dataclass(frozen=True)
class PdfKey:
    """What decrypts the strings and streams of a PDF that opens with the empty user password
    (ISO 32000-1 §7.6.2, §7.6.5). A method is "RC4" or "AESV2" (object keys of algorithm 1),
    "AESV3" (AES-256 with the file key itself), or None: not encrypted (/Identity), or by a
    method no reader knows."""
    file_key: bytes
    streams: str | None                 # /StmF's method (before /V 4: RC4 for everything)
    strings: str | None                 # /StrF's method
    filters: Mapping[str, str | None]   # crypt filters by name, for a stream's own /Crypt
    encrypt_metadata: bool              # False: metadata streams are not encrypted


def pdf_is_encrypted(data: bytes) -> bool:
    """True when a PDF has an /Encrypt dictionary and does not open with the empty user
    password, or its encryption cannot be read (rule 1); False when it has none or opens
    without a password. Never raises for damaged input."""
    try:
        _empty_password_keys(data)
    except _Unreadable:
        return True
    return False


def pdf_empty_password_keys(data: bytes) -> list[PdfKey]:
    """The keys of a PDF that has an /Encrypt dictionary and opens with the empty user
    password: the latest definition's under the latest file identifier first, at most MAX_KEYS
    distinct ones. [] when it has no /Encrypt, or pdf_is_encrypted is True. Never raises for
    damaged input."""
    try:
        keys = _empty_password_keys(data)
    except _Unreadable:
        return []
    distinct: list[PdfKey] = []
    for key in reversed(keys):
        if key not in distinct and len(distinct) < MAX_KEYS:
            distinct.append(key)
    return distinct


def _empty_password_keys(data: bytes) -> list[PdfKey]:
    """Every /Encrypt definition's keys under every file identifier, in file order; [] without
    /Encrypt. _NeedsPassword when the empty password fails any of them, _Unreadable (rule 1)."""
    entries = []
    for match in _ENCRYPT_ENTRY.finditer(data):
        if len(entries) == MAX_ENCRYPT_ENTRIES:
            raise _Unreadable("too many /Encrypt entries")
        entries.append(match.start(1))
    dictionaries, references = [], set()
    for position in entries:
        value = _Parser(data, position).value()
        if isinstance(value, dict):
            dictionaries.append(value)
        elif not isinstance(value, _Reference):
            raise _Unreadable("/Encrypt is neither a dictionary nor a reference")
        elif value not in references:
            references.add(value)
            dictionaries.extend(_definitions(data, value))
    keys, file_ids = [], None
    for dictionary in dictionaries:
        if _revision(dictionary) <= 4 and file_ids is None:
            file_ids = _file_ids(data)
        methods = _methods(dictionary)
        keys += [PdfKey(file_key, *methods) for file_key in _file_keys(dictionary, file_ids)]
    return keys


def office_is_encrypted(data: bytes) -> bool | None:
    """True/False for an Office document, None when it is no Office file we can read."""
    try:
        import msoffcrypto
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        return bool(office.is_encrypted())
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:       # not Office (msi, msg, thumbs.db) or a damaged file
        return None


# --- the standard security handler ------------------------------------------------------------

def _revision(dictionary: dict) -> int:
    """The standard security handler's revision; _Unreadable for any other handler."""
    if dictionary.get("Filter") != "Standard":
        raise _Unreadable("not the standard security handler")     # /Adobe.PubSec: certificates
    revision = _integer(dictionary, "R")
    if revision not in (2, 3, 4, 5, 6):
        raise _Unreadable(f"unknown revision {revision}")
    return revision


def _file_keys(dictionary: dict, file_ids: list[bytes] | None) -> list[bytes]:
    """The file keys of the empty user password: one per file identifier (R2-R4), or the one
    of /UE (R5/R6; none when /UE is unusable). _NeedsPassword when it fails."""
    revision = _revision(dictionary)
    user = _string(dictionary, "U")
    if revision >= 5:
        # ISO 32000-2 algorithm 11: U is hash(32) + validation salt(8) + key salt(8)
        if len(user) < 48:
            raise _Unreadable("short /U")

        def hashed(salt: bytes) -> bytes:
            return hashlib.sha256(salt).digest() if revision == 5 else _hash_r6(b"", salt)
        if hashed(user[32:40]) != user[:32]:
            raise _NeedsPassword("the empty password fails")
        # algorithm 2.A step e: /UE decrypted under the hash with the key salt
        sealed = dictionary.get("UE")
        if not isinstance(sealed, bytes) or len(sealed) < 32:
            return []
        decryptor = Cipher(algorithms.AES(hashed(user[40:48])), modes.CBC(bytes(16))).decryptor()
        return [decryptor.update(sealed[:32]) + decryptor.finalize()]
    owner = _string(dictionary, "O")
    if len(owner) < 32 or len(user) < 32:
        raise _Unreadable("short /O or /U")
    permissions = (_integer(dictionary, "P") & 0xFFFFFFFF).to_bytes(4, "little")
    metadata = dictionary.get("EncryptMetadata", True)
    if not isinstance(metadata, bool):
        raise _Unreadable("/EncryptMetadata is no boolean")
    key_octets = _key_octets(dictionary, revision)
    keys = []
    for file_id in file_ids or [b""]:
        # algorithm 2 with the padding string as the password
        digest = hashlib.md5(PASSWORD_PAD + owner[:32] + permissions + file_id
                             + (b"\xff" * 4 if revision >= 4 and not metadata else b"")).digest()
        if revision >= 3:
            for _ in range(50):
                digest = hashlib.md5(digest[:key_octets]).digest()
        key = digest[:key_octets]
        if revision == 2:                                           # algorithm 4
            opens = rc4(key, PASSWORD_PAD) == user[:32]
        else:                                                       # algorithm 5
            check = rc4(key, hashlib.md5(PASSWORD_PAD + file_id).digest())
            for step in range(1, 20):
                check = rc4(bytes(octet ^ step for octet in key), check)
            opens = check == user[:16]
        if not opens:
            raise _NeedsPassword("the empty password fails")
        keys.append(key)
    return keys


_CIPHERS = {"V2": "RC4", "AESV2": "AESV2", "AESV3": "AESV3"}      # a crypt filter's /CFM


def _methods(dictionary: dict) -> tuple[str | None, str | None, dict, bool]:
    """PdfKey's methods and /EncryptMetadata: ISO 32000-1 §7.6.5, crypt filters from /V 4
    (/StmF and /StrF default to /Identity); before that RC4 (AES-256 for R5/R6 that skip
    them). Lenient: what pdf_is_encrypted does not check does not make the file unreadable."""
    metadata = dictionary.get("EncryptMetadata") is not False
    if dictionary.get("V") not in (4, 5):
        method = "AESV3" if _revision(dictionary) >= 5 else "RC4"
        return method, method, {}, metadata
    filters: dict[str, str | None] = {"Identity": None}
    table = dictionary.get("CF")
    for name, entry in (table.items() if isinstance(table, dict) else ()):
        if name != "Identity" and isinstance(entry, dict):
            cfm = entry.get("CFM")
            filters[name] = _CIPHERS.get(cfm) if isinstance(cfm, str) else None

    def method(entry: str) -> str | None:
        name = dictionary.get(entry, "Identity")
        return filters.get(name) if isinstance(name, str) else None
    return method("StmF"), method("StrF"), filters, metadata


def _key_octets(dictionary: dict, revision: int) -> int:
    """Algorithm 2 step h: 5 octets for R2, /Length bits (default 40) for R3; R4 files may
    keep the length in their crypt filter only, where Acrobat writes octets, not bits (read
    as pdf.js reads it: under 40 means octets)."""
    if revision == 2:
        return 5
    bits = dictionary.get("Length")
    if bits is None and revision == 4:
        filters, default = dictionary.get("CF"), dictionary.get("StmF")
        handler = filters.get(default) if isinstance(filters, dict) and \
            isinstance(default, _Name) else None
        bits = handler.get("Length", 128) if isinstance(handler, dict) else 128
        if isinstance(bits, int) and not isinstance(bits, bool) and bits < 40:
            bits *= 8
    if bits is None:
        bits = 40
    if not isinstance(bits, int) or isinstance(bits, bool) or bits % 8 or not 40 <= bits <= 128:
        raise _Unreadable(f"key length {bits!r}")
    return bits // 8


def _hash_r6(password: bytes, salt: bytes) -> bytes:
    """ISO 32000-2 algorithm 2.B without user data (the user password's hash). At least 64
    rounds, then until the last octet of E is at most round - 32: an octet is at most 255,
    so it ends by round 288."""
    key = hashlib.sha256(password + salt).digest()
    rounds, encrypted = 0, b""
    while rounds < 64 or encrypted[-1] > rounds - 32:
        encryptor = Cipher(algorithms.AES(key[:16]), modes.CBC(key[16:32])).encryptor()
        encrypted = encryptor.update((password + key) * 64) + encryptor.finalize()
        # the first 16 octets as a big-endian number mod 3: 256 = 1 (mod 3), so their sum
        digest = (hashlib.sha256, hashlib.sha384, hashlib.sha512)[sum(encrypted[:16]) % 3]
        key = digest(encrypted).digest()
        rounds += 1
    return key[:32]


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 (the standard security handler's cipher for R2-R4) in Python: 32 octets here,
    and what core/scan/unpackers/pdf.py decrypts with key lengths OpenSSL refuses."""
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) & 0xFF
        state[i], state[j] = state[j], state[i]
    out = bytearray()
    i = j = 0
    for octet in data:
        i = (i + 1) & 0xFF
        j = (j + state[i]) & 0xFF
        state[i], state[j] = state[j], state[i]
        out.append(octet ^ state[(state[i] + state[j]) & 0xFF])
    return bytes(out)


def _integer(dictionary: dict, key: str) -> int:
    value = dictionary.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unreadable(f"/{key} is no integer")                # missing, or given indirectly
    return value


def _string(dictionary: dict, key: str) -> bytes:
    value = dictionary.get(key)
    if not isinstance(value, bytes):
        raise _Unreadable(f"/{key} is no string")
    return value


# --- reading the objects ------------------------------------------------------------------------

def _definitions(data: bytes, reference: tuple[int, int]) -> list[dict]:
    """Every `n g obj << ... >>` of the referenced object; none is unreadable."""
    pattern = re.compile(rb"(?<![0-9])%d[\x00\t\n\x0c\r ]+%d[\x00\t\n\x0c\r ]+obj" % reference
                         + _NAME_END)
    found = []
    for match in pattern.finditer(data):
        if len(found) == MAX_DEFINITIONS:
            raise _Unreadable("too many definitions")
        value = _Parser(data, match.end()).value()
        if not isinstance(value, dict):
            raise _Unreadable("the encryption dictionary is no dictionary")
        found.append(value)
    if not found:
        raise _Unreadable(f"no object {reference[0]} {reference[1]}")
    return found


def _file_ids(data: bytes) -> list[bytes]:
    """The distinct first elements of the /ID arrays (trailers, cross-reference streams)."""
    ids: list[bytes] = []
    for count, match in enumerate(_ID_ARRAY.finditer(data)):
        if count == MAX_FILE_IDS:
            raise _Unreadable("too many /ID arrays")
        try:
            value = _Parser(data, match.start(1)).value()
        except _Unreadable:
            continue                     # not a trailer's identifier (inside a stream)
        if isinstance(value, list) and value and isinstance(value[0], bytes) \
                and value[0] not in ids:
            ids.append(value[0])
    return ids


class _Parser:
    """The PDF object syntax (ISO 32000-1 §7.3) from one position, within DICT_OCTETS:
    dictionaries (name keys, #xx unescaped) as dict, arrays as list, strings as bytes,
    names as _Name, numbers, booleans, null as None, `n g R` as _Reference."""

    def __init__(self, data: bytes, position: int):
        self.text = data[position:position + DICT_OCTETS]
        self.at = 0

    def value(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _Unreadable("nested too deep")
        self.skip_space()
        text, at = self.text, self.at
        if text.startswith(b"<<", at):
            self.at += 2
            return self.dictionary(depth)
        head = text[at:at + 1]
        if head == b"<":
            return self.hex_string()
        if head == b"(":
            return self.literal_string()
        if head == b"[":
            self.at += 1
            items = []
            while True:
                self.skip_space()
                if text.startswith(b"]", self.at):
                    self.at += 1
                    return items
                items.append(self.value(depth + 1))
        if head == b"/":
            return self.name()
        number = _NUMBER.match(text, at)
        if number:
            self.at = number.end()
            if b"." in number.group():
                return float(number.group())
            tail = _REFERENCE_TAIL.match(text, self.at)
            if tail:
                self.at = tail.end()
                return _Reference((int(number.group()), int(tail.group(1))))
            return int(number.group())
        keyword = _KEYWORD.match(text, at)
        if keyword:
            self.at = keyword.end()
            return {b"true": True, b"false": False, b"null": None}[keyword.group(1)]
        raise _Unreadable(f"unexpected {head!r}")

    def dictionary(self, depth: int) -> dict:
        out = {}
        while True:
            self.skip_space()
            if self.text.startswith(b">>", self.at):
                self.at += 2
                return out
            if not self.text.startswith(b"/", self.at):
                raise _Unreadable("dictionary key is no name")
            key = self.name()
            out[key] = self.value(depth + 1)

    def name(self) -> _Name:
        start = self.at + 1
        self.at = _REGULAR.match(self.text, start).end()
        raw = _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), self.text[start:self.at])
        return _Name(raw.decode("latin-1"))

    def hex_string(self) -> bytes:
        end = self.text.find(b">", self.at)
        if end < 0:
            raise _Unreadable("unterminated hex string")
        digits = self.text[self.at + 1:end].translate(None, _WHITESPACE)
        self.at = end + 1
        try:
            return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
        except ValueError:
            raise _Unreadable("bad hex string") from None

    def literal_string(self) -> bytes:
        """§7.3.4.2: balanced parentheses, escapes, an end of line read as one LF."""
        text, at, out, depth = self.text, self.at + 1, bytearray(), 1
        escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
                   ord("f"): b"\f"}
        while at < len(text):
            octet = text[at]
            at += 1
            if octet == 0x5C:                                      # backslash
                if at >= len(text):
                    break
                following = text[at]
                if following in escapes:
                    out += escapes[following]
                    at += 1
                elif 0x30 <= following <= 0x37:
                    digits = re.match(rb"[0-7]{1,3}", text[at:at + 3]).group()
                    out.append(int(digits, 8) & 0xFF)
                    at += len(digits)
                elif following in b"\r\n":                         # a continued line
                    at += 2 if text.startswith(b"\r\n", at) else 1
                else:
                    out.append(following)
                    at += 1
            elif octet == 0x0D:
                out += b"\n"
                at += 1 if text.startswith(b"\n", at) else 0
            else:
                if octet == 0x28:
                    depth += 1
                elif octet == 0x29:
                    depth -= 1
                    if depth == 0:
                        self.at = at
                        return bytes(out)
                out.append(octet)
        raise _Unreadable("unterminated string")

    def skip_space(self) -> None:
        text = self.text
        while self.at < len(text):
            if text[self.at] in _WHITESPACE:
                self.at += 1
            elif text[self.at] == 0x25:                            # % comment to the line's end
                self.at = _COMMENT.match(text, self.at).end()
            else:
                return
