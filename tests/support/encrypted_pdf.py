"""Encrypted PDFs built in the test, as a PDF writer makes them (the standard security
handler of ISO 32000-1 §7.6.3 for R2-R4, ISO 32000-2 §7.6.4 for R5/R6): a one-page document
whose content stream and /Info title are encrypted under the file key, an /Encrypt
dictionary with /O and /U (and /OE, /UE, /Perms for R5/R6) from the user and owner
passwords, and a trailer /ID.

The writer side of the algorithms, separate from the product's reader side in
core/pipeline/decompose/encryption.py, with the ciphers from `cryptography`. qpdf 11.3 opens
every variant with the right password and refuses the wrong one (checked when this was
written: `qpdf --password=... --check`).

`append_update` adds an incremental update (new object definitions, a new trailer)."""

from __future__ import annotations

import hashlib
import re
import zlib

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["encrypted_pdf", "append_update", "PAGE_TEXT", "RESTRICTED_PERMISSIONS"]

PAGE_TEXT = b"Quarterly statement"
# printing (bit 3) and copying (bit 5) refused, everything else allowed; ISO 32000-1 table 22
RESTRICTED_PERMISSIONS = -3904
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
ENCRYPT_OBJECT = 6


def encrypted_pdf(revision: int, user: str = "", owner: str = "owner", *,
                  encrypt_metadata: bool = True, literal_strings: bool = False,
                  file_id: bytes = b"mailmoat-test-id", content: bytes | None = None,
                  flate: bool = False, title: bytes = b"Statement",
                  key_bits: int = 128) -> bytes:
    """A PDF encrypted with standard security handler revision 2 (RC4 40-bit), 3 (RC4
    128-bit), 4 (AES-128), 5 or 6 (AES-256) for the two passwords. `literal_strings`
    writes /O and /U as (escaped) literal strings instead of hex strings. `content` replaces
    the page's content stream (which shows PAGE_TEXT), `flate` compresses it (/FlateDecode)
    before it is encrypted; `title` is the /Info title (an encrypted string); `key_bits` is
    R3's key length."""
    file_id = hashlib.md5(file_id).digest()
    write = _literal if literal_strings else _hex
    if revision >= 5:
        key, entries = _aes256_handler(revision, user.encode(), owner.encode(),
                                       encrypt_metadata, write)
    else:
        key, entries = _rc4_md5_handler(revision, user.encode(), owner.encode(),
                                        encrypt_metadata, file_id, write, key_bits)

    def seal(number: int, data: bytes) -> bytes:
        return _encrypt_object(revision, key, number, data)

    if content is None:
        content = b"BT /F1 24 Tf 72 700 Td (" + PAGE_TEXT + b") Tj ET"
    sealed = seal(4, zlib.compress(content) if flate else content)
    extensions = {5: b" /Extensions << /ADBE << /BaseVersion /1.7 /ExtensionLevel 3 >> >>",
                  6: b" /Extensions << /ADBE << /BaseVersion /1.7 /ExtensionLevel 8 >> >>"}
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R" + extensions.get(revision, b"") + b" >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
           b"/Resources << /Font << /F1 5 0 R >> >> >>",
        4: b"<< /Length %d%s >>\nstream\n" % (len(sealed), b" /Filter /FlateDecode" if flate
                                                else b"") + sealed + b"\nendstream",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ENCRYPT_OBJECT: b"<< " + b" ".join(entries) + b" >>",
        7: b"<< /Title <" + seal(7, title).hex().encode() + b"> >>",
    }
    version = {2: b"1.3", 3: b"1.4", 4: b"1.6"}.get(revision, b"1.7")
    trailer = (b"/Root 1 0 R /Info 7 0 R /Encrypt %d 0 R /ID [<%s> <%s>]"
               % (ENCRYPT_OBJECT, file_id.hex().encode(), file_id.hex().encode()))
    return _write(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n", objects, trailer)


def append_update(pdf: bytes, objects: dict[int, bytes], trailer: bytes) -> bytes:
    """`pdf` with an incremental update (ISO 32000-1 §7.5.6): `objects` redefined, and a new
    trailer of `trailer`'s entries (without /Size and /Prev, which are added)."""
    previous = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    size = max(int(n) for n in re.findall(rb"/Size (\d+)", pdf))
    return _write(pdf, objects, trailer + b" /Prev %d" % previous, size=size, whole=False)


def _write(start: bytes, objects: dict[int, bytes], trailer: bytes, size: int = 0,
           whole: bool = True) -> bytes:
    out, offsets = start, {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    if whole:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (max(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    else:
        out += b"xref\n" + b"".join(b"%d 1\n%010d 00000 n \n" % (n, offsets[n])
                                    for n in sorted(objects))
    size = max(size, max(objects) + 1)
    return out + (b"trailer\n<< /Size %d " % size + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n"
                  % xref)


# --- R2-R4: MD5 and RC4 (ISO 32000-1 algorithms 2 to 5) -------------------------------------------

def _rc4_md5_handler(revision, user, owner, encrypt_metadata, file_id, write, key_bits):
    length = 5 if revision == 2 else key_bits // 8 if revision == 3 else 16
    owner_key = hashlib.md5((owner or user) + PAD[:32 - len(owner or user)]).digest()
    if revision >= 3:
        for _ in range(50):
            owner_key = hashlib.md5(owner_key).digest()
    owner_key = owner_key[:length]
    o = _rc4(owner_key, (user + PAD)[:32])                                   # algorithm 3
    if revision >= 3:
        for step in range(1, 20):
            o = _rc4(bytes(b ^ step for b in owner_key), o)
    digest = hashlib.md5((user + PAD)[:32] + o
                         + (RESTRICTED_PERMISSIONS & 0xFFFFFFFF).to_bytes(4, "little")
                         + file_id + (b"" if encrypt_metadata or revision < 4
                                      else b"\xff\xff\xff\xff")).digest()   # algorithm 2
    if revision >= 3:
        for _ in range(50):
            digest = hashlib.md5(digest[:length]).digest()
    key = digest[:length]
    if revision == 2:                                                        # algorithm 4
        u = _rc4(key, PAD)
    else:                                                                    # algorithm 5
        u = _rc4(key, hashlib.md5(PAD + file_id).digest())
        for step in range(1, 20):
            u = _rc4(bytes(b ^ step for b in key), u)
        u += hashlib.md5(b"arbitrary padding").digest()
    entries = [b"/Filter /Standard", b"/V %d" % {2: 1, 3: 2, 4: 4}[revision],
               b"/R %d" % revision, b"/O " + write(o), b"/U " + write(u),
               b"/P %d" % RESTRICTED_PERMISSIONS]
    if revision >= 3:
        entries.append(b"/Length %d" % (length * 8))
    if revision == 4:
        entries += [b"/CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV2 /Length 16 >> >>",
                    b"/StmF /StdCF /StrF /StdCF"]
        if not encrypt_metadata:
            entries.append(b"/EncryptMetadata false")
    return key, entries


def _rc4(key: bytes, data: bytes) -> bytes:
    if len(key) * 8 in ARC4.key_sizes:
        return Cipher(ARC4(key), mode=None).encryptor().update(data)
    state, j = list(range(256)), 0            # RC4 itself, for key lengths OpenSSL refuses
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) & 0xFF
        state[i], state[j] = state[j], state[i]
    out, i, j = bytearray(), 0, 0
    for octet in data:
        i = (i + 1) & 0xFF
        j = (j + state[i]) & 0xFF
        state[i], state[j] = state[j], state[i]
        out.append(octet ^ state[(state[i] + state[j]) & 0xFF])
    return bytes(out)


# --- R5/R6: SHA-2 and AES-256 (ISO 32000-2 algorithms 2.B, 8, 9, 10) -----------------------------

def _aes256_handler(revision, user, owner, encrypt_metadata, write):
    key = hashlib.sha256(b"file key" + user + owner).digest()
    salts = hashlib.sha512(b"salts" + user + owner).digest()
    user_check, user_key_salt, owner_check, owner_key_salt = (salts[i:i + 8]
                                                              for i in range(0, 32, 8))
    u = _hash(revision, user, user_check, b"") + user_check + user_key_salt   # algorithm 8
    ue = _aes_no_iv(_hash(revision, user, user_key_salt, b""), key)
    o = _hash(revision, owner, owner_check, u) + owner_check + owner_key_salt  # algorithm 9
    oe = _aes_no_iv(_hash(revision, owner, owner_key_salt, u), key)
    perms = ((RESTRICTED_PERMISSIONS & 0xFFFFFFFF).to_bytes(4, "little") + b"\xff" * 4
             + (b"T" if encrypt_metadata else b"F") + b"adb" + b"\x00" * 4)   # algorithm 10
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    perms = ecb.update(perms) + ecb.finalize()
    entries = [b"/Filter /Standard", b"/V 5", b"/R %d" % revision, b"/Length 256",
               b"/CF << /StdCF << /AuthEvent /DocOpen /CFM /AESV3 /Length 32 >> >>",
               b"/StmF /StdCF /StrF /StdCF", b"/O " + write(o), b"/U " + write(u),
               b"/OE " + write(oe), b"/UE " + write(ue), b"/Perms " + write(perms),
               b"/P %d" % RESTRICTED_PERMISSIONS]
    if not encrypt_metadata:
        entries.append(b"/EncryptMetadata false")
    return key, entries


def _hash(revision: int, password: bytes, salt: bytes, udata: bytes) -> bytes:
    k = hashlib.sha256(password + salt + udata).digest()
    if revision == 5:
        return k
    round_number = 0
    while True:
        k1 = (password + k + udata) * 64
        encryptor = Cipher(algorithms.AES(k[:16]), modes.CBC(k[16:32])).encryptor()
        e = encryptor.update(k1) + encryptor.finalize()
        k = [hashlib.sha256, hashlib.sha384, hashlib.sha512][int.from_bytes(e[:16], "big") % 3](
            e).digest()
        if round_number >= 63 and e[-1] <= round_number - 31:
            return k[:32]
        round_number += 1


def _aes_no_iv(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(b"\x00" * 16)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


# --- objects (algorithm 1; AESV2/AESV3 with a leading IV and PKCS#5 padding) ----------------------

def _encrypt_object(revision: int, key: bytes, number: int, data: bytes) -> bytes:
    if revision >= 5:
        return _aes_cbc(key, number, data)
    salt = b"sAlT" if revision == 4 else b""
    object_key = hashlib.md5(key + number.to_bytes(3, "little") + b"\x00\x00"
                             + salt).digest()[:min(len(key) + 5, 16)]
    return _aes_cbc(object_key, number, data) if revision == 4 else _rc4(object_key, data)


def _aes_cbc(key: bytes, number: int, data: bytes) -> bytes:
    iv = hashlib.md5(b"iv %d" % number).digest()
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def _hex(value: bytes) -> bytes:
    return b"<" + value.hex().upper().encode() + b">"


def _literal(value: bytes) -> bytes:
    """A literal string with every kind of escape ISO 32000-1 §7.3.4.2 allows."""
    out = bytearray(b"(")
    for octet in value:
        char = bytes([octet])
        if char in b"()\\":
            out += b"\\" + char
        elif char == b"\n":
            out += b"\\n"
        elif char == b"\r":
            out += b"\\r"
        elif 0x20 < octet < 0x7F:
            out += char
        else:
            out += b"\\%03o" % octet
    return bytes(out + b")")
