"""rewrite.py: edits applied by splicing, untouched parts byte-identical (SPEC §5 "Edits")."""

import base64
import email
from email import policy

from core.pipeline.decompose import decompose_bytes
from core.pipeline.findings import Finding
from core.pipeline.rewrite import rewrite
from tests.unit.pipeline.support import CONTEXT, message, settings, view_of

SIGNED = (
    b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: signed\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\npreamble stays\r\n"
    b"--mix\r\nContent-Type: multipart/signed; protocol=\"application/pgp-signature\"; "
    b"micalg=pgp-sha256; boundary=\"sig\"\r\n\r\n"
    b"--sig\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\nSigned caf=C3=A9 text  \r\n"
    b"--sig\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n"
    b"iQEzBAEBCAAdFiEE\r\n-----END PGP SIGNATURE-----\r\n--sig--\r\n"
    b"--mix\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
    b"Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"MZ" + b"\0" * 100)
    .replace(b"\n", b"\r\n") +
    b"--mix\r\nContent-Type: image/gif; name=\"logo.gif\"\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--mix--\r\nepilogue stays\r\n")


def edit(action, part=None, text=None, **kw):
    return Finding(rule="test", action=action, event=None, reason="test", part=part,
                   text=text, **kw)


def part_bytes(raw):
    """Raw bytes of every MIME part, keyed by (content type, file name)."""
    view = decompose_bytes(raw, CONTEXT, settings())
    return {(p.content_type, p.filename): raw[p.span[0]:p.span[1]]
            for p in view.parts if p.span and p.id}


def test_removing_an_attachment_keeps_every_other_part_byte_identical():
    view = view_of(SIGNED)
    exe = next(p for p in view.parts if p.filename == "invoice.pdf.exe")
    out = rewrite(SIGNED, view, [edit("remove_part", exe.id, "Attachment removed.")])
    before, after = part_bytes(SIGNED), part_bytes(out)
    for key in [("multipart/signed", None), ("application/pgp-signature", None),
                ("image/gif", "logo.gif")]:
        assert after[key] == before[key], key
    signed_text = next(p for p in view.parts if p.transfer_encoding == "quoted-printable")
    original = SIGNED[signed_text.span[0]:signed_text.span[1]]
    new_view = decompose_bytes(out, CONTEXT, settings())
    new_text = next(p for p in new_view.parts if p.transfer_encoding == "quoted-printable")
    assert out[new_text.span[0]:new_text.span[1]] == original          # signed bytes intact
    assert ("application/octet-stream", "invoice.pdf.exe") not in after
    assert b"preamble stays" in out and out.endswith(b"epilogue stays\r\n")
    parsed = email.message_from_bytes(out, policy=policy.default)
    texts = [p.get_content() for p in parsed.walk() if p.get_content_type() == "text/plain"]
    assert "Attachment removed." in [t.strip() for t in texts]
    assert out[:out.index(b"\r\n\r\n")] == SIGNED[:SIGNED.index(b"\r\n\r\n")]  # same header


def test_removing_without_text_cuts_the_part_and_its_delimiter():
    view = view_of(SIGNED)
    gif = next(p for p in view.parts if p.filename == "logo.gif")
    out = rewrite(SIGNED, view, [edit("remove_part", gif.id)])
    assert b"logo.gif" not in out and out.count(b"--mix") == SIGNED.count(b"--mix") - 1
    assert decompose_bytes(out, CONTEXT, settings()).defects == []


def test_disclaimer_appended_to_text_and_html_only():
    raw = message("Hi", body="Hello there.\n", html="<html><body><p>Hello</p></body></html>",
                  attachments=[("a.bin", b"\x00\x01")])
    view = view_of(raw)
    out = rewrite(raw, view, [edit("add_text", text="Confidential & private.")])
    parsed = email.message_from_bytes(out, policy=policy.default)
    plain = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert plain.rstrip().endswith("Confidential & private.")
    assert "Confidential &amp; private." in html and html.index("Confidential") < html.index(
        "</body>")
    attachment = next(p for p in view.parts if p.filename == "a.bin")
    assert part_bytes(out)[("application/octet-stream", "a.bin")] == \
        raw[attachment.span[0]:attachment.span[1]]


def test_disclaimer_on_base64_and_non_ascii_bodies():
    raw = message("Hi", body="Grüße aus Köln\n" * 30)      # EmailMessage picks 8bit/qp/base64
    view = view_of(raw)
    out = rewrite(raw, view, [edit("add_text", text="Vertraulich – nur für Empfänger.")])
    body = email.message_from_bytes(out, policy=policy.default).get_body(("plain",))
    assert body.get_content().rstrip().endswith("Vertraulich – nur für Empfänger.")
    assert "Grüße aus Köln" in body.get_content()


def test_disclaimer_on_a_utf16_body_sent_as_binary():
    # line breaks made on the bytes would cut UTF-16 code units in half: it goes to base64
    text = "Line one\nLine two\n".encode("utf-16-le")
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: binary"
           b"\r\n\r\n" + text + b"\r\n--b--\r\n")
    out = rewrite(raw, view_of(raw), [edit("add_text", text="Footer \u00e9t\u00e9.")])
    body = email.message_from_bytes(out, policy=policy.default).get_body(("plain",))
    content = body.get_content()
    assert "Line one\nLine two" in content and "Footer \u00e9t\u00e9." in content
    assert "\ufffd" not in content


def test_disclaimer_after_a_last_delimiter_with_nothing_after_it():
    # the message ends right after a delimiter (no CRLF, no closing "--"): the empty "part"
    # after it is no body to append to; a text part goes in front, the image stays intact
    image = (b"Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7\r\n")
    raw = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=\"==b==\"\r\n\r\n"
           b"--==b==\r\n" + image + b"\r\n--==b==")
    out = rewrite(raw, view_of(raw), [edit("add_text", text="Footer.")])
    parsed = email.message_from_bytes(out, policy=policy.default)
    plain = parsed.get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == "Footer."
    assert image in out and out.endswith(b"\r\n--==b==")


def test_disclaimer_single_part_plain_message():
    raw = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: s\r\n\r\nJust text.\r\n"
    out = rewrite(raw, view_of(raw), [edit("add_text", text="Footer.")])
    assert out.startswith(b"From: a@b.test\r\nTo: c@d.test\r\nSubject: s\r\n")
    assert out.endswith(b"Just text.\r\n\r\nFooter.\r\n")


def test_disclaimer_when_there_is_no_text_part_wraps_the_message():
    raw = (b"From: a@b.test\r\nSubject: s\r\nContent-Type: application/pdf; name=x.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n")
    out = rewrite(raw, view_of(raw), [edit("add_text", text="Footer.")])
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    kinds = [p.get_content_type() for p in parsed.iter_parts()]
    assert kinds == ["text/plain", "application/pdf"]
    assert next(parsed.iter_attachments()).get_content() == b"%PDF-1.4\n"


def test_removing_the_only_content_of_a_single_part_message():
    raw = (b"From: a@b.test\r\nSubject: s\r\nContent-Type: application/octet-stream; "
           b"name=a.exe\r\nContent-Transfer-Encoding: base64\r\n\r\nTVoAAA==\r\n")
    out = rewrite(raw, view_of(raw), [edit("remove_part", 0, "Removed.")])
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == "Removed."
    assert parsed["Subject"] == "s"


def test_archive_member_removal_removes_the_carrying_attachment():
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.exe", b"MZ")
    raw = message(attachments=[("a.zip", buf.getvalue()), ("keep.txt", b"keep", "text/plain")])
    view = view_of(raw)
    member = next(p for p in view.parts if p.filename == "x.exe")
    out = rewrite(raw, view, [edit("remove_part", member.carrier, "gone")])
    assert b"a.zip" not in out and b"keep.txt" in out


def test_forward_subject_and_prefix_and_header():
    raw = message("Original subject")
    view = view_of(raw)
    out = rewrite(raw, view, [], forward_subject="Forwarded: blocked")
    assert email.message_from_bytes(out)["Subject"] == "Forwarded: blocked"
    out = rewrite(raw, view, [edit("prefix_subject", text="[Spam]"),
                              edit("add_header", text="87", header="X-Bulk")])
    parsed = email.message_from_bytes(out)
    assert parsed["Subject"] == "[Spam] Original subject" and parsed["X-Bulk"] == "87"
    assert out.split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]      # body unchanged


def test_header_edits_go_into_a_header_not_ended_by_a_blank_line():
    # the body starts at the first line that is not a field (decompose/mime.py rule 4): the
    # marks go above it, and the missing blank line is put in, so every reader agrees
    for nl in (b"\r\n", b"\n"):
        raw = nl.join([b"From: a@outside.test", b"Subject: hi", b"Hello friend, buy now",
                       b"X-Looks-Like: a field", b""])
        view = view_of(raw)
        out = rewrite(raw, view, [edit("prefix_subject", text="[Spam]"),
                                  edit("add_header", text="100", header="X-Bulk"),
                                  edit("add_text", text="Disclaimer.")])
        head, body = out.split(nl + nl, 1)
        assert head == nl.join([b"From: a@outside.test", b"Subject: [Spam] hi",
                                b"X-Bulk: 100"])
        assert body.startswith(b"Hello friend, buy now" + nl + b"X-Looks-Like: a field" + nl)
        assert body.rstrip().endswith(b"Disclaimer.")
        parsed = email.message_from_bytes(out, policy=policy.default)
        assert parsed["X-Bulk"] == "100" and parsed["X-Looks-Like"] is None
        assert not parsed.defects


def test_the_gateways_header_replaces_one_the_sender_put_in():
    raw = b"From: a@outside.test\r\nX-Bulk: 0\r\nSubject: hi\r\nX-BULK: 1\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("add_header", text="100", header="X-Bulk")])
    assert email.message_from_bytes(out).get_all("X-Bulk") == ["100"]


def test_a_header_edit_without_a_value_removes_the_field_and_never_the_gateways():
    raw = b"From: a@outside.test\r\nX-Bulk: 0\r\nSubject: hi\r\nX-BULK : 1\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("add_header", header="X-Bulk")])
    assert out == b"From: a@outside.test\r\nSubject: hi\r\n\r\nbody\r\n"
    for edits in ([edit("add_header", text="100", header="X-Bulk"),
                   edit("add_header", header="X-Bulk")],
                  [edit("add_header", header="X-Bulk"),
                   edit("add_header", text="100", header="X-Bulk")]):
        out = rewrite(raw, view_of(raw), edits)
        assert email.message_from_bytes(out).get_all("X-Bulk") == ["100"]


def test_a_subject_is_prefixed_once_with_one_space():
    raw = b"Subject: [Spam] hi\r\nTo: user@local.test\r\n\r\nbody\r\n"
    assert rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")]) == raw
    raw = b"Subject: hi\r\nTo: user@local.test\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam] ")])
    assert out.startswith(b"Subject: [Spam] hi\r\n")


def test_prefix_keeps_the_subject_bytes_as_received():
    # raw Latin-1 (no charset declared anywhere), folded: decoding it would make U+FFFD
    raw = b"From: a@outside.test\r\nSubject: Le sondage avant les \xe9lections\r\n 2002 !\r\n" \
          b"To: user@local.test\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
    assert b"Subject: [Spam] Le sondage avant les \xe9lections\r\n 2002 !\r\n" in out
    assert out.replace(b"[Spam] ", b"", 1) == raw
    # an encoded word stays one; a non-ASCII prefix stays apart from it when decoded
    raw = b"Subject: =?iso-8859-1?q?caf=E9?=\r\nTo: user@local.test\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
    assert out.startswith(b"Subject: [Spam] =?iso-8859-1?q?caf=E9?=\r\n")
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Pourriel \u00e9]")])
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert parsed["Subject"] == "[Pourriel \u00e9] caf\u00e9"
    # a value that starts on a continuation line: the fold is the space
    raw = b"Subject:\r\n =?utf-8?q?caf=C3=A9?=\r\nTo: user@local.test\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
    assert out.startswith(b"Subject: [Spam]\r\n =?utf-8?q?caf=C3=A9?=\r\n")
    assert email.message_from_bytes(out, policy=policy.default)["Subject"] == "[Spam] caf\u00e9"
    # no Subject, or an empty one: the prefix is the Subject
    for raw in (b"To: user@local.test\r\n\r\nbody\r\n",
                b"Subject:  \r\nTo: user@local.test\r\n\r\nbody\r\n"):
        out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
        assert email.message_from_bytes(out)["Subject"] == "[Spam]"


def test_a_prefix_that_would_make_the_line_too_long_folds_it():
    """A 998-octet Subject line was accepted; with "[Spam] " in front of it on the same line,
    a next hop (this gateway too) refuses the message (RFC 5322 §2.1.1)."""
    value = b"x" * (998 - len(b"Subject: "))
    raw = b"Subject: " + value + b"\r\nTo: user@local.test\r\n\r\nbody\r\n"
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
    assert max(len(line) for line in out.split(b"\r\n")) <= 998
    assert out.startswith(b"Subject: [Spam]\r\n " + value + b"\r\n")
    assert email.message_from_bytes(out, policy=policy.default)["Subject"] == \
        "[Spam] " + value.decode()


def test_a_field_ending_in_a_bare_cr_keeps_the_fields_below_it_in_the_header():
    """The relay turns a bare CR into CRLF; a CRLF added after it made a blank line there,
    and the fields below it — the gateway's X-Bulk among them — became body text."""
    raw = (b"From: a@outside.test\r\nX-Note: one\rSubject: hi\r\nTo: user@local.test\r\n"
           b"\r\nbody\r\n")
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]"),
                                      edit("add_header", text="99", header="X-Bulk")])
    relayed = out.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    parsed = email.message_from_bytes(relayed, policy=policy.default)
    assert parsed["X-Note"] == "one" and parsed["Subject"] == "[Spam] hi"
    assert parsed["X-Bulk"] == "99" and parsed.get_content().strip() == "body"


def test_a_non_ascii_prefix_is_recognised_when_already_there():
    raw = b"Subject: hi\r\nTo: user@local.test\r\n\r\nbody\r\n"
    once = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Sp\u00e4m]")])
    assert rewrite(once, view_of(once), [edit("prefix_subject", text="[Sp\u00e4m]")]) == once


def test_replace_part_for_antivirus_repair():
    raw = message(attachments=[("doc.bin", b"infected bytes")])
    view = view_of(raw)
    target = next(p for p in view.parts if p.filename == "doc.bin")
    out = rewrite(raw, view, [edit("replace_part", target.id, data={"content": b"clean"})])
    parsed = email.message_from_bytes(out, policy=policy.default)
    assert next(parsed.iter_attachments()).get_content() == b"clean"


def test_nothing_to_do_returns_the_same_bytes():
    raw = message()
    assert rewrite(raw, view_of(raw), []) is raw


def test_a_prefixed_message_keeps_only_its_first_subject_field():
    """docs/antispam.md (tester29a A4): a second Subject field left as it was would show the
    spam unmarked in a reader that shows the later one; the prefixed first one stays."""
    raw = (b"From: a@b.test\r\nSubject: first\r\nTo: c@d.test\r\nSubject: second\r\n\r\n"
           b"body\r\n")
    out = rewrite(raw, view_of(raw), [edit("prefix_subject", text="[Spam]")])
    assert out == (b"From: a@b.test\r\nSubject: [Spam] first\r\nTo: c@d.test\r\n\r\n"
                   b"body\r\n")
