"""The guide's scan-policy examples (§3 "Configuring scan options") as acceptance tests."""

import io
import zipfile

from core.pipeline.scan_policy import selected
from tests.unit.pipeline.support import message, settings, view_of


def zipped(*names):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, b"content of " + name.encode())
    return out.getvalue()


def scanned(raw, **changes):
    view = view_of(raw)
    return sorted(p.filename or p.content_type for p in selected(view, settings(**changes)))


def test_include_zip_and_exe_scans_only_the_exe_inside_test_zip():
    # "If the Include list includes .zip and .exe but not .cmd, and a container file, for
    # example, test.zip, contains test.exe and test.cmd, only test.exe is scanned."
    raw = message(attachments=[("test.zip", zipped("test.exe", "test.cmd"))])
    assert scanned(raw, scan__mode="include", scan__include=[".zip", ".exe"]) == ["test.exe"]


def test_exclude_zip_still_scans_its_members():
    # "if test.zip contains test.exe and test.doc, and .zip is in the Exclude list, the .exe
    # and .doc files are scanned"
    raw = message(attachments=[("test.zip", zipped("test.exe", "test.doc"))])
    names = scanned(raw, scan__mode="exclude", scan__exclude=[".zip"])
    assert "test.exe" in names and "test.doc" in names and "test.zip" not in names


def test_include_only_zip_scans_nothing():
    # "If only .zip is in the Include list and test.zip is sent, no files are scanned
    # because the zip file has been decomposed"
    raw = message(attachments=[("test.zip", zipped("test.exe", "test.doc"))])
    assert scanned(raw, scan__mode="include", scan__include=[".zip"]) == []


def test_all_scans_everything_including_body_and_archive():
    raw = message(attachments=[("test.zip", zipped("test.exe"))])
    names = scanned(raw)
    assert {"test.zip", "test.exe", "text/plain"} <= set(names)


def test_exclude_is_case_insensitive_and_true_type_overrides():
    exe = b"MZ" + b"\x00" * 100
    raw = message(attachments=[("PICTURE.GIF", b"GIF89a..."), ("fake.gif", exe)])
    names = scanned(raw, scan__mode="exclude", scan__exclude=[".gif"])
    assert "PICTURE.GIF" not in names and "fake.gif" in names


def _declaring(names: bytes, data: bytes = b"some bytes") -> bytes:
    return (b"From: a@b.test\r\nTo: c@local.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; " + names + b"\r\n\r\n" + data
            + b"\r\n--b1--\r\n")


def test_the_lists_read_every_name_a_part_declares():
    # guide36 finding 7: a reader may save the part under any of its names
    two = _declaring(b'filename="notes.txt"; filename="update.exe"')
    assert scanned(two, scan__mode="include", scan__include=[".exe"]) == ["notes.txt"]
    assert "notes.txt" in scanned(two, scan__mode="exclude", scan__exclude=[".txt"])
    assert "notes.txt" not in scanned(two, scan__mode="exclude",
                                      scan__exclude=[".txt", ".exe"])
    # a name as Windows saves it, without its trailing dot
    dotted = _declaring(b'filename="notes.txt"; filename*=utf-8\'\'update.exe.')
    assert scanned(dotted, scan__mode="include", scan__include=[".exe"]) == ["notes.txt"]
    assert "notes.txt" in scanned(dotted, scan__mode="exclude", scan__exclude=[".txt"])
