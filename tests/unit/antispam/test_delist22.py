"""The de-listed reading (core/scan/antispam/delist.py; docs/antispam-model.md, "The de-listed
reading"): a message a mailing list relayed is read as the list received it, so the list's
headers, hops, Subject tag and footer — evidence about the list, which relays ham three times
in four in the training corpus — no longer offset a relayed spam's own evidence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam.delist import list_received
from core.scan.antispam.engine import HeuristicEngine, readings
from core.scan.antispam.training import view_of
from tests.unit.antispam.test_padding import SPAM

# the padding test's spam, as its author's server sent it
AUTHOR = (b"Received: from [203.0.113.9] by mail.spammer.test with SMTP; "
          b"Tue, 20 Aug 2002 03:14:15 -0500\n" + SPAM)

LIST_HEADERS = b"""\
Return-Path: <fork-admin@xent.com>
Delivered-To: yyyy@localhost.example.com
Received: from xent.com (xent.com [64.161.22.236]) by mail.example.com (Postfix)
\twith ESMTP id 1A2B3C for <yyyy@example.com>; Tue, 20 Aug 2002 10:00:00 +0100
Received: from lair.xent.com (localhost [127.0.0.1]) by xent.com (Postfix)
\twith ESMTP id 0D1E2F; Tue, 20 Aug 2002 02:00:00 -0700
X-Authentication-Warning: lair.xent.com: majordomo set sender to fork-admin@xent.com
Received: from mail.spammer.test (mail.spammer.test [203.0.113.9]) by xent.com (Postfix)
\twith SMTP id 9F8E7D for <fork@xent.com>; Tue, 20 Aug 2002 01:59:00 -0700
Sender: fork-admin@xent.com
Errors-To: fork-admin@xent.com
X-BeenThere: fork@xent.com
X-Mailman-Version: 2.0.11
Precedence: bulk
List-Help: <mailto:fork-request@xent.com?subject=help>
List-Post: <mailto:fork@xent.com>
List-Subscribe: <http://xent.com/mailman/listinfo/fork>, <mailto:fork-request@xent.com>
List-Id: Friends of Rohit Khare <fork.xent.com>
List-Unsubscribe: <http://xent.com/mailman/listinfo/fork>
List-Archive: <http://xent.com/pipermail/fork/>
"""

FOOTER = b"""\
_______________________________________________
Fork mailing list
http://xent.com/mailman/listinfo/fork
"""


def relayed(subject_tag: bytes = b"[FoRK] ") -> bytes:
    head, _, body = AUTHOR.partition(b"\n\n")
    head = head.replace(b"Subject: ", b"Subject: " + subject_tag)
    return LIST_HEADERS + head + b"\n\n" + body + b"\n" + FOOTER


def delisted(message: bytes) -> bytes | None:
    """The message as the list received it (no MIME boundaries: test_delist23 has those)."""
    return list_received(message)


def test_a_relayed_message_is_read_as_the_list_received_it():
    read = delisted(relayed())
    head, _, body = read.partition(b"\n\n")
    names = [line.split(b":")[0].lower() for line in head.split(b"\n") if line[:1] not in b" \t"]
    # the list's fields go; the list's own receiving hop and the author's hop stay, and so
    # do the final delivery's fields, which every message has (review23a R4)
    assert not {b"sender", b"errors-to", b"x-beenthere", b"x-mailman-version", b"precedence",
                b"list-id", b"list-post", b"x-authentication-warning"} & set(names)
    assert {b"return-path", b"delivered-to"} <= set(names)
    assert names.count(b"received") == 2
    assert b"for <fork@xent.com>" in head and b"by mail.example.com" not in head
    assert b"\nSubject: Make $5000 a WEEK working from HOME!!!\n" in b"\n" + head + b"\n"
    assert body.rstrip(b"\n").endswith(b"the new email bill. Section 301.")
    assert b"listinfo" not in body and b"____" not in body


def test_what_a_list_did_not_relay_is_read_as_it_came():
    assert delisted(AUTHOR) is None
    # a newsletter's own list manager is its sender, not a relay
    newsletter = b"List-Unsubscribe: <mailto:leave@shop.test>\n" + AUTHOR
    assert delisted(newsletter) is None


@pytest.mark.parametrize("subject, expected", [
    (b"[FoRK] Make money", b"Subject: Make money"),
    (b"Re: [ILUG] Make money", b"Subject: Re: Make money"),
    (b"[a tag of more than forty characters is not a list's tag] x",
     b"Subject: [a tag of more than forty characters is not a list's tag] x"),
    (b"Make [money] fast", b"Subject: Make [money] fast"),
])
def test_only_the_subjects_first_list_tag_goes(subject, expected):
    message = b"X-BeenThere: fork@xent.com\nSubject: " + subject + b"\n\nHello\n"
    assert expected + b"\n" in delisted(message)


def test_a_footer_is_cut_only_near_the_end():
    early = AUTHOR + b"\nsee http://xent.com/mailman/listinfo/fork\n" + b"x " * 1000 + b"\n"
    message = b"X-BeenThere: fork@xent.com\n" + early
    assert delisted(message).endswith(b"x " * 1000 + b"\n")    # kept: far from the end


def test_read_de_listed_list_headers_and_a_footer_do_not_lower_a_spams_score():
    # the shipped weights (rev 6 on, trained as mail came), read both ways
    shipped = defs.load(defs.PACKAGED_DIR)
    for definitions, cost in ((replace(shipped, delisted=True), lambda c: c < 0.25),
                              (replace(shipped, delisted=False), lambda c: c > 1.0)):
        engine = HeuristicEngine(definitions)
        alone, listed = engine.score(view_of(AUTHOR)), engine.score(view_of(relayed()))
        # raw scores: both are far above score 100's
        assert cost(alone.raw - listed.raw), (definitions.delisted, alone.raw, listed.raw)
        assert any(f.startswith("H:list-id:") for f in listed.found) is not definitions.delisted


def test_a_set_that_does_not_say_so_reads_the_message_as_it_came(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    rules = json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text())
    for reads_delisted in (False, True):
        defs.write(tmp_path / str(reads_delisted), version="2030-01-02", revision=9,
                   rules_json=rules, bias=packaged.bias, weights=packaged.weights,
                   z90=packaged.z90, info={}, windows=packaged.windows,
                   delisted=reads_delisted)
        loaded = defs.load(tmp_path / str(reads_delisted))
        assert loaded.delisted is reads_delisted
        view = view_of(relayed())
        read = readings(view, loaded)
        assert read[-1] is view and len(read) == 1 + reads_delisted
        assert (read[0].header("List-Id") is None) is reads_delisted


# What a sender writes in a field it controls, shaped for each pattern's worst case: each took
# from seconds to centuries (the Subject's "Re:" run, exponential) with the first patterns,
# and must take milliseconds; no time is measured — a regression hangs this test.
HOSTILE = {
    "an address without an end": b"X-BeenThere: " + b"a@" * 50_000 + b"\n",
    "a run without an @": b"X-BeenThere: " + b"a" * 100_000 + b"\n",
    "owner- starts": b"X-BeenThere: a@b\nSender: " + b"<owner-" * 15_000 + b"\n",
    "list id starts": b"List-Id: " + b"<a" * 50_000 + b"\n",
    "Re: runs": b"X-BeenThere: a@b\nSubject: " + b"re:   " * 40 + b"x\n",
    "a field of many lines": b"X-BeenThere: a@b\nSubject: a\n" + b" b\n" * 50_000,
    "many list names": b"".join(b"X-BeenThere: f%d@x\n" % i for i in range(5_000)),
}


@pytest.mark.parametrize("head", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_header_costs_time_linear_in_its_length(head):
    read = delisted(head + b"\nbody\n")
    assert read is not None and read.endswith(b"\n\nbody\n")


def test_a_long_body_is_not_split_whole_to_find_its_footer():
    # review22a R2: the whole body split into lines took some 26 times its size, so a
    # sender-written X-BeenThere put a large message of short lines over the worker's
    # memory limit; only the last FOOTER_OCTETS are searched
    import tracemalloc
    body = b"x\n" * 1_000_000
    message = b"X-BeenThere: fork@xent.com\n\n" + body + FOOTER
    tracemalloc.start()
    try:
        read = delisted(message)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read.endswith(body) and peak < 8 * len(message)      # a few copies; was 70
