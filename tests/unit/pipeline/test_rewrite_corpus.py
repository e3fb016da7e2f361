"""rewrite.py on every message of the shared corpus (spam, ham, MIME fixtures, malformed and
hostile shapes): each edit the pipeline makes does its job and damages nothing else.

- a disclaimer (add_text) is readable in the message's text afterwards, and decoding finds
  no more U+FFFD than before (no body re-encoded into something its charset cannot hold);
- a Subject prefix is the prefix and a space in front of the Subject's own bytes, the rest
  of the message unchanged;
- removing the first attachment takes its bytes away, leaves the note, and keeps every part
  outside it byte-identical.
"""

from __future__ import annotations

import email
import html
from email import policy

import pytest

from core.pipeline.decompose.mime import decode_transfer, split_header
from core.pipeline.decompose.text import decode_text
from core.pipeline.findings import Finding
from core.pipeline.rewrite import rewrite
from tests.support.mail import raw_field
from tests.unit.pipeline.support import corpus_rows, view_of

pytestmark = pytest.mark.slow

LABELS = {"ham", "spam", "mime", "malformed", "gtube", "spam+gtube", "eicar",
          "risky-attachment"}
DISCLAIMER = "Scanned by Mailmoat: the disclaimer \u00e9t\u00e9 here."
NOTE = "Attachment removed by the corpus test."
BOM = b"\xef\xbb\xbf"
MAX_BYTES = 3_000_000        # the multi-megabyte hostile shapes have their own tests


@pytest.fixture(scope="module")
def messages():
    return [(path, path.read_bytes()) for path, label in corpus_rows() if label in LABELS
            and path.stat().st_size <= MAX_BYTES]


def _edit(action, **kw):
    return Finding(rule="corpus", action=action, event=None, reason="corpus test", **kw)


def _body_texts(raw: bytes) -> list[str]:
    """The decoded text of the message's own text/plain and text/html bodies."""
    view = view_of(raw)
    out = []
    for part in view.parts:
        if part.depth == 0 and part.span and part.is_body_text \
                and part.content_type in ("text/plain", "text/html"):
            body = raw[part.body_span[0]:part.body_span[1]]
            data, error, _ = decode_transfer(body, part.transfer_encoding)
            out.append(decode_text(body if error else data, part.charset)[0])
    return out


def _stdlib_texts(raw: bytes) -> list[str]:
    """The same through the standard library, for shapes beyond the decomposer's limits."""
    out = []
    for part in email.message_from_bytes(raw, policy=policy.default).walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            try:
                out.append(part.get_content())
            except (LookupError, ValueError, AssertionError):
                pass
    return out


def test_a_disclaimer_reads_well_in_every_corpus_message(messages):
    damaged = []
    for path, raw in messages:
        before = _body_texts(raw)
        out = rewrite(raw, view_of(raw), [_edit("add_text", text=DISCLAIMER)])
        if raw.startswith(BOM) and out == raw:
            continue    # a header behind a byte order mark: no body edit (rewrite.py)
        after = _body_texts(out)
        # HTML in a charset without "é" gets it as a character reference (&#233;)
        readable = any(DISCLAIMER in html.unescape(text)
                       for text in after + _stdlib_texts(out))
        replaced = sum(t.count("\ufffd") for t in after) - sum(t.count("\ufffd") for t in before)
        if not readable or replaced > 0:
            damaged.append((path.name, readable, replaced))
    assert len(messages) > 4000
    assert damaged == []


def test_a_subject_prefix_keeps_every_subject_as_received(messages):
    damaged = []
    for path, raw in messages:
        out = rewrite(raw, view_of(raw), [_edit("prefix_subject", text="[Spam]")])
        subject = _subject(out)
        if not subject.startswith(b"[Spam]") or _body(out) != _body(raw) \
                or subject.removeprefix(b"[Spam]").lstrip() != _subject(raw):
            damaged.append(path.name)
    assert damaged == []


def test_removing_an_attachment_keeps_every_other_part(messages):
    damaged, removed = [], 0
    for path, raw in messages:
        view = view_of(raw)
        targets = [p for p in view.parts if p.id and p.cut and p.span
                   and not p.is_body_text and p.span[1] > p.span[0]]
        if not targets:
            continue
        target = targets[0]
        out = rewrite(raw, view, [_edit("remove_part", part=target.id, text=NOTE)])
        removed += 1
        gone = raw[target.span[0]:target.span[1]]
        others = [raw[p.span[0]:p.span[1]] for p in view.parts
                  if p.id and p.span and p.span[1] > p.span[0]
                  and (p.span[1] <= target.span[0] or p.span[0] >= target.span[1])]
        if NOTE.encode() not in out or any(o not in out for o in others) \
                or (gone in out and gone not in others):    # an identical twin may stay
            damaged.append(path.name)
    assert removed > 300
    assert damaged == []


def _subject(message: bytes) -> bytes:
    """The Subject of the header block as the decomposer reads it (a "Subject:" line in a
    body that starts without a header, as in an SMTP transcript, is not one)."""
    return raw_field(message[:split_header(message, 0, len(message)).body_start],
                     "subject") or b""


def _body(message: bytes) -> bytes:
    """Everything after the header block: after its blank line, or from the first line that
    is not a header field (the rewrite then puts the missing blank line there)."""
    return message[split_header(message, 0, len(message)).body_start:].lstrip(b"\r\n")

