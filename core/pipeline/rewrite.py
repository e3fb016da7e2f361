"""Apply a verdict's edits to the raw message (SPEC §5 "Edits").

Edits are splices on the raw bytes at the offsets decomposition recorded (Part.span, .cut,
.body_span), never a re-serialisation of the whole message: every byte outside the edited
regions — other parts, their signatures and transfer encodings, preambles — stays exactly
as received (tests/unit/pipeline/test_rewrite.py proves it part by part).

    remove_part     the part (or its nearest ancestor that can be cut: an archive member
                    goes with the attachment carrying it) is cut with its delimiter line; with
                    a `text` the cut part is replaced by a text/plain part saying so. The
                    message itself (a single-part message) gets the text as its new body.
                    A uuencoded block written into a text (view.py rule 5), or a member of
                    an archive in one, takes only the block's lines out of that text, with
                    the `text` in their place (`_without_written_files`); a text that cannot
                    be rebuilt in place (inside an encoded attached message) goes as a
                    part does.
    replace_part    the part's body is replaced by data["content"], base64-encoded.
    add_text        appended to the first text/plain and text/html bodies of the message
                    (not of attached messages); with none, a text part is added; in a
                    signed message (multipart/signed, S/MIME) a text part beside the signed
                    content, so that the signature still checks. The text
                    it is appended to keeps its bytes and charset (text_append.py says how);
                    a plain text whose charset cannot hold the addition gets it in a text
                    part of its own beside it.
    prefix_subject  text put in front of the Subject (once: a Subject that already starts
                    with it keeps it as it is); add_header sets a header field, in place of
                    any the message had — without a `text`, only removes those (a sender's
                    forged mark, core/scan/antispam/handling.py rule 5), and never one
                    another add_header sets.
    forward subject `forward_subject` replaces the Subject (SPEC §5 "forward").

Rules: splices never overlap (an edit inside a part that is cut goes away with it); the
removal of uuencoded blocks from texts comes first, on its own, and the view's offsets are
moved to match, so that the edits after it (a disclaimer appended to that text) see the text
without them; the header block of the message is edited once, at the end (a single-part
text whose blocks were removed may have had its Content-* fields changed before); the line break style of the file
(CRLF or LF) is kept, and inside a text the text's own. A message whose Content-* fields
change gets MIME-Version: 1.0 if it had none (RFC 2045 §4). A header hidden behind a byte
order mark gets no body edit (_header_hidden). Content may become 8-bit (a UTF-8
disclaimer in an 8bit part): the pipeline marks the envelope BODY=8BITMIME when it puts the
rewritten file in place (service.py), since delivery goes by the envelope.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from email.header import Header

from core.pipeline.decompose.content_fields import decode_words
from core.pipeline.decompose.mime import decode_transfer, header_text
from core.pipeline.text_append import (base64_lines, line_break, quoted_printable, with_text,
                                       with_lines_replaced)
from core.pipeline.view import MessageView, Part
from core.smtp.protocol import MAX_TEXT_LINE_OCTETS

__all__ = ["rewrite", "HeaderEditor"]

CONTENT_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition",
                  "content-id", "content-description")


class HeaderEditor:
    """A header block (including its final blank line) as editable field groups."""

    def __init__(self, raw: bytes, nl: bytes):
        self.nl = nl
        self.fields: list[tuple[str, bytes]] = []       # (lower name, raw lines incl. breaks)
        for line in raw.splitlines():
            # every line ends with `nl`: a bare CR kept at a line's end would become CRLF
            # at the relay (core/smtp/client.py) after the CRLF added here, a blank line
            # that would put every field below it, the gateway's own marks too, in the body
            if not line:
                break
            if line[:1] in (b" ", b"\t") and self.fields:
                name, text = self.fields[-1]
                self.fields[-1] = (name, text + line + nl)
                continue
            name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
            self.fields.append((name, line + nl))

    def remove(self, *names: str) -> list[bytes]:
        gone = [raw for name, raw in self.fields if name in names]
        self.fields = [(name, raw) for name, raw in self.fields if name not in names]
        return gone

    def set(self, name: str, value: str) -> None:
        self._put(name, _field(name, value, self.nl))

    def add(self, name: str, value: str) -> None:
        self.fields.append((name.lower(), _field(name, value, self.nl)))

    def replace_subject(self, text: str) -> None:
        """`text` as the Subject, in place of every Subject field there was: the one way a
        copy gets a new Subject (a policy forward's `forward_subject`, a hold-queue forward's
        subject, core/spool/files.py). One line; not ASCII, it goes as RFC 2047 encoded
        words, since the copy may go to a next hop without SMTPUTF8 or 8BITMIME."""
        self.set("Subject", " ".join(text.split()))

    def prefix(self, name: str, text: str) -> None:
        """Put `text` in front of the field's value. The value keeps its own bytes — raw
        8-bit text in an undeclared charset, encoded words, folding — since decoding it to
        re-encode would turn what it cannot name into U+FFFD. No field, or an empty one: the
        field becomes `text`; a value that already starts with `text` stays as it is (mail
        marked by another gateway, or passing this one twice)."""
        text = text.rstrip()
        current = next((raw for field_name, raw in self.fields if field_name == name.lower()),
                       None)
        value = current.split(b":", 1)[1].lstrip(b" \t") if current else b""
        if not value.strip():
            self.set(name, text)
            return
        if text.isascii() and value.lstrip().startswith(text.encode()):
            return
        if not text.isascii() and _unfolded_words(value).startswith(text):
            return                 # an encoded prefix is recognised by what it says
        if not text.isascii() and value.lstrip().startswith(b"=?"):
            text += " "            # RFC 2047 §6.2: space between encoded words vanishes
        head = _field(name, text, self.nl)[:-len(self.nl)]
        space = b"" if value[:1] in (b"\r", b"\n") else b" "    # a fold is one
        first_line = (head + space + value).split(b"\n", 1)[0].rstrip(b"\r")
        if len(first_line) + 2 > MAX_TEXT_LINE_OCTETS:
            # The value's first line fitted after "Name: "; with the prefix in front it
            # would not, and a next hop (this gateway too) refuses the message: fold.
            space = self.nl + b" "
        self._put(name, head + space + value)

    def _put(self, name: str, line: bytes) -> None:
        """`line` in place of the first field `name` (later ones go), or at the end."""
        key = name.lower()
        for index, (field_name, _raw) in enumerate(self.fields):
            if field_name == key:
                self.fields[index] = (key, line)
                self.fields = [f for i, f in enumerate(self.fields) if i <= index or f[0] != key]
                return
        self.fields.append((key, line))

    def bytes(self) -> bytes:
        return b"".join(raw for _name, raw in self.fields) + self.nl


def _mime_fields(top: HeaderEditor) -> list[bytes]:
    return [raw for name, raw in top.fields if name in CONTENT_FIELDS]


HEADER_ACTIONS = ("prefix_subject", "add_header")
_BOM_FIELD = re.compile(rb"\xef\xbb\xbf[\x21-\x39\x3b-\x7e]+[ \t]*:")


def _header_hidden(raw: bytes, root: Part) -> bool:
    """The header block ends at a field behind a UTF-8 byte order mark (a file saved by an
    editor): the message's own header is in what decomposition calls the body. An edit of
    the body would encode that header into a new body below the gateway's Content-Type, out
    of every reader's sight: the body is left as it is, only header edits are made (the
    fields above the mark are the gateway's own and the relays')."""
    return root.body_span is not None and _BOM_FIELD.match(raw, root.body_span[0]) is not None


def _unfolded_words(value: bytes) -> str:
    text = re.sub(r"\r?\n[ \t]", " ", header_text(value)).strip()
    return decode_words(text)[0]


def _field(name: str, value: str, nl: bytes) -> bytes:
    if value.isascii():
        encoded = value
    else:
        encoded = Header(value, "utf-8", header_name=name).encode(linesep=nl.decode())
    return f"{name}: {encoded}".encode("ascii", "replace") + nl


def _text_part(text: str, nl: bytes) -> bytes:
    """A text/plain part saying `text`: 7bit when it is ASCII, else quoted-printable, which
    keeps the message 7-bit and its ASCII letters readable as they are."""
    body = text if text.endswith("\n") else text + "\n"
    lines = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8").split(b"\n")
    if body.isascii():
        payload = nl.join(lines)
        cte = "7bit"
    else:
        payload = quoted_printable(b"\n".join(lines), b"\n").replace(b"\n", nl)
        cte = "quoted-printable"
    return (b"Content-Type: text/plain; charset=\"utf-8\"" + nl
            + b"Content-Disposition: inline" + nl
            + f"Content-Transfer-Encoding: {cte}".encode() + nl + nl + payload)


def rewrite(raw: bytes, view: MessageView, edits, *, forward_subject: str | None = None
            ) -> bytes:
    """The message with `edits` (Findings) applied; `raw` when there is nothing to do."""
    if not edits and not forward_subject:
        return raw
    nl = line_break(raw, b"\n")
    root = view.parts[0]
    if _header_hidden(raw, root):
        edits = [e for e in edits if e.action in HEADER_ACTIONS]
        if not edits and not forward_subject:
            return raw
    raw, view, edits = _without_written_files(raw, view, edits, nl)
    if not edits and not forward_subject:
        return raw
    root = view.parts[0]
    header_end = root.body_span[0] if root.body_span else len(raw)
    top = HeaderEditor(raw[:header_end], nl)
    mime_fields = _mime_fields(top)
    splices: list[tuple[int, int, bytes]] = []      # (start, end, replacement) in the body
    root_body: bytes | None = None                  # a new body for the whole message
    # 1. removals and replacements, outermost first so that inner ones drop out
    targets = []
    for edit in edits:
        if edit.action == "remove_part":
            targets.append((edit, _cuttable(view, view.parts[edit.part])))
        elif edit.action == "replace_part":
            targets.append((edit, view.parts[edit.part]))
    targets.sort(key=lambda t: (t[1].span[1] - t[1].span[0]) if t[1].span else len(raw) + 1,
                 reverse=True)
    notes: dict[int, list[str]] = {}            # removed part id -> texts to put there
    covered: list[tuple[int, int, int]] = []    # (start, end, part id) of removed regions
    for edit, part in targets:
        if part.id == 0 or part.span is None:   # the message's own content goes
            notes.setdefault(0, [])
            if edit.action == "remove_part" and edit.text:
                notes[0].append(edit.text)
            covered.append((0, len(raw), 0))
            continue
        outer = next((pid for s0, e0, pid in covered
                      if s0 <= part.span[0] and part.span[1] <= e0), None)
        if outer is not None:
            if edit.action == "remove_part" and edit.text and outer in notes:
                notes[outer].append(edit.text)
            continue
        covered.append((*part.span, part.id))
        if edit.action == "replace_part":
            splices.append((*part.span, _replaced(raw, part, edit.data.get("content", b""), nl)))
            continue
        notes[part.id] = [edit.text] if edit.text else []
    for part_id, texts in notes.items():
        if part_id == 0:
            root_body = "\n".join(dict.fromkeys(texts)).encode("utf-8")
            continue
        part = view.parts[part_id]
        if texts:
            splices.append((*part.span, _text_part("\n".join(dict.fromkeys(texts)), nl)))
        else:
            splices.append((*(part.cut or part.span), b""))

    # 2. text to append (disclaimer)
    additions = [e.text for e in edits if e.action == "add_text" and e.text]
    if additions:
        added = "\n\n".join(dict.fromkeys(additions))
        if root_body is not None:
            text = root_body.decode("utf-8") + ("\n\n" if root_body else "") + added
            root_body = text.encode("utf-8")
        else:
            bodies = _text_bodies(view, covered)
            if not splices and _inside_signed(view, bodies):
                # beside the signed content, never in it: a signature that checked before
                # must check after (PGP/MIME, S/MIME)
                splices.append((*root.body_span, _wrap_root(raw, root, top,
                                                            _text_part(added, nl), nl,
                                                            first=False)))
            elif root.id in [p.id for p in bodies]:
                splices.append((*root.body_span, _append_to_root(raw, root, top, added, nl)))
            elif bodies:
                for part in bodies:
                    splices.append((*part.span, _append_to_part(raw, part, added, nl)))
            else:
                _add_text_part(raw, view, top, splices, added, nl)

    # 3. a new body for the message itself (a single-part message whose content went)
    if root_body is not None:
        top.remove(*CONTENT_FIELDS)
        text = root_body.decode("utf-8") or " "
        part = _text_part(text, nl)
        head, _, body = part.partition(nl + nl)
        for line in head.split(nl):
            name, _, value = line.decode().partition(":")
            top.add(name, value.strip())
        splices = [(root.body_span[0], root.body_span[1], body)]

    # 4. the header block
    prefixes = [e.text for e in edits if e.action == "prefix_subject" and e.text]
    if forward_subject:
        top.replace_subject(forward_subject)
    elif prefixes:
        top.prefix("Subject", " ".join(prefixes))
    headers = [e for e in edits if e.action == "add_header" and e.header]
    top.remove(*(e.header.lower() for e in headers if e.text is None))
    for edit in headers:
        if edit.text is not None:
            # the gateway's mark is the only one: a field of that name the sender put in
            # (a forged "X-Bulk: 0" above ours) would be what a mail client's filter reads
            top.set(edit.header, edit.text)
    if _mime_fields(top) != mime_fields:
        _with_mime_version(top, nl)

    out = raw
    for start, end, replacement in sorted(splices, key=lambda s: s[0], reverse=True):
        out = out[:start] + replacement + out[end:]
    return top.bytes() + out[header_end:]


def _with_mime_version(top: HeaderEditor, nl: bytes) -> None:
    """RFC 2045 §4: without MIME-Version the Content-* fields just changed mean nothing to a
    reader; added when the message has none."""
    if "mime-version" not in (n for n, _ in top.fields):
        first = next((i for i, (name, _raw) in enumerate(top.fields) if name in CONTENT_FIELDS),
                     len(top.fields))
        top.fields.insert(first, ("mime-version", _field("MIME-Version", "1.0", nl)))


def _written_file(view: MessageView, part: Part) -> Part | None:
    """The uuencoded block (view.py rule 5) a removal of `part` is about: the block itself,
    or the block carrying an archive member; None for anything else."""
    if part.span is None and part.inline is None and part.carrier is not None:
        part = view.parts[part.carrier]
    return part if part.inline is not None else None


def _without_written_files(raw: bytes, view: MessageView, edits, nl: bytes):
    """(raw, view, edits) with the uuencoded blocks to remove taken out of their texts
    (module header: remove_part): each block's lines replaced by its removals' texts, or
    gone, the rest of the text as it was (text_append.with_lines_replaced); the view's
    offsets moved to match and those removals done. A block whose text goes anyway (inside
    a part removed or replaced, or the message's whole content) is left to that; a text
    whose body cannot be rebuilt (not in the file verbatim or in base64 or quoted-printable
    of its data: inside an encoded attached message) keeps its removals, which take the
    text part with them, as an attachment's take its attachment."""
    blocks: dict[int, dict[int, list[str]]] = {}      # text part -> block -> its texts
    handled: set[int] = set()                         # indexes in `edits`
    gone = [_cuttable(view, view.parts[e.part]) for e in edits
            if e.action in ("remove_part", "replace_part")
            and _written_file(view, view.parts[e.part]) is None]
    for index, edit in enumerate(edits):
        block = _written_file(view, view.parts[edit.part]) \
            if edit.action == "remove_part" else None
        if block is None:
            continue
        text = view.parts[block.parent]
        if text.span is None or any(
                g.id == 0 or g.span is None or g.span[0] <= text.span[0] < g.span[1]
                for g in gone):
            continue
        blocks.setdefault(text.id, {}).setdefault(block.id, [])
        if edit.text:
            blocks[text.id][block.id].append(edit.text)
        handled.add(index)
    if not blocks:
        return raw, view, edits
    parts = list(view.parts)
    moves: list[tuple[int, int, int]] = []           # (start, end, new length) in `raw`
    bodies: dict[int, tuple[bytes, bytes]] = {}      # text part -> (new head, new body)
    for text_id, removals in blocks.items():
        text = view.parts[text_id]
        head = raw[text.span[0]:text.body_span[0]]
        head_editor = HeaderEditor(head, nl)
        regions = [(*view.parts[block_id].inline, "\n".join(dict.fromkeys(texts)))
                   for block_id, texts in removals.items()]
        result = with_lines_replaced(raw, text, regions, nl,
                                     _field_value(head_editor, "content-type"))
        if result is None:                           # left to the removals as they are
            handled -= {i for i, e in enumerate(edits) if e.action == "remove_part"
                        and (b := _written_file(view, view.parts[e.part])) is not None
                        and b.parent == text_id}
            continue
        body, changes = result
        if changes:
            for name, value in changes.items():
                head_editor.set(name, value)
            if text.id == 0:
                _with_mime_version(head_editor, nl)
            head = head_editor.bytes()
        bodies[text_id] = (head, body)
        moves.append((text.span[0], text.body_span[1], len(head) + len(body)))
        parts[text_id] = replace(text, data=_data_of(body, changes, text),
                                 transfer_encoding=changes.get("Content-Transfer-Encoding",
                                                               text.transfer_encoding),
                                 charset="utf-8" if "Content-Type" in changes else text.charset)
    if not bodies:
        return raw, view, edits
    out = raw
    for text_id in sorted(bodies, key=lambda i: view.parts[i].span[0], reverse=True):
        text = view.parts[text_id]
        head, body = bodies[text_id]
        out = out[:text.span[0]] + head + body + out[text.body_span[1]:]

    def moved(at: int) -> int:
        return at + sum(length - (end - start) for start, end, length in moves if at >= end)

    for index, part in enumerate(parts):
        if part.span is None:
            continue
        start = moved(part.span[0])
        body_start = (start + len(bodies[index][0]) if index in bodies     # its new head
                      else moved(part.body_span[0]))
        parts[index] = replace(part, span=(start, moved(part.span[1])),
                               body_span=(body_start, moved(part.body_span[1])),
                               cut=(moved(part.cut[0]), moved(part.cut[1])) if part.cut
                               else None)
    return (out, replace(view, parts=parts),
            [e for i, e in enumerate(edits) if i not in handled])


def _data_of(body: bytes, changes: dict[str, str], text: Part) -> bytes:
    """A rebuilt text's decoded content (what an add_text after it reads)."""
    encoding = changes.get("Content-Transfer-Encoding", text.transfer_encoding)
    return decode_transfer(body, encoding)[0]


def _cuttable(view: MessageView, part: Part) -> Part:
    """The part itself if it can be cut out of a multipart, else its nearest ancestor that
    can (an attached message's own root cannot, its message/rfc822 part can)."""
    if part.span is None and part.carrier is not None:
        part = view.parts[part.carrier]
    while part.cut is None and part.parent is not None:
        part = view.parts[part.parent]
    return part


def _text_bodies(view: MessageView, covered) -> list[Part]:
    plain = html_part = None
    for part in view.parts:
        if part.depth != 0 or part.span is None or not part.is_body_text:
            continue
        if part.span[0] == part.span[1]:     # nothing after a last delimiter: not a body
            continue
        if any(s <= part.span[0] and part.span[1] <= e for s, e, _ in covered):
            continue
        if part.content_type == "text/plain" and plain is None:
            plain = part
        elif part.content_type == "text/html" and html_part is None:
            html_part = part
    return [p for p in (plain, html_part) if p is not None]


# what the disclaimer goes beside, never into: signed or encrypted entities (PGP/MIME's
# multipart/encrypted holds exactly its control part and the data, RFC 3156 §4; tester29c C1)
_SIGNED_TYPES = ("multipart/signed", "multipart/encrypted", "application/pkcs7-mime",
                 "application/x-pkcs7-mime")


def _inside_signed(view: MessageView, bodies: list[Part]) -> bool:
    """Whether the message is signed (or S/MIME-wrapped) or a body to append to is inside a
    signed part."""
    signed = [p.span for p in view.parts if p.content_type in _SIGNED_TYPES and p.span]
    if view.parts and view.parts[0].content_type in _SIGNED_TYPES:
        return True
    return any(s <= b.span[0] and b.span[1] <= e for s, e in signed for b in bodies)


def _field_value(editor: HeaderEditor, name: str) -> str | None:
    raw = next((raw for field_name, raw in editor.fields if field_name == name), None)
    if raw is None:
        return None
    return re.sub(rb"\r?\n[ \t]*", b" ", raw.split(b":", 1)[1]).strip().decode("latin-1")


def _append_to_part(raw: bytes, part: Part, added: str, nl: bytes) -> bytes:
    head = raw[part.span[0]:part.body_span[0]]
    editor = HeaderEditor(head, nl)
    result = with_text(raw, part, added, nl, _field_value(editor, "content-type"))
    if result is None:
        return _wrapped(raw, part, _text_part(added, nl), nl)
    body, changes = result
    if changes:
        for name, value in changes.items():
            editor.set(name, value)
        head = editor.bytes()
    return head + body


def _append_to_root(raw, root, top: HeaderEditor, added, nl):
    result = with_text(raw, root, added, nl, _field_value(top, "content-type"))
    if result is None:
        return _wrap_root(raw, root, top, _text_part(added, nl), nl, first=False)
    body, changes = result
    for name, value in changes.items():
        top.set(name, value)
    return body


def _wrapped(raw: bytes, part: Part, text_part: bytes, nl: bytes) -> bytes:
    """The part, and `text_part` after it, in a multipart/mixed of their own in its place:
    the part's bytes stay as they were, wherever it sits (in a multipart/alternative too)."""
    b = _boundary().encode()
    return (b'Content-Type: multipart/mixed; boundary="' + b + b'"' + nl + nl
            + b"--" + b + nl + raw[part.span[0]:part.span[1]] + nl
            + b"--" + b + nl + text_part + nl + b"--" + b + b"--")


def _boundary() -> str:
    return "mailmoat-" + secrets.token_hex(12)


def _add_text_part(raw, view, top: HeaderEditor, splices, added: str, nl: bytes) -> None:
    """No text body at all: add one (as the first part of a multipart message, or by
    wrapping a single-part message into multipart/mixed)."""
    root = view.parts[0]
    text_part = _text_part(added, nl)
    if root.is_multipart:
        children = [p for p in view.parts if p.parent == 0 and p.cut is not None]
        if children:
            first = children[0]
            delimiter = raw[first.cut[0]:first.span[0]].lstrip(b"\r\n")
            splices.append((first.span[0], first.span[0], text_part + nl + delimiter))
            return
    splices.append((*root.body_span, _wrap_root(raw, root, top, text_part, nl, first=True)))


def _wrap_root(raw: bytes, root: Part, top: HeaderEditor, text_part: bytes, nl: bytes, *,
               first: bool) -> bytes:
    """The new body of a single-part message made multipart/mixed: its content (with its
    Content-* fields, moved from the header) and `text_part` before or after it. The
    content's bytes stay as they were: the line break before the closing delimiter is the
    delimiter's (RFC 2046 §5.1.1)."""
    boundary = _boundary()
    content = HeaderEditor(raw[:root.body_span[0]], nl)
    moved = b"".join(raw for name, raw in content.fields if name in CONTENT_FIELDS)
    top.remove(*CONTENT_FIELDS)
    top.add("Content-Type", f'multipart/mixed; boundary="{boundary}"')
    b = boundary.encode()
    body = raw[root.body_span[0]:root.body_span[1]]
    parts = [text_part, moved + nl + body] if first else [moved + nl + body, text_part]
    return b"".join(b"--" + b + nl + part + nl for part in parts) + b"--" + b + b"--" + nl


def _replaced(raw: bytes, part: Part, content: bytes, nl: bytes) -> bytes:
    editor = HeaderEditor(raw[part.span[0]:part.body_span[0]], nl)
    editor.set("Content-Transfer-Encoding", "base64")
    return editor.bytes() + base64_lines(content, nl)
