"""PDFs that open with the empty user password are scanned decrypted, on the builtin engine and
the shipped signatures (core/scan/unpackers/pdf.py): every revision, stored streams, strings,
crypt filters, /EncryptMetadata false, RC4 key lengths OpenSSL refuses, several keys after an
update, and what decrypting costs. Regression for the hole e563fcf closed (such a PDF is
delivered since 8223955, and its encrypted streams hid known malware from the engine); the mail
end to end is tests/integration/test_pdf_permissions_only.py. The PDFs are built by
tests/support/encrypted_pdf.py (checked against qpdf 11.3: `qpdf --password= --decrypt` shows
the same content)."""

from __future__ import annotations

import re

import pytest

from core.pipeline.decompose.encryption import pdf_is_encrypted
from core.scan.unpack import expand
from core.scan.unpackers import pdf as pdf_unpacker
from tests.support.encrypted_pdf import (ENCRYPT_OBJECT, PAGE_TEXT, append_update,
                                         encrypted_pdf)
from tests.support.mail import EICAR
from tests.unit.scan.support import shipped_engine

DETECTION = "Mailmoat.Test.EICAR"


def _found(data: bytes) -> str | None:
    """Where the shipped signatures find EICAR in `data`, or None."""
    found = shipped_engine().scan(data)
    assert found is None or found.name == DETECTION
    return None if found is None else found.where


@pytest.mark.parametrize("revision", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("flate", [True, False], ids=["flate", "stored"])
def test_eicar_in_an_encrypted_stream_is_found(revision, flate):
    assert _found(encrypted_pdf(revision, content=EICAR, flate=flate)) == "pdf-stream"


@pytest.mark.parametrize("revision", [2, 3, 4, 5, 6])
def test_streams_come_out_decrypted_as_they_were_written(revision):
    pdf = encrypted_pdf(revision, literal_strings=True)
    streams = [item for label, item in expand(pdf) if label.startswith("pdf-stream")]
    assert streams == [b"BT /F1 24 Tf 72 700 Td (" + PAGE_TEXT + b") Tj ET"]


@pytest.mark.parametrize("revision", [2, 3, 4, 5, 6])
def test_eicar_in_an_encrypted_string_is_found(revision):
    assert _found(encrypted_pdf(revision, title=EICAR)) == "pdf-strings"


_ESCAPES = {ord("("): b"\\(", ord(")"): b"\\)", ord("\\"): b"\\\\", ord("\n"): b"\\n",
            ord("\r"): b"\\r", ord("\t"): b"\\t", ord("\b"): b"\\b", ord("\f"): b"\\f"}


def _escaped(octet: int) -> bytes:
    if octet in _ESCAPES:
        return _ESCAPES[octet]
    if octet > 0x7e:
        return b"\\%03o" % octet
    if chr(octet) in "89ACEGXYZ":
        return b"\\" + bytes([octet])         # a backslash before another character is ignored
    return bytes([octet])


@pytest.mark.parametrize("revision", [3, 4])
def test_literal_string_is_read_with_its_escapes(revision):
    """§7.3.4.2: a writer encrypts a string's value, then escapes it. The title's encrypted
    value (2 KiB: every octet value occurs) written as a literal string with every kind of
    escape and a continued line."""
    title = bytes(range(256)) * 8
    pdf = encrypted_pdf(revision, title=title)
    written = re.search(rb"/Title <([0-9a-f]+)>", pdf)
    escaped = [_escaped(octet) for octet in bytes.fromhex(written[1].decode())]
    assert set(_ESCAPES.values()) <= set(escaped)
    literal = b"/Title (" + b"".join(escaped[:8]) + b"\\\r\n" + b"".join(escaped[8:]) + b")"
    pdf = pdf[:written.start()] + literal + pdf[written.end():]
    [strings] = [item for label, item in expand(pdf) if label == "pdf-strings"]
    assert title in strings


def test_pdf_with_a_user_password_is_left_to_the_encrypted_container_rule():
    """Nothing to decrypt without the password: its streams stay as they are."""
    pdf = encrypted_pdf(4, "secret", content=EICAR, flate=True, title=EICAR)
    assert pdf_is_encrypted(pdf)
    assert list(expand(pdf)) == []


def test_rc4_key_length_openssl_refuses_is_decrypted():
    """/Length 64: an object key of 13 octets, which `cryptography` refuses (pure Python)."""
    pdf = encrypted_pdf(3, content=EICAR, flate=True, key_bits=64)
    assert b"/Length 64" in pdf
    assert _found(pdf) == "pdf-stream"


def test_rc4_in_pure_python_is_bounded(monkeypatch):
    monkeypatch.setattr(pdf_unpacker, "MAX_SLOW_RC4_OCTETS", 8)
    pdf = encrypted_pdf(3, content=EICAR, key_bits=64)
    assert _found(pdf) is None


# --- crypt filters (ISO 32000-1 §7.6.5) and /EncryptMetadata ------------------------------------

def _trailer(pdf: bytes) -> bytes:
    return re.search(rb"/Size \d+ (/Root.*?)>>\nstartxref", pdf, re.S).group(1)


def _with_object(pdf: bytes, number: int, dictionary: bytes, body: bytes) -> bytes:
    """`pdf` with object `number`, a stream written in the clear, as an incremental update."""
    return append_update(pdf, {number: b"<< %s /Length %d >>\nstream\n%s\nendstream"
                               % (dictionary, len(body), body)}, _trailer(pdf))


@pytest.mark.parametrize("dictionary", [
    pytest.param(b"/Type /Metadata /Subtype /XML", id="metadata"),
    pytest.param(b"/Type /XRef /W [1 2 1]", id="cross-reference-stream"),
    pytest.param(b"/Filter /Crypt /DecodeParms << /Name /Identity >>", id="identity-filter"),
    pytest.param(b"/Filter /Crypt", id="crypt-filter-without-name"),
])
def test_stream_written_in_the_clear_is_not_decrypted(dictionary):
    """Not encrypted: a metadata stream under /EncryptMetadata false, a cross-reference stream
    (§7.5.8.2), a stream whose own crypt filter is /Identity. Stored without compression, its
    clear bytes are scanned in the file's own; it is not decrypted into noise, which would
    take an item of the budget."""
    pdf = _with_object(encrypted_pdf(4, encrypt_metadata=False), 8, dictionary,
                       b"<x:xmpmeta>" + EICAR + b"</x:xmpmeta>")
    assert [label for label, _ in expand(pdf)] == ["pdf-stream", "pdf-strings"]
    assert _found(pdf) == ""                          # in the file's own bytes


@pytest.mark.parametrize("revision", [4, 6])
@pytest.mark.parametrize("encrypt_metadata", [True, False])
def test_metadata_stream_is_decrypted_only_when_metadata_is_encrypted(revision,
                                                                     encrypt_metadata):
    """The writer here encrypts the stream either way: a reader that honours /EncryptMetadata
    false does not decrypt it, and neither do we."""
    pdf = encrypted_pdf(revision, content=EICAR, flate=True, encrypt_metadata=encrypt_metadata)
    metadata = pdf.replace(b"4 0 obj\n<< /Length", b"4 0 obj\n<< /Type /Metadata /Length")
    assert metadata != pdf
    assert _found(metadata) == ("pdf-stream" if encrypt_metadata else None)


def test_stream_with_a_named_crypt_filter_is_decrypted_with_it():
    """/StmF /Identity but the stream's own /Crypt filter names /StdCF (AESV2)."""
    pdf = encrypted_pdf(4, content=EICAR, flate=True)
    pdf = pdf.replace(b"/StmF /StdCF", b"/StmF /Identity")
    assert _found(pdf) is None                        # /Identity: left as it is
    named = pdf.replace(b"/Filter /FlateDecode",
                        b"/Filter [/Crypt /FlateDecode] /DecodeParms [<< /Name /StdCF >> null]")
    assert _found(named) == "pdf-stream"


# --- several keys, and the cost ------------------------------------------------------------------

def test_stream_under_an_earlier_encryption_dictionarys_key_is_found():
    """An update that changes the owner password changes the key (R2-R4): the stream sealed
    under the earlier one is decrypted with it, the keys being tried on its first blocks."""
    earlier = encrypted_pdf(3, "", "first-owner", content=EICAR, flate=True)
    later = encrypted_pdf(3, "", "second-owner")
    encrypt = re.search(rb"\n%d 0 obj\n(.*?)\nendobj" % ENCRYPT_OBJECT, later, re.S).group(1)
    updated = append_update(earlier, {ENCRYPT_OBJECT: encrypt}, _trailer(earlier))
    assert not pdf_is_encrypted(updated)
    assert _found(updated) == "pdf-stream"


def test_each_octet_is_decrypted_a_bounded_number_of_times(monkeypatch):
    """Thousands of `stream` keywords after one object header, and of unbalanced parentheses:
    each stream is decrypted at most once in full (and its first blocks once per key), each
    string once, never the rest of the file per keyword or parenthesis."""
    decrypted = []
    real = pdf_unpacker._PdfDecryption.decrypt

    def counting(self, key, method, reference, data, whole=True):
        decrypted.append(len(data))
        return real(self, key, method, reference, data, whole)

    monkeypatch.setattr(pdf_unpacker._PdfDecryption, "decrypt", counting)
    pdf = encrypted_pdf(4, content=EICAR, flate=True)
    hostile = pdf + b"9 0 obj\n<< >>\n" + b"stream\nX" * 2000 + b"endstream\n" + \
        b"(" * 2000 + b"10 0 obj\n" + b"(x" * 2000
    found = list(expand(hostile))
    assert ("pdf-stream", EICAR) in found and [label for label, _ in found][-1] == "pdf-strings"
    assert sum(decrypted) <= 3 * len(hostile)
