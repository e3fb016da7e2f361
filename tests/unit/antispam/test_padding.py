"""Padding: text appended or prepended to a spam must not carry it below score 90 (exploratory
test, findings 12, A1). With the plain sum of the weights (definitions rev 1-5), a few hundred
ordinary words, most of them weighing a little towards ham in this corpus, outvoted a spam's
clues: this spam fell from 100 to 1. Rev 6 reads the text in windows (core/scan/antispam/
windows.py; docs/antispam-model.md, "Windowed scoring"), so the padding takes only what
shares its windows.

The padding is Python's own documentation (pydoc_data, in every Python install): plain
technical English found in no corpus message, reading much like the corpus' ham."""

from __future__ import annotations

import textwrap

from pydoc_data.topics import topics

from core.scan.antispam import definitions as defs
from core.scan.antispam.engine import HeuristicEngine
from core.scan.antispam.training import view_of

SPAM = b"""\
From: "Financial Freedom" <success4u@hotmail.com>
To: friend@public.com
Subject: Make $5000 a WEEK working from HOME!!!
Date: Tue, 20 Aug 2002 03:14:15 -0500
MIME-Version: 1.0
Content-Type: text/plain; charset="us-ascii"
X-Mailer: Microsoft Outlook Express 6.00.2600.0000

Dear Friend,

You have been selected to receive this EXCLUSIVE offer! Make $5000 a week
working from home with our PROVEN system. No experience needed, no selling,
no risk. Thousands of people just like you are already earning cash.

ACT NOW! This is a limited time offer. Click below to order your FREE
information package today:

http://www.cash-from-home-now.biz/order.html

100% GUARANTEED or your money back!

To be removed from our mailing list, reply with REMOVE in the subject line.
This message is sent in compliance with the new email bill. Section 301.
"""


def _text(words: int, skip: int = 0) -> bytes:
    every = " ".join(topics[name] for name in sorted(topics)).split()
    return "\n".join(textwrap.wrap(" ".join(every[skip:skip + words]), 72)).encode()


def _padded(before: bytes, after: bytes) -> bytes:
    head, _, body = SPAM.partition(b"\n\n")
    return head + b"\n\n" + before + b"\n\n" + body + b"\n\n" + after + b"\n"


def test_the_spam_scores_spam_as_it_is():
    engine = HeuristicEngine(defs.load(defs.PACKAGED_DIR))
    assert engine.score(view_of(SPAM)).score >= 90


def test_a_spam_stays_spam_with_2500_words_of_ordinary_text_around_it():
    engine = HeuristicEngine(defs.load(defs.PACKAGED_DIR))
    for before, after in ((2500, 0), (0, 2500), (2500, 2500)):
        padded = _padded(_text(before), _text(after, skip=2500))
        assert engine.score(view_of(padded)).score >= 90, (before, after)
