"""The guarded de-listed reading (core/scan/antispam/delist.py rules 2, 5-9; docs/
antispam-model.md, "The guarded de-listed reading"): the mends of what review22a and review23a
found — nothing a sender adds lowers a score below the message as it came, a footer in a MIME
part of its own goes with its part, quoted text is no footer, the header ends where the
decomposer ends it, and no sender's header makes a large message be decomposed again."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.antispam_attacks import ATTACKS, footer_trick, forged_hop
from core.scan.antispam import definitions as defs
from core.scan.antispam.delist import DELISTED_KEY, FOOTER_LINES, MAX_OCTETS
from core.scan.antispam.engine import HeuristicEngine, features, raw_of, readings
from core.scan.antispam.learner import Weights
from core.scan.antispam.training import Sample, view_of
from tests.unit.antispam.test_delist22 import AUTHOR, FOOTER, LIST_HEADERS

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
import train_spam_model as trainer                                 # noqa: E402

MAILMAN_PART = b"""\
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: inline

""" + FOOTER


def delisted_set():
    """The shipped weights, read de-listed (the reading's effect, not a trained set's)."""
    return replace(defs.load(defs.PACKAGED_DIR), delisted=True)


def as_the_list_received(message: bytes) -> bytes:
    """The de-listed reading's bytes, as the engine makes them (boundaries from its view)."""
    read = readings(view_of(message), delisted_set())
    assert len(read) == 2, "not read as relayed"
    return read[0].raw


def mailman_multipart(content_type: bytes, boundary: bytes) -> bytes:
    """A message as Mailman relays multipart mail: the footer a MIME part of its own."""
    return (b"X-BeenThere: fork@xent.com\nList-Id: <fork.xent.com>\nSubject: hello\n"
            b"MIME-Version: 1.0\nContent-Type: " + content_type + b"\n\n--" + boundary
            + b"\nContent-Type: text/plain\n\nThe author's words.\n--" + boundary + b"\n"
            + MAILMAN_PART + b"\n--" + boundary + b"--\n")


LONG = b"=" * 10 + b"x" * 70
SHAPES = {
    "long": (b'multipart/mixed; boundary="===============0123456789=="',
             b"===============0123456789=="),
    "short": (b'multipart/mixed; boundary="BB"', b"BB"),
    # review23a R2: shapes a second boundary parser missed and the decomposer reads
    "over 70 characters": (b'multipart/mixed; boundary="' + LONG + b'"', LONG),
    "folded after =": (b'multipart/mixed; boundary=\n\t"xx-folded"', b"xx-folded"),
}


@pytest.mark.parametrize("content_type, boundary", SHAPES.values(), ids=SHAPES.keys())
def test_a_footer_part_of_its_own_goes_whole_and_leaves_no_defect(content_type, boundary):
    # review22a R3: cut from its separator, the part lost the blank line after its header
    # (and an unrecognised boundary lost its closing delimiter): a defect the model weighs
    # towards spam, which the message does not have
    message = mailman_multipart(content_type, boundary)
    assert view_of(message).defects == []
    read = as_the_list_received(message)
    assert b"listinfo" not in read and b"Content-Disposition: inline" not in read
    assert read.endswith(b"The author's words.\n--" + boundary + b"--\n")
    assert view_of(read).defects == []
    assert [p.text.strip() for p in view_of(read).text_parts()] == ["The author's words."]


def test_a_footer_after_the_closing_delimiter_keeps_the_delimiter():
    # Mailman appends to the epilogue of a signed message
    message = (b"X-BeenThere: exmh@redhat.com\nContent-Type: multipart/signed; "
               b"boundary=\"==_Exmh_1\"\n\n--==_Exmh_1\nContent-Type: text/plain\n\nwords\n"
               b"--==_Exmh_1\nContent-Type: application/pgp-signature\n\nSIG\n"
               b"--==_Exmh_1--\n\n_______________________________________________\n"
               b"Exmh mailing list\nexmh@redhat.com\n")
    read = as_the_list_received(message)
    assert read.endswith(b"SIG\n--==_Exmh_1--\n\n") and view_of(read).defects == []


def test_a_footer_inside_the_last_text_part_goes_up_to_the_delimiter():
    message = (b"X-BeenThere: fork@xent.com\nContent-Type: multipart/alternative; "
               b"boundary=xyz\n\n--xyz\nContent-Type: text/plain\n\nwords\n" + FOOTER
               + b"--xyz--\nepilogue\n")
    read = as_the_list_received(message)
    assert read.endswith(b"\n\nwords\n--xyz--\nepilogue\n") and view_of(read).defects == []


def test_quoted_text_naming_the_list_is_no_footer():
    # review23a R1: the first line naming the list was taken for the footer's start, and
    # the quoted or forwarded text after it went with the footer
    quoted = b"".join(b"> quoted line %d of the earlier message\n" % i for i in range(10))
    message = (b"X-BeenThere: fork@xent.com\nSubject: Re: hi\n\nI agree.\n"
               b"> To: fork@xent.com\n" + quoted + b"\nMy answer.\n" + FOOTER)
    read = as_the_list_received(message)
    assert read.endswith(b"> To: fork@xent.com\n" + quoted + b"\nMy answer.\n")


def test_the_header_ends_where_the_decomposer_ends_it():
    # review22a D3: without a blank line the decomposer reads from the first line that is no
    # field as text; rev 7's reading took a "List-" line there, and its indented lines, for a
    # field of the list's and dropped them
    message = (b"X-BeenThere: fork@xent.com\nSubject: hi\nThis is text\n"
               b"List-Secret: buy now\n  cheap pills\n")
    body = b"".join(p.data for p in view_of(message).text_parts())
    assert b"cheap pills" in body
    read = as_the_list_received(message)
    assert read.endswith(b"Subject: hi\nThis is text\nList-Secret: buy now\n  cheap pills\n")


def _raw(view, definitions) -> float:
    text_parts: list = []
    found, _ = features(view, definitions, text_parts)
    return raw_of(found, text_parts, definitions)


@pytest.mark.parametrize("attack", ATTACKS.values(),
                         ids=ATTACKS.keys())
def test_nothing_a_sender_adds_lowers_a_score_below_the_message_as_it_came(attack):
    # review22a R1 (a "footer" line), the forged hop, review23a R3 (a list field alone took
    # Return-Path off): the same weights, read de-listed and read as the message came
    definitions = delisted_set()
    attacked = attack(AUTHOR)
    as_it_came = HeuristicEngine(replace(definitions, delisted=False)).score(view_of(attacked))
    guarded = HeuristicEngine(definitions).score(view_of(attacked))
    assert guarded.raw >= as_it_came.raw
    cut = readings(view_of(attacked), definitions)[0]
    assert cut.raw != attacked          # read as relayed: the guard is what decides


def test_a_footer_is_no_more_than_a_few_lines_at_the_end_of_its_part():
    # review22a R1: rev 7 took everything from the naming line to the end, up to 1,500 bytes
    tricked = footer_trick(AUTHOR)
    assert as_the_list_received(tricked).endswith(AUTHOR.partition(b"\n\n")[2])
    for after in (FOOTER_LINES - 1, FOOTER_LINES):      # non-blank lines after the naming one
        tail = b"".join(b"more words %d\n\n" % i for i in range(after))
        message = (b"List-Id: <deals.example.com>\n" + AUTHOR + b"\nQuestions? deals@example.com\n"
                   + tail)
        read = as_the_list_received(message)
        assert (b"Questions?" not in read) is (after < FOOTER_LINES), after
        assert read.startswith(message[:message.index(b"Questions?")].replace(
            b"List-Id: <deals.example.com>\n", b""))


def test_a_list_message_is_scored_on_the_larger_of_its_two_readings():
    definitions = delisted_set()
    for message in (LIST_HEADERS + AUTHOR + b"\n" + FOOTER, forged_hop(AUTHOR)):
        cut, as_it_came = readings(view_of(message), definitions)
        assert as_it_came.raw == message
        assert HeuristicEngine(definitions).score(view_of(message)).raw == max(
            _raw(cut, definitions), _raw(as_it_came, definitions))


def test_the_training_scores_a_relayed_message_as_the_engine_does(tmp_path):
    # review23a T1: the learner's cross-validations score what the engine will
    definitions = delisted_set()
    path = tmp_path / "relayed.eml"
    path.write_bytes(LIST_HEADERS + AUTHOR + b"\n" + FOOTER)
    data, _, read = trainer.extract([Sample(path, "spam", "spam", "train")], definitions.rules,
                                    windows=definitions.windows, delisted=True)
    assert len(read[0]) == 2
    weights = Weights(definitions.bias, definitions.weights)
    assert trainer.raw_of_readings(weights, read[0], definitions.windows) == pytest.approx(
        HeuristicEngine(definitions).score(view_of(path.read_bytes())).raw, abs=1e-9)


def test_gtube_in_a_footer_still_forces_the_score():
    gtube = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    message = (b"X-BeenThere: fork@xent.com\nSubject: hi\n\nhello\n" + FOOTER + gtube + b"\n")
    assert gtube not in as_the_list_received(message)
    scored = HeuristicEngine(delisted_set()).score(view_of(message))
    assert scored.score == 100 and scored.forced_by in scored.rules


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


@pytest.mark.parametrize("earlier", ["delisted", "delisted2"])
def test_a_set_read_by_earlier_rules_is_refused(tmp_path, earlier):
    packaged = defs.load(defs.PACKAGED_DIR)
    rules = json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text())
    defs.write(tmp_path, version="2030-01-02", revision=9, rules_json=rules,
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={},
               windows=packaged.windows, delisted=True)
    model_path = tmp_path / defs.MODEL_FILE
    model = json.loads(gzip.decompress(model_path.read_bytes()))
    assert model["scoring"][DELISTED_KEY] is True and DELISTED_KEY != earlier
    assert defs.load(tmp_path).delisted
    model["scoring"] = {earlier: True, "windows": model["scoring"]["windows"]}
    model_path.write_bytes(gzip.compress(json.dumps(model).encode()))
    manifest = json.loads((tmp_path / defs.MANIFEST_FILE).read_text())
    manifest["files"][defs.MODEL_FILE] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    (tmp_path / defs.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(defs.DefinitionsError, match=f"scoring {earlier} is unknown"):
        defs.load(tmp_path)
