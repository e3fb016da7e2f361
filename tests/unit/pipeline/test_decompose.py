"""Decomposition: MIME tree and defects, transfer decodings, attached messages, one test per
container type, true types, encrypted containers (SPEC §5 step 2)."""

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from core.pipeline.decompose.archives import NO_RAR_TOOL
from core.pipeline.decompose.sniff import true_type
from tests.support.mail import EICAR, EICAR_ATTACHMENT, nested_multipart
from tests.support.tools import require_tool
from tests.unit.pipeline.support import (corpus_file, message, view_of,
                                        with_attached_message)

ROOT = Path(__file__).resolve().parents[3]


def attach(name, data):
    return view_of(message(attachments=[(name, data)]))


def member_names(view, container_name):
    container = next(p for p in view.parts if p.filename == container_name)
    return sorted(p.filename for p in view.parts if p.parent == container.id)


# --- MIME -------------------------------------------------------------------------------------

def test_mime_tree_spans_and_depths():
    raw = message("Tree", html="<p>hi</p>", attachments=[("a.txt", b"hello", "text/plain")])
    view = view_of(raw)
    kinds = [(p.content_type, p.depth, p.is_multipart) for p in view.parts]
    assert kinds == [("multipart/mixed", 0, True), ("multipart/alternative", 0, True),
                     ("text/plain", 0, False), ("text/html", 0, False),
                     ("text/plain", 0, False)]
    for part in view.parts:
        assert raw[part.span[0]:part.span[1]]            # every MIME part has its bytes
    assert view.parts[4].filename == "a.txt" and view.parts[4].data == b"hello"
    assert view.parts[3].text.strip() == "hi"
    assert view.subject == "Tree" and not view.defects


@pytest.mark.parametrize("markup,text", [
    # words a reader sees whole stay whole: comments and inline tags join
    ("<p>buy via<!-- x -->gra now</p>", "buy viagra now"),
    ("<p>buy v<span>iag</span>ra now</p>", "buy viagra now"),
    ("<p>buy <b>via</b>gra <font color=red>now</font></p>", "buy viagra now"),
    ("<a href='http://x.test/'>click</a>here", "clickhere"),
    ("vi<xyz>ag</xyz>ra", "viagra"),                     # unknown tags are inline too
    # blocks, cells, line breaks and images stand apart
    ("<table><tr><td>one</td><td>two</td></tr></table>", "one two"),
    ("one<br>two<p>three</p><div>four</div>", "one two three four"),
    ("one<img src='x.gif'>two", "one two"),
    ("a < b and c > d", "a < b and c > d"),              # not tags
    ("<style>p {color: red}</style>seen", "seen"),
])
def test_html_is_reduced_to_the_text_a_reader_sees(markup, text):
    view = view_of(message("Html", html=markup))
    html_part = next(p for p in view.parts if p.content_type == "text/html")
    assert " ".join(html_part.text.split()) == text


@pytest.mark.parametrize("cte,encoded,decoded", [
    ("base64", b"aGVsbG8gd29y\r\nbGQ=\r\n", b"hello world"),
    ("base64", b"aGVsbG8gd29ybGQ\r\n", b"hello world"),                 # missing padding
    ("quoted-printable", b"caf=C3=A9 =\r\nsoft", b"caf\xc3\xa9 soft"),
    ("7bit", b"plain", b"plain"),
    ("x-uuencode", b"begin 644 a.bin\r\n+:&5L;&\\@=V]R;&0`\r\n`\r\nend\r\n", b"hello world"),
])
def test_transfer_decodings(cte, encoded, decoded):
    raw = (b"From: a@b.test\r\nSubject: t\r\nContent-Type: application/octet-stream; "
           b"name=x.bin\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + encoded)
    view = view_of(raw)
    assert view.parts[0].data.rstrip(b"\r\n") == decoded
    assert not view.errors


def test_defects_are_recorded_and_parts_still_found():
    raw = (b"From: a@b.test\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain\r\n\r\none\r\n--zz\r\nContent-Type: text/plain"
           b"\r\n\r\ntwo\r\n")
    view = view_of(raw)
    assert [p.data.strip() for p in view.parts[1:]] == [b"one", b"two"]
    assert any("closing boundary" in d for d in view.defects)


def test_multipart_without_boundary_is_read_as_text():
    raw = b"Subject: t\r\nContent-Type: multipart/mixed\r\n\r\nsome text\r\n"
    view = view_of(raw)
    assert view.parts[0].text.strip() == "some text" and view.defects


def test_nested_message_rfc822_adds_a_level():
    inner = message("Inner", attachments=[("inner.exe", b"MZ" + b"\0" * 64)])
    outer = with_attached_message("Outer", inner)
    view = view_of(outer)
    attached = next(p for p in view.parts if p.content_type == "message/rfc822")
    exe = next(p for p in view.parts if p.filename == "inner.exe")
    assert attached.depth == 0 and exe.depth == 1 and exe.true_type == "exe"
    assert exe.span is not None             # raw bytes of the inner part are in the file


def test_nested_message_over_depth_limit():
    raw = message("0")
    for level in range(1, 5):
        raw = with_attached_message(str(level), raw)
    assert view_of(raw, container__max_depth=3).limit_hit.limit == "container.max_depth"
    assert view_of(raw, container__max_depth=4).limit_hit is None


def test_mime_parts_count_as_files():
    raw = message(attachments=[(f"f{i}.txt", b"x", "text/plain") for i in range(6)])
    assert view_of(raw, container__max_files=7).limit_hit is None          # 2 body + 6
    assert view_of(raw, container__max_files=6).limit_hit.limit == "container.max_files"


# --- one test per container type ----------------------------------------------------------------

def _zip():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("dir/a.txt", "alpha")
        z.writestr("b.exe", b"MZ" + b"\0" * 64)
    return out.getvalue()


def _tar():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in (("a.txt", b"alpha"), ("b.exe", b"MZ" + b"\0" * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_zip():
    view = attach("x.zip", _zip())
    assert member_names(view, "x.zip") == ["b.exe", "dir/a.txt"]
    assert next(p for p in view.parts if p.filename == "b.exe").true_type == "exe"


def test_tar_and_tar_gz():
    assert member_names(attach("x.tar", _tar()), "x.tar") == ["a.txt", "b.exe"]
    view = attach("x.tar.gz", gzip.compress(_tar()))
    assert member_names(view, "x.tar.gz") == ["x.tar"]
    assert member_names(view, "x.tar") == ["a.txt", "b.exe"]
    assert next(p for p in view.parts if p.filename == "b.exe").depth == 2


@pytest.mark.parametrize("name,compress", [("doc.txt.gz", gzip.compress),
                                           ("doc.txt.bz2", bz2.compress),
                                           ("doc.txt.xz", lzma.compress)])
def test_gzip_bzip2_xz(name, compress):
    view = attach(name, compress(b"the document text"))
    [member] = [p for p in view.parts if p.origin == "archive"]
    assert member.filename == "doc.txt" and member.data == b"the document text"


@pytest.mark.parametrize("relative,expected", [
    ("archives/strelka/test.7z", "7z"), ("archives/strelka/test.rar", "rar"),
    ("archives/strelka/test.zip", "zip"), ("archives/strelka/test.tar", "tar"),
    ("archives/strelka/test.gz", "gz"), ("archives/strelka/test.bz2", "bz2"),
    ("archives/strelka/test.xz", "xz"),
])
def test_corpus_containers_are_opened(relative, expected):
    data = corpus_file(relative)
    view = attach(relative.rsplit("/", 1)[1], data)
    container = next(p for p in view.parts if p.container == expected)
    assert view.children(container.id), relative
    assert not view.errors and view.limit_hit is None


def test_7z_members_have_content():
    view = attach("test.7z", corpus_file("archives/strelka/test.7z"))
    members = [p for p in view.parts if p.origin == "archive"]
    assert members and any(p.data for p in members)


def test_tnef_winmail_dat():
    path = "mime/mimekit"
    from tests.unit.pipeline.support import corpus_rows
    tnef = [p for p, _ in corpus_rows(path) if "tnef" in p.name.lower() or b"ms-tnef" in
            p.read_bytes()[:200000].lower()]
    if not tnef:
        pytest.skip("no TNEF mail in the corpus")
    opened = 0
    for path in tnef:
        view = view_of(path.read_bytes())
        for container in (p for p in view.parts if p.container == "tnef"):
            opened += bool(view.children(container.id))
    assert opened, "no TNEF attachment was opened"


def test_unknown_tnef_signature_is_unprocessable():
    raw = message(attachments=[("winmail.dat", b"not tnef", "application/ms-tnef")])
    assert view_of(raw).errors


# --- true types -----------------------------------------------------------------------------------

@pytest.mark.parametrize("data,kind", [
    (b"MZ\x90\x00", "exe"), (b"\x7fELF\x02", "elf"), (b"PK\x03\x04", "zip"), (b"%PDF-1.7", "pdf"),
    (b"\x1f\x8b\x08", "gz"), (b"BZh91AY", "bz2"), (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07\x00", "rar"), (b"\x78\x9f\x3e\x22", "tnef"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"), (b"GIF89a", "gif"), (b"hello", None),
    (b"\x00" * 257 + b"ustar\x00", "tar"),
])
def test_true_type_by_magic(data, kind):
    assert true_type(data) == kind


# --- encrypted containers -----------------------------------------------------------------------

@pytest.mark.parametrize("relative", [
    "archives/encrypted/zipcrypto_infected.zip",
    "archives/encrypted/aes256_infected.zip",
    "archives/encrypted/zipcrypto_mixed_plain_and_encrypted.zip",
    "archives/encrypted/encrypted_infected.7z",
    "archives/encrypted/encrypted_headers_infected.7z",
    "archives/encrypted/strelka/test_password.rar",
    "archives/encrypted/strelka/test_password_encrypted_headers.rar",
    "archives/encrypted/strelka/test_password.doc",
    "archives/encrypted/strelka/test_password.docx",
])
def test_encrypted_containers_are_detected(relative):
    view = attach(relative.rsplit("/", 1)[1], corpus_file(relative))
    assert [p.filename for p in view.parts if p.encrypted] == [relative.rsplit("/", 1)[1]]


def test_encrypted_pdf_is_detected():
    from tests.unit.pipeline.support import corpus_rows
    rows = corpus_rows("pdf/", "pdf-encrypted")
    if not rows:
        pytest.skip("no encrypted PDF in the corpus")
    for path, _ in rows:
        assert attach(path.name, path.read_bytes()).parts[-1].encrypted, path


def test_plain_archives_and_documents_are_not_encrypted():
    for relative in ("archives/strelka/test.zip", "archives/strelka/test.7z",
                     "archives/strelka/test.rar"):
        view = attach("x", corpus_file(relative))
        assert not any(p.encrypted for p in view.parts), relative


# --- where a header ends (decompose/mime.py rules 2 and 4) ---------------------------------------
# The body a reader sees starts where Python's email parser (MissingHeaderBodySeparatorDefect)
# and the next hop (Postfix's cleanup inserts the blank line) start it: at the first line that
# is neither a field nor a continuation. Regression: the header used to end only at a blank
# line, so such a line was dropped as "a header line without a field name" and no content
# check saw it.

TOP = b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\n"


def _python_body(raw: bytes) -> bytes:
    import email
    from email import policy
    return email.message_from_bytes(raw, policy=policy.compat32).get_payload(decode=True)


@pytest.mark.parametrize("raw,body,fields", [
    (TOP + EICAR + b"\r\n", EICAR + b"\r\n", ["From", "To", "Subject"]),
    (TOP + b"Hello friend, buy cheap pills today\r\nmore\r\n",
     b"Hello friend, buy cheap pills today\r\nmore\r\n", ["From", "To", "Subject"]),
    (TOP.replace(b"\r\n", b"\n") + b"Hello\nX: y\n", b"Hello\nX: y\n",          # bare LF
     ["From", "To", "Subject"]),
    (TOP[:-2] + b"\rHello\r\n", b"Hello\r\n", ["From", "To", "Subject"]),          # bare CR
    (b"From: a@b.test\rSubject: x\r\rbody\r\n", b"body\r\n", ["From", "Subject"]),  # CR CR
    (b"no header at all\r\nX: y\r\n\r\nz\r\n", b"no header at all\r\nX: y\r\n\r\nz\r\n", []),
    # field names: RFC 5322 ftext only — blanks, controls, NUL and 8-bit bytes end the header
    (TOP + b"Hello friend: buy\r\nX: y\r\n\r\nz\r\n", b"Hello friend: buy\r\nX: y\r\n\r\nz\r\n",
     ["From", "To", "Subject"]),
    (TOP + b"Subj\xc3\xa9ct: x\r\n\r\nz\r\n", b"Subj\xc3\xa9ct: x\r\n\r\nz\r\n",
     ["From", "To", "Subject"]),
    (TOP + b"Su\x00bject: x\r\n\r\nz\r\n", b"Su\x00bject: x\r\n\r\nz\r\n",
     ["From", "To", "Subject"]),
    (TOP + b"Sub\tject: x\r\n\r\nz\r\n", b"Sub\tject: x\r\n\r\nz\r\n", ["From", "To", "Subject"]),
    (TOP + b"X(1)[2]: odd but legal\r\n\r\nz\r\n", b"z\r\n",
     ["From", "To", "Subject", "X(1)[2]"]),
    # a line of blanks is a fold, not the end of the header
    (b"From: a@b.test\r\n   \r\nSubject: x\r\n\r\nz\r\n", b"z\r\n", ["From", "Subject"]),
    # "From " lines: at the top an mbox separator; later one followed by more header is
    # skipped, one followed by anything else starts the body
    (b"From someone Mon Jan  1 00:00:00 2024\r\n" + TOP + b"\r\nz\r\n", b"z\r\n",
     ["From", "To", "Subject"]),
    (b"From: a@b.test\r\nFrom evil x\r\nSubject: x\r\n\r\nz\r\n", b"z\r\n", ["From", "Subject"]),
    (TOP + b"From cheap pills\r\nz\r\n", b"From cheap pills\r\nz\r\n", ["From", "To", "Subject"]),
    # a line starting with a colon: a header line without a name (Python's reading)
    (b"From: a@b.test\r\n:oops\r\nSubject: x\r\n\r\nz\r\n", b"z\r\n", ["From", "Subject"]),
])
def test_the_header_ends_at_the_first_line_that_is_not_a_field(raw, body, fields):
    view = view_of(raw)
    root = view.parts[0]
    assert raw[root.body_span[0]:] == body
    assert [name for name, _ in view.headers] == fields
    assert _python_body(raw).replace(b"\r\n", b"\n") == body.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("raw,fields,body", [
    # the two readers differ here; the line is read as header, which keeps the MIME
    # structure it announces in view (Postfix reads "Subject :" as a field, and makes
    # a first ">From " line an X-Mailbox-Line field)
    (b"From: a@b.test\r\nSubject : x\r\nX: y\r\n\r\nz\r\n", ["From", "Subject", "X"], b"z\r\n"),
    (b">From someone Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nz\r\n", ["Subject"],
     b"z\r\n"),
])
def test_where_readers_differ_the_line_is_read_as_header(raw, fields, body):
    view = view_of(raw)
    assert [name for name, _ in view.headers] == fields
    assert raw[view.parts[0].body_span[0]:] == body


def test_a_body_line_after_the_header_is_text_and_still_malformed():
    view = view_of(TOP + b"Hello friend, buy cheap pills today\r\n")
    assert view.parts[0].text == "Hello friend, buy cheap pills today\r\n"
    assert view.subject == "x" and not view.errors
    assert view.defects == ["message: no blank line after the header: the body starts at a "
                            "line that is not a header field"]


def test_a_part_header_without_blank_line_starts_the_part_body():
    raw = (TOP + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/octet-stream; name=a.com\r\n" + EICAR
           + b"\r\n--b--\r\n")
    view = view_of(raw)
    attachment = view.parts[1]
    assert attachment.filename == "a.com" and attachment.data == EICAR
    assert any("part1: no blank line after the header" in d for d in view.defects)


def test_a_delimiter_after_a_bare_cr_starts_a_part():
    raw = (TOP + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r--b\r"
           b"Content-Type: application/octet-stream; name=a.com\r\n\r\n" + EICAR
           + b"\r--b--\r\n")
    view = view_of(raw)
    assert [(p.content_type, p.data) for p in view.parts[1:]] == [
        ("text/plain", b"hello"), ("application/octet-stream", EICAR)]
    assert not view.defects
    text_part = view.parts[1]
    assert raw[text_part.cut[0]:text_part.cut[1]] == (b"--b\r\nContent-Type: text/plain"
                                                      b"\r\n\r\nhello")
    assert raw[view.parts[2].cut[0]:view.parts[2].cut[0] + 5] == b"\r--b\r"


def test_an_empty_part_is_not_a_defect():
    raw = (TOP + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n")
    view = view_of(raw)
    assert [p.data for p in view.parts[1:]] == [b"", b"hello"] and not view.defects


# --- nesting past MAX_MIME_NESTING (decompose/__init__.py rule 3) --------------------------------


def test_content_nested_past_the_mime_limit_is_an_error_not_a_defect():
    # regression: 120 nested multiparts hid an attachment behind a `malformed` defect only
    from core.pipeline.decompose import MAX_MIME_NESTING
    view = view_of(nested_multipart(120, EICAR_ATTACHMENT))
    [error] = view.errors
    stopped = view.parts[error.part]
    assert stopped.location.count(".") == MAX_MIME_NESTING - 1
    assert not stopped.is_multipart and stopped.data == b""
    assert "MIME nesting deeper than 100" in error.reason
    assert not any(p.filename == "eicar.com" for p in view.parts)


def test_nesting_up_to_the_mime_limit_is_followed():
    view = view_of(nested_multipart(100, EICAR_ATTACHMENT))
    assert not view.errors and view.parts[-1].data == EICAR


def test_attached_messages_nested_past_the_mime_limit_are_an_error():
    # message/rfc822 in multipart/mixed, 60 times: container depth 60, MIME nesting 120;
    # the walk stops at the attached message at nesting 100
    inner = b"Subject: innermost\r\n\r\n" + EICAR + b"\r\n"
    for level in range(60):
        b = f"m{level}".encode()
        inner = (b"Subject: layer\r\nContent-Type: multipart/mixed; boundary=" + b
                 + b"\r\n\r\n--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + inner
                 + b"\r\n--" + b + b"--\r\n")
    inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    view = view_of(inner, container__max_depth=100)
    assert view.limit_hit is None
    [error] = view.errors
    assert view.parts[error.part].content_type == "message/rfc822"
    assert "MIME nesting deeper than 100" in error.reason


def test_attached_messages_alone_meet_the_container_depth_limit_first():
    inner = b"Subject: innermost\r\n\r\n" + EICAR + b"\r\n"
    for level in range(101):
        inner = b"Subject: layer\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    view = view_of(inner, container__max_depth=100)
    assert view.limit_hit.limit == "container.max_depth" and not view.errors


def test_corpus_hostile_nesting_files():
    # 100 nested multiparts: every level followed, the innermost part found and read
    view = view_of(corpus_file("mime-hostile/nested_multipart_100.eml"))
    assert not view.errors and view.limit_hit is None
    assert view.parts[-1].text == "innermost part\n"
    # 50 nested message/rfc822: the container depth limit stops it first
    view = view_of(corpus_file("mime-hostile/nested_rfc822_50.eml"))
    assert view.limit_hit.limit == "container.max_depth" and not view.errors
    view = view_of(corpus_file("mime-hostile/nested_rfc822_50.eml"), container__max_depth=100)
    assert view.limit_hit is None and not view.errors
    assert view.parts[-1].text == "the innermost message\n"


@pytest.mark.parametrize("subtype", ["enriched", "markdown", "x-anything"])
def test_every_text_subtype_is_read_as_text(subtype):
    # RFC 2046 §4.1.4: a reader shows an unknown text subtype as plain text; the checks
    # skipped it, so GTUBE or a spam-rule word in text/enriched went through unread
    raw = (b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/" + subtype.encode() + b"; charset=utf-8\r\n\r\n"
           b"buy viagra now\r\n")
    view = view_of(raw)
    assert "buy viagra now" in view.body_text()
    assert [p.is_body_text for p in view.leaves()] == [True]


# --- rar: an unpacking tool, or unprocessable (decompose/archives.py rule 3) ---------------------

def test_a_rar_attachment_is_expanded_with_an_unpacking_tool():
    require_tool("unar")
    view = attach("docs.rar", corpus_file("archives/strelka/test.rar"))
    members = {p.filename: p for p in view.parts if p.filename and p.filename != "docs.rar"}
    assert {"lorem.txt", "hidden/lorem-hidden.txt"} <= set(members)
    assert len(members["lorem.txt"].data) == 4015 and b"Lorem ipsum" in members["lorem.txt"].data
    assert not view.errors


def test_without_an_unpacking_tool_a_rar_attachment_is_unprocessable(tmp_path):
    """Run where no tool is on PATH (a fresh interpreter: rarfile caches the tool it found).
    Only compressed bytes would reach the builtin engine: scan.unprocessable decides."""
    script = (
        "import sys; sys.path.insert(0, '.')\n"
        "from tests.unit.pipeline.test_decompose import attach\n"
        "from tests.unit.pipeline.support import corpus_file\n"
        "view = attach('docs.rar', corpus_file('archives/strelka/test.rar'))\n"
        "print([e.reason for e in view.errors])\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == repr([NO_RAR_TOOL])
