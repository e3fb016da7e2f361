"""One finding per infected file when the antivirus check scans a zip whole because one of its
members could not be read (core/pipeline/checks/antivirus.py `_one_per_file`): the zip's bytes
hold its readable members, which are scanned as parts of their own too, so what the engine
finds of theirs in the zip is dropped, and what it finds in the unreadable member stays."""

from __future__ import annotations

import binascii

from core.pipeline.checks import antivirus
from tests.support.mail import EICAR
from tests.unit.scan.support import as_attachment, settings, view_of, zip_with_deflate64

UUENCODED_EICAR = (b"the file, uuencoded:\nbegin 644 eicar.com\n" + binascii.b2a_uu(EICAR[:45])
                   + binascii.b2a_uu(EICAR[45:]) + b"`\nend\n")
LOG_ONLY = {"av__on_virus": "log", "av__on_not_removed": "log"}


def _found(members: dict[str, bytes], deflate64: set[str]) -> list[tuple[str, str]]:
    """(file, what the reason says was found) of each finding for `members` zipped."""
    # Deflate64 members with a CRC-32 that does not match: unreadable to the decomposer
    # (which reads Deflate64 itself since content18 B2), read by the engines' unpacker
    raw = as_attachment("bundle.zip", zip_with_deflate64(members, deflate64, bad_crc=deflate64))
    view = view_of(raw, **LOG_ONLY)
    assert [view.parts[e.part].filename for e in view.errors] == sorted(deflate64)
    return [(f.data["file"], f.reason.split("Found: ")[1].split("\n")[0])
            for f in antivirus.check(view, settings(**LOG_ONLY))]


def test_a_zip_scanned_whole_makes_one_finding_per_infected_file():
    # review13 B6: the zip's scan unpacked the uuencoded EICAR of notes.txt as well, and
    # the one file was two findings, two events and two toward outbreak.count
    unreadable = {"setup.bin": b"clean " * 100}
    assert _found({**unreadable, "eicar.com": EICAR}, {"setup.bin"}) == [
        ("eicar.com", "signature Mailmoat.Test.EICAR")]
    assert _found({**unreadable, "notes.txt": UUENCODED_EICAR}, {"setup.bin"}) == [
        ("notes.txt", "signature Mailmoat.Test.EICAR (in uuencode)")]
    assert _found({**unreadable, "notes.txt": UUENCODED_EICAR, "copy.txt": UUENCODED_EICAR},
                  {"setup.bin"}) == [
        ("notes.txt", "signature Mailmoat.Test.EICAR (in uuencode)"),
        ("copy.txt", "signature Mailmoat.Test.EICAR (in uuencode)")]
    # what only the zip's scan sees, the unreadable member, is a file of its own (guide36
    # finding 5), though a read member has the same detection
    assert _found({"setup.bin": EICAR, "notes.txt": UUENCODED_EICAR}, {"setup.bin"}) == [
        ("bundle.zip", "signature Mailmoat.Test.EICAR (in deflate64(crc mismatch))"),
        ("notes.txt", "signature Mailmoat.Test.EICAR (in uuencode)")]
    assert _found({"setup.bin": UUENCODED_EICAR, "eicar.com": EICAR}, {"setup.bin"}) == [
        ("bundle.zip", "signature Mailmoat.Test.EICAR (in deflate64(crc mismatch)/uuencode)"),
        ("eicar.com", "signature Mailmoat.Test.EICAR")]
