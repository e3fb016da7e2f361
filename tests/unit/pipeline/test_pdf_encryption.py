"""Password-protected PDFs (SPEC §3 encrypted.*; decompose/encryption.py): a PDF is encrypted
when it does not open with the empty user password. Regression for the antivirus
exploration's finding 2: any /Encrypt used to count, so a statement that only restricts
printing and copying (empty user password, an owner password) was deleted as an encrypted
container. The PDFs are built here (tests/support/encrypted_pdf.py); the password-protected
pdfium files of the shared corpus are checked by test_decompose.py."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.pipeline.decompose.encryption import (DICT_OCTETS, MAX_DEPTH, MAX_ENCRYPT_ENTRIES,
                                                pdf_is_encrypted)
from tests.support.encrypted_pdf import ENCRYPT_OBJECT, append_update, encrypted_pdf
from tests.unit.pipeline.support import message, view_of

VARIANTS = [pytest.param(revision, metadata, literal,
                         id=f"R{revision}{'' if metadata else '-clear-metadata'}"
                            f"{'-literal' if literal else ''}")
            for revision in (2, 3, 4, 5, 6) for metadata in (True, False)
            for literal in (False, True) if metadata or revision >= 4]


def encryption_dictionary(pdf: bytes) -> bytes:
    return re.search(rb"\n%d 0 obj\n(.*?)\nendobj" % ENCRYPT_OBJECT, pdf, re.S).group(1)


def trailer_entries(pdf: bytes) -> bytes:
    return re.search(rb"/Size \d+ (/Root.*?)>>\nstartxref", pdf, re.S).group(1)


def pdf_part(pdf: bytes):
    view = view_of(message(attachments=[("statement.pdf", pdf, "application/pdf")]))
    [part] = [p for p in view.parts if p.filename == "statement.pdf"]
    assert part.true_type == "pdf"
    return part


@pytest.mark.parametrize("revision,metadata,literal", VARIANTS)
def test_pdf_that_opens_without_a_password_is_not_encrypted(revision, metadata, literal):
    pdf = encrypted_pdf(revision, "", "owner", encrypt_metadata=metadata,
                        literal_strings=literal)
    assert not pdf_is_encrypted(pdf)
    assert not pdf_part(pdf).encrypted


@pytest.mark.parametrize("revision,metadata,literal", VARIANTS)
def test_pdf_with_a_user_password_is_encrypted(revision, metadata, literal):
    pdf = encrypted_pdf(revision, "secret", "owner", encrypt_metadata=metadata,
                        literal_strings=literal)
    assert pdf_is_encrypted(pdf)
    assert pdf_part(pdf).encrypted


@pytest.mark.parametrize("revision", [2, 6])
def test_pdf_with_the_same_user_and_owner_password_is_encrypted(revision):
    assert pdf_is_encrypted(encrypted_pdf(revision, "owner", "owner"))


def test_pdf_without_encrypt_is_not_encrypted():
    assert not pdf_is_encrypted(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
                                b"trailer\n<< /Root 1 0 R /EncryptMetadata false >>\n%%EOF\n")


# --- whatever cannot be read or checked stays encrypted (rule 1) --------------------------------

@pytest.mark.parametrize("old,new", [
    pytest.param(b"/Filter /Standard", b"/Filter /Adobe.PubSec", id="certificate-handler"),
    pytest.param(b"/Filter /Standard", b"/Filter /Standard#20", id="other-handler-name"),
    pytest.param(b"/R 3", b"/R 7", id="unknown-revision"),
    pytest.param(b"/R 3", b"/R 3.0", id="revision-no-integer"),
    pytest.param(b"/P -3904", b"/P 9 0 R", id="indirect-value"),
    pytest.param(b"/P -3904", b"/P " + b"9" * 5000, id="number-too-long"),
    pytest.param(b"/Length 128", b"/Length 44", id="key-length-no-octets"),
    pytest.param(b"/Length 128", b"/Length 256", id="key-length-too-long"),
    pytest.param(b"/Filter /Standard", b"/Filter /Standard /Odd <4X>", id="bad-hex-string"),
    pytest.param(b"/Filter /Standard", b"/Filter /Standard /Odd (unended", id="unended-string"),
    pytest.param(b"/Filter /Standard", b"/Filter /Standard /Deep " + b"[" * (MAX_DEPTH + 2)
                 + b"]" * (MAX_DEPTH + 2), id="nested-too-deep"),
    pytest.param(b"/Filter /Standard", b"/Filter /Standard /Wide <" + b"00" * DICT_OCTETS
                 + b">", id="dictionary-too-long"),
])
def test_encryption_that_cannot_be_read_is_encrypted(old, new):
    pdf = encrypted_pdf(3, "")
    assert not pdf_is_encrypted(pdf)
    assert old in pdf
    assert pdf_is_encrypted(pdf.replace(old, new, 1))


@pytest.mark.parametrize("revision", [3, 6])
def test_changed_u_entry_is_encrypted(revision):
    pdf = encrypted_pdf(revision, "")
    u = re.search(rb"/U <([0-9A-F]{2})", pdf)
    flipped = b"%02X" % (int(u.group(1), 16) ^ 1)
    assert pdf_is_encrypted(pdf[:u.start(1)] + flipped + pdf[u.end(1):])


def test_missing_encryption_dictionary_is_encrypted():
    pdf = encrypted_pdf(3, "")
    assert pdf_is_encrypted(pdf.replace(b"/Encrypt 6 0 R", b"/Encrypt 9 0 R"))


def test_short_u_entry_of_r6_is_encrypted():
    pdf = encrypted_pdf(6, "")
    u = re.search(rb"/U <([0-9A-F]+)>", pdf)
    assert pdf_is_encrypted(pdf[:u.start(1)] + u.group(1)[:80] + pdf[u.end(1):])


# --- how a PDF may write what we read -------------------------------------------------------------

@pytest.mark.parametrize("user,expected", [("", False), ("secret", True)])
def test_escaped_encrypt_name_is_read(user, expected):
    """ISO 32000-1 §7.3.5: /Encr#79pt is /Encrypt; it used to hide a password (old code: no
    /Encrypt, not encrypted)."""
    pdf = encrypted_pdf(3, user).replace(b"/Encrypt 6", b"/Encr#79pt 6")
    pdf = pdf.replace(b"/Filter /Standard", b"/F#69lter /St#61ndard")
    assert pdf_is_encrypted(pdf) is expected


@pytest.mark.parametrize("user,expected", [("", False), ("secret", True)])
def test_direct_encryption_dictionary_in_the_trailer_is_read(user, expected):
    pdf = encrypted_pdf(4, user)
    direct = pdf.replace(b"/Encrypt 6 0 R", b"/Encrypt " + encryption_dictionary(pdf))
    assert pdf_is_encrypted(direct) is expected


def test_comments_and_line_breaks_in_the_dictionary_are_read():
    pdf = encrypted_pdf(3, "", literal_strings=True)
    commented = pdf.replace(b"/Filter /Standard", b"% written by hand\r/Filter\n/Standard\r\n")
    assert not pdf_is_encrypted(commented)


# --- incremental updates: every reading a viewer may pick ---------------------------------
# (qpdf, reading the latest update, asks for a password exactly where these expect True)

def test_update_that_keeps_the_encryption_still_opens():
    pdf = encrypted_pdf(3, "")
    trailer = trailer_entries(pdf)
    updated = append_update(pdf, {5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>"},
                            trailer)
    assert not pdf_is_encrypted(updated)


def test_update_that_sets_a_user_password_is_encrypted():
    pdf = encrypted_pdf(3, "")
    trailer = trailer_entries(pdf)
    protected = encryption_dictionary(encrypted_pdf(3, "secret"))
    assert pdf_is_encrypted(append_update(pdf, {ENCRYPT_OBJECT: protected}, trailer))


def test_update_with_another_file_identifier_is_encrypted():
    """R2-R4 keys depend on the identifier: under the new one the empty password fails."""
    pdf = encrypted_pdf(3, "")
    trailer = trailer_entries(pdf)
    other = re.sub(rb"/ID \[<[0-9a-f]+>", b"/ID [<00112233445566778899aabbccddeeff>", trailer)
    assert other != trailer
    assert pdf_is_encrypted(append_update(pdf, {7: b"<< /Title (Updated) >>"}, other))


def test_more_encrypt_entries_than_are_looked_at_is_encrypted():
    pdf = encrypted_pdf(3, "")
    trailer = trailer_entries(pdf)
    for count in range(MAX_ENCRYPT_ENTRIES):
        assert not pdf_is_encrypted(pdf), count
        pdf = append_update(pdf, {7: b"<< /Title (Update %d) >>" % count}, trailer)
    assert pdf_is_encrypted(pdf)


# --- untrusted bytes ---------------------------------------------------------------------

TOKENS = [b"<<", b">>", b"[", b"]", b"(", b")", b"\\", b"<", b">", b"/", b"#", b"%", b"\r", b"\n",
          b" ", b"0", b"7", b"R", b"obj", b"/Encrypt", b"/ID", b"true", b"9" * 5000, b"."]


OPEN_PDFS = {revision: encrypted_pdf(revision, "") for revision in (3, 4, 6)}


@settings(max_examples=500, deadline=None)
@given(revision=st.sampled_from([3, 4, 6]), region=st.sampled_from([b" 0 obj", b"trailer"]),
       at=st.integers(0, 10**6), cut=st.integers(0, 40),
       pieces=st.lists(st.sampled_from(TOKENS), max_size=12))
def test_damaged_pdf_gives_an_answer(revision, region, at, cut, pieces):
    """Any edit in the encryption dictionary or the trailer gives True or False, never an
    exception (a crash would make the message a scan error)."""
    pdf = OPEN_PDFS[revision]
    begin = pdf.index(b"%d" % ENCRYPT_OBJECT + region if region == b" 0 obj" else region)
    end = pdf.index(b"endobj", begin) if region == b" 0 obj" else len(pdf)
    start = begin + at % (end - begin)
    damaged = pdf[:start] + b"".join(pieces) + pdf[start + cut:]
    assert pdf_is_encrypted(damaged) in (True, False)
