"""Apply a verdict's edits to the raw message (SPEC §5 "Edits").

Edits are splices on the raw bytes at the offsets decomposition recorded (Part.span, .cut,
.body_span), never a re-serialisation of the whole message: every byte outside the edited
regions — other parts, their signatures and transfer encodings, preambles — stays exactly
as received (tests/unit/pipeline/test_rewrite.py proves it part by part).

    remove_part     the part (or its nearest ancestor that can be cut: an archive member
                    goes with the attachment carrying it) is cut with its delimiter line; with
                    a `text` the cut part is replaced by a text/plain part saying so. The
                    message itself (a single-part message) gets the text as its new body.
    replace_part    the part's body is replaced by data["content"], base64-encoded.
    add_text        appended to the first text/plain and text/html bodies of the message
                    (not of attached messages); with none, a text part is added.
    prefix_subject  text put in front of the Subject (once: a Subject that already starts
                    with it keeps it as it is); add_header sets a header field, in place of
                    any the message had.
    forward subject `forward_subject` replaces the Subject (SPEC §5 "forward").

Rules: splices never overlap (an edit inside a part that is cut goes away with it); the
header block of the message is edited once, at the end; the line break style of the file
(CRLF or LF) is kept.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
from email.header import Header

from core.pipeline.decompose.mime import decode_transfer, decode_words, header_text
from core.pipeline.decompose.text import decode_text
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


def _unfolded_words(value: bytes) -> str:
    text = re.sub(r"\r?\n[ \t]", " ", header_text(value)).strip()
    return decode_words(text)[0]


def _field(name: str, value: str, nl: bytes) -> bytes:
    if value.isascii():
        encoded = value
    else:
        encoded = Header(value, "utf-8", header_name=name).encode(linesep=nl.decode())
    return f"{name}: {encoded}".encode("ascii", "replace") + nl


def _newline(raw: bytes) -> bytes:
    first = raw.find(b"\n")
    return b"\r\n" if first > 0 and raw[first - 1:first] == b"\r" else b"\n"


def _text_part(text: str, nl: bytes) -> bytes:
    body = text if text.endswith("\n") else text + "\n"
    if body.isascii():
        payload = nl.join(body.encode("ascii").splitlines()) + nl
        cte = "7bit"
    else:
        payload = _base64_lines(body.encode("utf-8"), nl)
        cte = "base64"
    return (b"Content-Type: text/plain; charset=\"utf-8\"" + nl
            + b"Content-Disposition: inline" + nl
            + f"Content-Transfer-Encoding: {cte}".encode() + nl + nl + payload)


def _base64_lines(data: bytes, nl: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + nl for i in range(0, len(encoded), 76))


def rewrite(raw: bytes, view: MessageView, edits, *, forward_subject: str | None = None
            ) -> bytes:
    """The message with `edits` (Findings) applied; `raw` when there is nothing to do."""
    if not edits and not forward_subject:
        return raw
    nl = _newline(raw)
    root = view.parts[0]
    header_end = root.body_span[0] if root.body_span else len(raw)
    top = HeaderEditor(raw[:header_end], nl)
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
            if root.id in [p.id for p in bodies]:
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
        top.set("Subject", forward_subject)
    elif prefixes:
        top.prefix("Subject", " ".join(prefixes))
    for edit in edits:
        if edit.action == "add_header" and edit.header:
            # the gateway's mark is the only one: a field of that name the sender put in
            # (a forged "X-Bulk: 0" above ours) would be what a mail client's filter reads
            top.set(edit.header, edit.text or "")

    out = raw
    for start, end, replacement in sorted(splices, key=lambda s: s[0], reverse=True):
        out = out[:start] + replacement + out[end:]
    return top.bytes() + out[header_end:]


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


def _new_text(raw: bytes, part: Part, added: str) -> str:
    body = raw[part.body_span[0]:part.body_span[1]]
    data, error, _ = decode_transfer(body, part.transfer_encoding)
    text, _ = decode_text(body if error else data, part.charset)
    if part.content_type == "text/html":
        addition = "<p>" + html.escape(added).replace("\n", "<br>\n") + "</p>\n"
        match = re.search(r"</body\s*>", text, re.IGNORECASE)
        if match:
            return text[:match.start()] + addition + text[match.start():]
        return text + "\n" + addition
    return text.rstrip("\r\n") + "\n\n" + added + "\n"


def _encode_body(text: str, part: Part, nl: bytes) -> tuple[bytes, dict[str, str] | None]:
    """(body bytes, header changes or None when the part's headers can stay)."""
    encoding = (part.transfer_encoding or "7bit").lower()
    charset = part.charset or "us-ascii"
    # Line breaks are made on the bytes, which is right only where "\n" is the byte 0x0A
    # (not in UTF-16 or UTF-32): any other charset is kept only inside base64.
    if encoding != "base64" and not _ascii_compatible(charset):
        return _utf8_base64(text, part, nl)
    if encoding in ("7bit", "8bit", "binary"):
        try:
            data = text.encode(charset)
            if encoding != "7bit" or data.isascii():
                return nl.join(data.splitlines()) + nl, None
        except (LookupError, UnicodeEncodeError):
            pass
    if encoding == "base64":
        try:
            return _base64_lines(text.encode(charset), nl), None
        except (LookupError, UnicodeEncodeError):
            pass
    if encoding == "quoted-printable":
        try:
            data = binascii.b2a_qp(nl.join(text.encode(charset).splitlines()) + nl)
            return data.replace(b"\n", nl) if nl == b"\r\n" and b"\r\n" not in data else data, None
        except (LookupError, UnicodeEncodeError):
            pass
    return _utf8_base64(text, part, nl)


def _utf8_base64(text: str, part: Part, nl: bytes) -> tuple[bytes, dict[str, str]]:
    return _base64_lines(text.encode("utf-8"), nl), {
        "Content-Type": f'{part.content_type}; charset="utf-8"',
        "Content-Transfer-Encoding": "base64"}


def _ascii_compatible(charset: str) -> bool:
    try:
        return "a\r\n".encode(charset) == b"a\r\n"
    except (LookupError, UnicodeEncodeError):
        return False


def _append_to_part(raw: bytes, part: Part, added: str, nl: bytes) -> bytes:
    body, changes = _encode_body(_new_text(raw, part, added), part, nl)
    head = raw[part.span[0]:part.body_span[0]]
    if changes:
        editor = HeaderEditor(head, nl)
        for name, value in changes.items():
            editor.set(name, value)
        head = editor.bytes()
    return head + body


def _append_to_root(raw, root, top: HeaderEditor, added, nl):
    body, changes = _encode_body(_new_text(raw, root, added), root, nl)
    for name, value in (changes or {}).items():
        top.set(name, value)
    return body


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
    boundary = "mailmoat-" + secrets.token_hex(12)
    content = HeaderEditor(raw[:root.body_span[0]], nl)
    moved = b"".join(raw for name, raw in content.fields if name in CONTENT_FIELDS)
    top.remove(*CONTENT_FIELDS)
    top.add("Content-Type", f'multipart/mixed; boundary="{boundary}"')
    b = boundary.encode()
    body = raw[root.body_span[0]:root.body_span[1]]
    new_body = (b"--" + b + nl + text_part + nl + b"--" + b + nl + (moved or b"")
                + nl + body + (b"" if body.endswith(b"\n") else nl) + b"--" + b + b"--" + nl)
    splices.append((root.body_span[0], root.body_span[1], new_body))


def _replaced(raw: bytes, part: Part, content: bytes, nl: bytes) -> bytes:
    editor = HeaderEditor(raw[part.span[0]:part.body_span[0]], nl)
    editor.set("Content-Transfer-Encoding", "base64")
    return editor.bytes() + _base64_lines(content, nl)
