"""A uuencoded block written into a message text (`begin 644 run.exe` … `end`), which
Thunderbird, Outlook Express and mutt show as an attachment, is a part of its own
(core/pipeline/decompose/uuencoded.py): its name meets filename.patterns, the antivirus scans
it as a file, and removing it removes just its lines from the text (rewrite.py
`_without_written_files`, text_append.py `with_lines_replaced`). Before (content18 B5), run.exe
was delivered with no event, and EICAR in such a block dropped the whole message as "the
message itself is infected" (av.outer_message).
"""

from __future__ import annotations

import base64
import binascii
import io
import quopri
import zipfile

import pytest

from core.pipeline.findings import Finding
from core.pipeline.rewrite import rewrite
from core.scan.antispam.engine import HeuristicEngine, features
from tests.support.mail import EICAR
from tests.unit.pipeline.support import verdict_of, view_of

EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200
BLOCKED = dict(filename__enabled=True, filename__patterns=["*.exe"])
NOTE = "An attachment of this message violated the attachment policy and has been deleted."


def _uu(name: str, data: bytes, end: bytes = b"`\r\nend") -> bytes:
    lines = b"".join(binascii.b2a_uu(data[i:i + 45]).replace(b"\n", b"\r\n")
                     for i in range(0, len(data), 45))
    return b"begin 644 " + name.encode() + b"\r\n" + lines + end


def _single(body: bytes, fields: bytes = b"Content-Type: text/plain\r\n") -> bytes:
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: uu\r\n"
            b"MIME-Version: 1.0\r\n" + fields + b"\r\n" + body)


TEXT_BEFORE = b"see below\r\n\r\n"
TEXT_AFTER = b"\r\nregards\r\n"
RUN_EXE = _single(TEXT_BEFORE + _uu("run.exe", EXE) + TEXT_AFTER)


def _edits(raw: bytes, **changes):
    view, findings, verdict = verdict_of(raw, **changes)
    return view, findings, verdict


# --- the decomposer -------------------------------------------------------------------------

def test_a_block_in_the_text_is_a_part_named_by_its_begin_line():
    view = view_of(RUN_EXE)
    text, block = view.parts
    assert (block.parent, block.origin, block.filename, block.true_type) == \
        (0, "uuencode", "run.exe", "exe")
    assert block.data == EXE and block.is_attachment and block.depth == 0
    start, end = block.inline
    assert text.data[start:end].startswith(b"begin 644 run.exe") and \
        text.data[start:end].endswith(b"\r\nend")
    assert "begin 644 run.exe" in text.text          # the text keeps its lines (rule 2)
    assert [p.filename for p in view.files()] == ["run.exe"]


def test_a_block_says_whether_it_was_read_whole_to_its_end_line():
    # review18b D2: the part keeps what the reader found (uu_read's `whole`); the antivirus
    # no longer works it out again from the span's last line
    broken = _uu("run.exe", EXE).replace(b"`\r\nend", b"this is not uuencode\r\n`\r\nend")
    bodies = [_uu("run.exe", EXE), broken, _without_end("run.exe", EXE)]
    assert [view_of(_single(TEXT_BEFORE + body + TEXT_AFTER)).parts[1].inline_whole
            for body in bodies] == [True, False, False]


def test_a_block_in_a_text_attachment_or_an_html_part_is_not_made_a_part():
    boundary = b"b1"
    raw = _single(b"--b1\r\nContent-Type: text/plain; name=\"notes.txt\"\r\n"
                  b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n"
                  + _uu("run.exe", EXE) + b"\r\n--b1--\r\n",
                  b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n")
    assert [p.origin for p in view_of(raw).parts] == ["mime", "mime"]


def test_blocks_count_against_the_container_limits():
    body = b"".join(_uu(f"f{i}.txt", b"x") + b"\r\n" for i in range(6))
    view = view_of(_single(body), container__max_files=4)
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_files"


def test_a_content_transfer_encoding_x_uuencode_part_is_read_as_before():
    raw = _single(b"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                  b"--b1\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Transfer-Encoding: x-uuencode\r\n\r\n"
                  + _uu("run.exe", EXE) + b"\r\n--b1--\r\n",
                  b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    assert [p.origin for p in view.parts] == ["mime"] * 3
    assert view.parts[2].data == EXE
    assert [(f.rule, f.part) for f in findings] == [("filename.patterns", 2)]


# --- the checks -----------------------------------------------------------------------------

def test_its_name_meets_the_file_name_rules_and_only_the_block_goes():
    view, findings, verdict = _edits(RUN_EXE, **BLOCKED)
    assert [(f.rule, f.event, f.part, f.data["file"]) for f in findings] == \
        [("filename.patterns", "attachment_deleted", 1, "run.exe")]
    assert verdict.disposition == "deliver"
    out = rewrite(RUN_EXE, view, verdict.edits)
    head = RUN_EXE[:RUN_EXE.index(b"\r\n\r\n") + 4]
    assert out == head + TEXT_BEFORE + NOTE.encode() + TEXT_AFTER


def test_a_virus_in_a_block_removes_the_block_not_the_message():
    raw = _single(TEXT_BEFORE + _uu("x.bin", EICAR) + TEXT_AFTER)
    view, findings, verdict = _edits(raw)
    assert [(f.rule, f.action, f.part) for f in findings] == \
        [("av.on_unrepairable", "remove_part", 1)]
    assert verdict.disposition == "deliver"
    out = rewrite(raw, view, verdict.edits)
    assert b"begin 644" not in out and out.startswith(raw[:raw.index(b"\r\n\r\n") + 4]
                                                      + TEXT_BEFORE)
    assert out.endswith(TEXT_AFTER)


def test_a_virus_in_the_text_itself_still_drops_the_message():
    raw = _single(EICAR + b"\r\n" + _uu("notes.txt", b"harmless") + TEXT_AFTER)
    view, findings, verdict = _edits(raw)
    assert [(f.rule, f.part) for f in findings] == [("av.outer_message", 0)]
    assert verdict.disposition == "drop"


def test_a_member_of_a_zip_in_a_block_removes_the_block():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("setup.exe", EXE)
    raw = _single(TEXT_BEFORE + _uu("tools.zip", buffer.getvalue()) + TEXT_AFTER)
    view, findings, verdict = _edits(raw, **BLOCKED, filename__deleted_text__enabled=False)
    assert [(view.parts[f.part].filename, f.data["file"]) for f in findings] == \
        [("tools.zip", "setup.exe")]
    out = rewrite(raw, view, verdict.edits)
    # no text: the block's lines go with their line break
    assert out == raw[:raw.index(b"\r\n\r\n") + 4] + TEXT_BEFORE + TEXT_AFTER[2:]


# --- the rewrite ----------------------------------------------------------------------------

def test_in_a_multipart_only_the_block_changes_and_other_parts_stay_byte_identical():
    other = (b"--b1\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n"
             + base64.encodebytes(b"%PDF-1.4 x").replace(b"\n", b"\r\n"))
    first = (b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT_BEFORE
             + _uu("run.exe", EXE) + b"\r\n" + _uu("ok.txt", b"fine") + TEXT_AFTER)
    raw = _single(b"preamble\r\n" + first + b"\r\n" + other + b"\r\n--b1--\r\nepilogue\r\n",
                  b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    assert [p.filename for p in view.files()] == ["run.exe", "ok.txt", "a.pdf"]
    out = rewrite(raw, view, verdict.edits)
    block = _uu("run.exe", EXE)
    assert out == raw.replace(block, NOTE.encode())
    assert [p.filename for p in view_of(out).files()] == ["ok.txt", "a.pdf"]


def test_a_block_in_a_base64_text_is_removed_and_the_text_encoded_again():
    text = TEXT_BEFORE + _uu("run.exe", EXE) + TEXT_AFTER
    raw = _single(base64.encodebytes(text).replace(b"\n", b"\r\n"),
                  b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    assert [f.data["file"] for f in findings] == ["run.exe"]
    out = rewrite(raw, view, verdict.edits)
    assert out.startswith(raw[:raw.index(b"\r\n\r\n") + 4])
    assert view_of(out).parts[0].data == TEXT_BEFORE + NOTE.encode() + TEXT_AFTER


def test_a_block_in_a_quoted_printable_text_is_removed_and_the_text_encoded_again():
    text = "Grüße, see below\r\n\r\n".encode() + _uu("run.exe", EXE) + TEXT_AFTER
    raw = _single(quopri.encodestring(text),
                  b"Content-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Transfer-Encoding: quoted-printable\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    out = rewrite(raw, view, verdict.edits)
    assert view_of(out).parts[0].data == \
        "Grüße, see below\r\n\r\n".encode() + NOTE.encode() + TEXT_AFTER


def test_a_text_the_7bit_text_cannot_hold_makes_it_quoted_printable_in_utf_8():
    view, findings, verdict = _edits(RUN_EXE, **BLOCKED,
                                     filename__deleted_text="Datei gelöscht.")
    out = rewrite(RUN_EXE, view, verdict.edits)
    after = view_of(out).parts[0]
    assert after.transfer_encoding == "quoted-printable" and after.charset == "utf-8"
    assert after.text == "see below\r\n\r\nDatei gelöscht.\r\nregards\r\n"


def test_a_disclaimer_goes_after_the_text_the_block_was_removed_from():
    view, findings, verdict = _edits(RUN_EXE, **BLOCKED)
    disclaimer = Finding(rule="disclaimer", action="add_text", event=None, reason="",
                         text="Confidential.")
    out = rewrite(RUN_EXE, view, [*verdict.edits, disclaimer])
    assert view_of(out).parts[0].text == \
        f"see below\r\n\r\n{NOTE}\r\nregards\r\n\r\nConfidential.\r\n"


def test_an_unterminated_block_is_removed_to_its_last_encoded_line():
    # the blank line after it is the text's (review18 R2)
    raw = _single(TEXT_BEFORE + _uu("run.exe", EXE, end=b"") + b"\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    out = rewrite(raw, view, verdict.edits)
    assert out.endswith(TEXT_BEFORE + NOTE.encode() + b"\r\n\r\n")


# --- where a block ends (review18 R1, R2) ---------------------------------------------------
# A block's lines are those that decoded in full: what follows the last of them (with no
# "end" line, or after a line that is not uuencode) is the text's, which readers show. The
# antivirus leaves a block's lines out of the text it scans only when all of them, to the
# "end" line, decoded; every other octet of the text is scanned as text.

def _without_end(name: str, data: bytes) -> bytes:
    return _uu(name, data, end=b"")


@pytest.mark.parametrize("body", [
    b"hello\r\nbegin 644 notes\r\n" + EICAR + b"\r\nbye\r\n",             # no end line
    b"hello\r\nbegin 644 notes\r\n" + EICAR + b"\r\nend\r\nbye\r\n",     # not uuencode
    b"hello\r\nbegin 644 notes\r\n\r\n" + EICAR + b"\r\n",                # after a blank line
    b"hello\r\n" + _uu("notes", b"harmless", end=b"") + EICAR + b"\r\n`\r\nend\r\n",
    b"hello\r\n" + _without_end("notes", b"harmless") + b"\r\n" + EICAR + b"\r\n",
], ids=["no-end", "body-not-uuencode", "blank-line", "after-good-lines", "no-end-then-text"])
def test_a_virus_after_a_begin_line_is_scanned_as_the_text(body):
    view, findings, verdict = _edits(_single(body))
    assert [p.origin for p in view.parts] == ["mime", "uuencode"]
    assert [(f.rule, f.part) for f in findings] == [("av.outer_message", 0)]
    assert verdict.disposition == "drop"


def test_a_virus_in_the_rest_of_a_line_decoded_only_in_part_is_scanned_as_the_text():
    # a2b_uu refuses the line (trailing garbage); the reader decodes its first 61 characters
    # and goes on to "end", but the rest of the line is in no block's content
    line = binascii.b2a_uu(b"x" * 45).rstrip(b"\n") + EICAR
    raw = _single(b"hello\r\nbegin 644 notes\r\n" + line + b"\r\n`\r\nend\r\n")
    view, findings, verdict = _edits(raw)
    assert view.parts[1].data == b"x" * 45
    assert [(f.rule, f.part) for f in findings] == [("av.outer_message", 0)]


def test_a_block_without_end_line_takes_only_its_lines_and_the_letter_stays():
    # review18 R2: the minutes and the signature after it were removed with it
    letter = (b"Hi Bob,\n" + _without_end("run.exe", EXE).replace(b"\r\n", b"\n")
              + b"\n\nThe minutes of Monday's meeting follow.\nRegards, Alice\n")
    raw = _single(letter).replace(b"\r\n", b"\n")
    view, findings, verdict = _edits(raw, **BLOCKED)
    block = view.parts[1]
    assert block.data == EXE and \
        view.parts[0].data[block.inline[1]:] == letter[letter.index(b"\n\n\nThe"):]
    out = rewrite(raw, view, verdict.edits)
    assert out.split(b"\n\n", 1)[1] == (b"Hi Bob,\n" + NOTE.encode() + b"\n\n\nThe minutes "
                                        b"of Monday's meeting follow.\nRegards, Alice\n")


def test_a_block_broken_by_a_line_keeps_that_line_and_what_follows():
    broken = _uu("run.exe", EXE).replace(b"`\r\nend", b"this is not uuencode\r\n`\r\nend")
    raw = _single(TEXT_BEFORE + broken + TEXT_AFTER)
    view, findings, verdict = _edits(raw, **BLOCKED)
    assert view.parts[1].data == EXE
    out = rewrite(raw, view, verdict.edits)
    assert out.split(b"\r\n\r\n", 1)[1] == (TEXT_BEFORE + NOTE.encode()
                                            + b"\r\nthis is not uuencode\r\n`\r\nend"
                                            + TEXT_AFTER)


def test_a_virus_in_a_block_read_whole_to_its_end_line_still_removes_only_the_block():
    raw = _single(TEXT_BEFORE + _uu("x.bin", EICAR, end=b"\r\n\r\n`\r\nend  ") + TEXT_AFTER)
    view, findings, verdict = _edits(raw)
    assert [(f.rule, f.part) for f in findings] == [("av.on_unrepairable", 1)]
    assert rewrite(raw, view, verdict.edits).endswith(
        TEXT_BEFORE + b"An attachment of this message was infected with a virus and has been "
        b"deleted." + TEXT_AFTER)


def test_notes_one_charset_cannot_hold_all_go_in_utf_8():
    # review18 D1: the first note went in Latin-1, the second relabelled the text UTF-8
    raw = _single(TEXT_BEFORE + _uu("run.exe", EXE) + b"\r\n" + _uu("x.bin", EICAR)
                  + TEXT_AFTER, b"Content-Type: text/plain; charset=iso-8859-1\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED, filename__deleted_text="Datei gelöscht.",
                                     av__deleted_text="Вирус удалён.")
    after = view_of(rewrite(raw, view, verdict.edits)).parts[0]
    assert after.charset == "utf-8"
    assert after.text == "see below\r\n\r\nDatei gelöscht.\r\nВирус удалён.\r\nregards\r\n"


# --- the heuristic antispam engine ----------------------------------------------------------

def test_the_spam_features_do_not_count_the_blocks():
    """The model learned on views without these parts (view.py `as_learned`): the features of
    a text with a block are those of the same text whose block no reader takes for one."""
    view = view_of(RUN_EXE)
    unrecognised = view_of(RUN_EXE.replace(b"begin 644", b"begin 6x4"))
    assert (len(view.parts), len(unrecognised.parts)) == (2, 1)
    definitions = HeuristicEngine().definitions()
    seen = features(view, definitions)[0]
    assert {"n:parts1", "ct:text/plain"} <= seen
    assert seen - {"644"} == features(unrecognised, definitions)[0] - {"6x4"}


def test_offsets_move_for_the_edits_after_a_block_in_an_earlier_text():
    # the block in the first text shortens it; the attachment after it and the block in the
    # attached message's text are removed at their moved offsets
    inner = (b"From: b@outside.test\r\nSubject: fwd\r\nContent-Type: text/plain\r\n\r\n"
             b"inner text\r\n" + _uu("inner.exe", EXE) + b"\r\ninner end\r\n")
    exe_part = (b"--b1\r\nContent-Type: application/octet-stream; name=\"a.exe\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(EXE).replace(b"\n", b"\r\n"))
    raw = _single(b"--b1\r\nContent-Type: text/plain\r\n\r\n" + TEXT_BEFORE
                  + _uu("run.exe", EXE) + TEXT_AFTER + b"\r\n" + exe_part
                  + b"\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n" + inner
                  + b"\r\n--b1--\r\n",
                  b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n")
    view, findings, verdict = _edits(raw, **BLOCKED, filename__deleted_text__enabled=False)
    assert sorted(f.data["file"] for f in findings) == ["a.exe", "inner.exe", "run.exe"]
    out = rewrite(raw, view, verdict.edits)
    expected = (raw.replace(_uu("run.exe", EXE) + b"\r\n", b"")
                .replace(b"\r\n" + exe_part, b"")
                .replace(_uu("inner.exe", EXE) + b"\r\n", b""))
    assert out == expected
    assert [p.content_type for p in view_of(out).files()] == ["message/rfc822"]
