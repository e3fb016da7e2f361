"""Uuencoded blocks in a message text: files mail readers show as attachments.

A text/plain body may carry a file as a uuencoded block ("begin 644 run.exe", the encoded
lines, "end") with no MIME structure around it. Thunderbird, Outlook Express and mutt show
such a block as an attachment named by its begin line, and save it as that file; the builtin
engine decoded it too (core/scan/unpack.py `uu_blocks`, the one reader of both), but the
file-name rules never saw the name and a virus in it was a virus in the message text, which
dropped the whole message (content18 B5).

Rules
    1. Each block of a text/plain part that is message text (`Part.is_body_text`, at any
       depth: attached messages too) is a part of its own: a child of the text part at the
       text's depth (a file beside the text, as a MIME attachment is; no container level),
       origin "uuencode", named by its begin line, its content decoded by the engines'
       reader, `inline` its lines' offsets in the text's decoded data (view.py rule 5): from
       the begin line to the "end" line when every line between decoded in full, else to
       the last line that did, before the first that did not (`uu_read`'s `end`: with no
       "end" line, or from a line the reader cannot decode, what follows is the text's,
       which readers show: review18 R2). Its true type is sniffed and a container in it is
       expanded as for any attachment, so the file-name rules, true-type checks, the
       antivirus and the container limits meet it.
    2. The text part keeps its data and text whole, block lines included: the content and
       spam rules and the heuristic engine read the text as before. The antivirus scans the
       text without the blocks read whole to their "end" line (`Part.inline_whole`, as
       `uu_read` found it), which it scans as parts (checks/antivirus.py), as it scans a
       container's members and not the container; a block not read whole stays in the text
       it scans too, so that every octet of the text is scanned, as text or as a block's
       content (review18 R1: a "begin" line hid what followed it from both).
    3. Every decoded octet goes through the walker's budget (limits.py): a block is decoded
       at most to what the budget has left, then checked and charged like a part; each block
       counts as a file (container.max_files).
    4. Removing a block (rewrite.py) removes its lines (`inline`) from the text, replaced by
       the policy's text when it has one; the rest of the text stays as it was.
"""

from __future__ import annotations

from core.scan.unpack import uu_blocks, uu_read

__all__ = ["expand"]


def expand(walker, text) -> None:
    """Make each uuencoded block of the text part `text` a part (rules 1 and 3)."""
    data = text.data
    if b"begin " not in data:
        return
    for block in uu_blocks(data):
        name = block.name.replace("\x00", "") or "unnamed"
        location = f"{text.location}/{name}"
        read = uu_read(data, block, walker.budget.room())
        part = walker.new_part(parent=text.id, depth=text.depth, location=location,
                               origin="uuencode", filename=name, is_attachment=True,
                               inline=(block.start, read.end), inline_whole=read.whole)
        walker.budget.check_file(len(read.data), location)
        walker.budget.charge(len(read.data), location)
        walker.budget.check_ratio(len(read.data), block.body[1] - block.body[0], location)
        part.data = read.data
        walker.content(part)
