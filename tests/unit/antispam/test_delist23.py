"""The guarded de-listed reading (core/scan/antispam/delist.py rules 5-9; docs/antispam-model.md,
"The guarded de-listed reading"): the mends of what review22a found in rev 7's reading — a
sender's "footer" or forged list hop cannot lower a score below the reading that keeps them,
a footer in a MIME part of its own goes with its part, the header ends where the decomposer
ends it, and no sender's header makes a large message be decomposed again."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import replace

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam.delist import DELISTED_KEY, FOOTER_OCTETS, MAX_OCTETS, list_readings
from core.scan.antispam.engine import HeuristicEngine, features, raw_of, readings
from core.scan.antispam.training import view_of
from tests.unit.antispam.test_delist22 import AUTHOR, FOOTER, LIST_HEADERS

MAILMAN_PART = b"""\
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: inline

""" + FOOTER


def mailman_multipart(boundary: bytes) -> bytes:
    """A message as Mailman relays multipart mail: the footer a MIME part of its own."""
    return (b"X-BeenThere: fork@xent.com\nList-Id: <fork.xent.com>\nSubject: hello\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"" + boundary
            + b"\"\n\n--" + boundary + b"\nContent-Type: text/plain\n\nThe author's words.\n"
            b"--" + boundary + b"\n" + MAILMAN_PART + b"\n--" + boundary + b"--\n")


def defects_of(message: bytes) -> list[str]:
    return view_of(message).defects


@pytest.mark.parametrize("boundary", [b"===============0123456789==", b"BB"])
def test_a_footer_part_of_its_own_goes_whole_and_leaves_no_defect(boundary):
    # review22a R3: cut from its separator, the part lost the blank line after its header
    # (and a boundary of ten characters or fewer lost its closing delimiter): a defect the
    # model weighs towards spam, which the message does not have
    message = mailman_multipart(boundary)
    assert defects_of(message) == []
    read, _ = list_readings(message)
    assert b"listinfo" not in read and b"Content-Disposition: inline" not in read
    assert read.endswith(b"The author's words.\n--" + boundary + b"--\n")
    assert defects_of(read) == []
    assert [p.text.strip() for p in view_of(read).text_parts()] == ["The author's words."]


def test_a_footer_after_the_closing_delimiter_keeps_the_delimiter():
    # Mailman appends to the epilogue of a signed message
    message = (b"X-BeenThere: exmh@redhat.com\nContent-Type: multipart/signed; "
               b"boundary=\"==_Exmh_1\"\n\n--==_Exmh_1\nContent-Type: text/plain\n\nwords\n"
               b"--==_Exmh_1\nContent-Type: application/pgp-signature\n\nSIG\n"
               b"--==_Exmh_1--\n\n_______________________________________________\n"
               b"Exmh mailing list\nexmh@redhat.com\n")
    read, _ = list_readings(message)
    assert read.endswith(b"SIG\n--==_Exmh_1--\n\n") and defects_of(read) == []


def test_a_footer_inside_the_last_text_part_goes_up_to_the_delimiter():
    message = (b"X-BeenThere: fork@xent.com\nContent-Type: multipart/alternative; "
               b"boundary=xyz\n\n--xyz\nContent-Type: text/plain\n\nwords\n" + FOOTER
               + b"--xyz--\nepilogue\n")
    read, _ = list_readings(message)
    assert read.endswith(b"\n\nwords\n--xyz--\nepilogue\n") and defects_of(read) == []


def test_the_header_ends_where_the_decomposer_ends_it():
    # review22a D3: without a blank line the decomposer reads from the first line that is no
    # field as text; rev 7's reading took a "List-" line there, and its indented lines, for a
    # field of the list's and dropped them
    message = (b"X-BeenThere: fork@xent.com\nSubject: hi\nThis is text\n"
               b"List-Secret: buy now\n  cheap pills\n")
    body = b"".join(p.data for p in view_of(message).text_parts())
    assert b"cheap pills" in body
    for read in list_readings(message):
        assert read.endswith(b"Subject: hi\nThis is text\nList-Secret: buy now\n  cheap pills\n")


def footer_trick(message: bytes) -> bytes:
    """review22a's R1 probe: a List-Id, and a line naming the "list" where the body's last
    FOOTER_OCTETS begin."""
    head, _, body = message.partition(b"\n\n")
    at = max(0, len(body) - FOOTER_OCTETS + 40)
    at = body.find(b"\n", at) + 1 if at else 0
    return (b"List-Id: <deals.example.com>\n" + head + b"\n\n" + body[:at]
            + b"Questions? deals@example.com\n" + body[at:])


def delisted_set():
    """The shipped weights, read de-listed (the reading's effect, not a trained set's)."""
    return replace(defs.load(defs.PACKAGED_DIR), delisted=True)


def test_a_sender_cannot_hide_a_spams_text_as_a_footer():
    # review22a R1: rev 7 cut from the naming line to the end — all of this spam's text
    definitions = delisted_set()
    engine = HeuristicEngine(definitions)
    tricked = footer_trick(AUTHOR)
    cut, kept = readings(view_of(tricked), definitions)
    assert b"Make money" not in b"".join(p.data for p in cut.text_parts())
    cut_raw = raw_of(*_read(cut, definitions), definitions)
    alone = engine.score(view_of(AUTHOR))
    assert cut_raw < alone.raw - 3              # the cut alone would hide it (as rev 7 did)
    assert engine.score(view_of(tricked)).raw >= alone.raw - 0.5


def _read(view, definitions):
    text_parts: list = []
    found, _ = features(view, definitions, text_parts)
    return found, text_parts


FORGED_HOP = (b"Received: from relay.example.org (relay.example.org [192.0.2.7]) by\n"
              b"    lists.example.org (Postfix) with ESMTP id 4F2A1B3C for\n"
              b"    <news@lists.example.org>; Mon, 5 Aug 2002 10:00:00 +0100\n")


def test_a_forged_list_hop_takes_no_real_hop_from_the_score():
    definitions = delisted_set()
    forged = (b"Received: from [203.0.113.9] by mx.example.com with SMTP for "
              b"<you@example.com>; Tue, 20 Aug 2002 03:14:15 -0500\n" + FORGED_HOP
              + b"List-Id: <news.lists.example.org>\n" + AUTHOR)
    cut, kept = readings(view_of(forged), definitions)
    assert cut.header("Received").startswith("from relay.example.org")     # the real hop gone
    assert [v for n, v in kept.headers if n.lower() == "received"][0].startswith(
        "from [203.0.113.9] by mx.example.com")
    scored = HeuristicEngine(definitions).score(view_of(forged))
    assert scored.raw == max(raw_of(*_read(one, definitions), definitions)
                             for one in (cut, kept))


def test_a_list_message_is_scored_on_the_larger_of_its_two_readings():
    definitions = delisted_set()
    message = LIST_HEADERS + AUTHOR + b"\n" + FOOTER
    cut, kept = readings(view_of(message), definitions)
    raws = [raw_of(*_read(one, definitions), definitions) for one in (cut, kept)]
    assert HeuristicEngine(definitions).score(view_of(message)).raw == max(raws)
    assert b"listinfo" in b"".join(p.data for p in kept.text_parts())
    assert b"listinfo" not in b"".join(p.data for p in cut.text_parts())


def test_gtube_in_a_footer_still_forces_the_score():
    gtube = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    message = (b"X-BeenThere: fork@xent.com\nSubject: hi\n\nhello\n" + FOOTER + gtube + b"\n")
    cut, _ = list_readings(message)
    assert gtube not in cut
    assert HeuristicEngine(delisted_set()).score(view_of(message)).score == 100


def test_a_large_message_or_one_past_a_limit_is_read_as_it_came():
    # review22a R4: a sender's X-BeenThere made the engine decompose a large message twice
    definitions = delisted_set()
    large = b"X-BeenThere: fork@xent.com\nSubject: hi\n\n" + b"words words\n" * (
        MAX_OCTETS // 12) + FOOTER
    view = view_of(large)
    assert view.size > MAX_OCTETS and readings(view, definitions) == (view,)
    small = view_of(LIST_HEADERS + AUTHOR)
    assert len(readings(small, definitions)) == 2
    small.limit_hit = "container.max_files"
    assert readings(small, definitions) == (small,)


def test_a_set_read_by_rev_7s_rules_is_refused(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    rules = json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text())
    defs.write(tmp_path, version="2030-01-02", revision=9, rules_json=rules,
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={},
               windows=packaged.windows, delisted=True)
    model_path = tmp_path / defs.MODEL_FILE
    model = json.loads(gzip.decompress(model_path.read_bytes()))
    assert model["scoring"][DELISTED_KEY] is True and DELISTED_KEY != "delisted"
    assert defs.load(tmp_path).delisted
    model["scoring"] = {"delisted": True, "windows": model["scoring"]["windows"]}
    model_path.write_bytes(gzip.compress(json.dumps(model).encode()))
    manifest = json.loads((tmp_path / defs.MANIFEST_FILE).read_text())
    manifest["files"][defs.MODEL_FILE] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    (tmp_path / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(defs.DefinitionsError, match="scoring delisted is unknown"):
        defs.load(tmp_path)
