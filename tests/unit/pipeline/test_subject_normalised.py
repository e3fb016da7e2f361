"""Subject lines read the Subject as content rules do (tester "policy", B3): full-width
letters, soft hyphens, zero-width spaces, direction controls and Cyrillic look-alikes in a
Latin word do not get a blocked subject past `subject.lines`."""

from __future__ import annotations

import base64

import pytest

from core.pipeline.checks.subject import matching_line
from tests.unit.pipeline.support import message, verdict_of

DISGUISED_HOT_DEALS = [
    "\uff48\uff4f\uff54 deal",      # full-width "ｈｏｔ"
    "h\u00adot deal",               # soft hyphen
    "h\u200bot deal",               # zero-width space
    "h\u043et deal",                # Cyrillic о
    "h\u202eot deal",               # right-to-left override
    "h\u200dot\u00a0\u00a0deal",    # zero-width joiner, no-break spaces
]


def encoded(subject: str) -> bytes:
    """A message whose Subject is `subject` as one UTF-8 encoded word (RFC 2047)."""
    word = "=?utf-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    return message("x").replace(b"Subject: x", b"Subject: " + word.encode())


@pytest.mark.parametrize("subject", DISGUISED_HOT_DEALS)
def test_disguised_subject_is_blocked(subject):
    _, findings, verdict = verdict_of(encoded(subject), subject__enabled=True,
                                      subject__lines=["*hot*"])
    assert (verdict.disposition, verdict.rule) == ("drop", "subject.lines")
    # the event shows the subject as sent, not as it was compared
    assert findings[0].data["subject"] == subject


@pytest.mark.parametrize("subject", DISGUISED_HOT_DEALS)
def test_subject_line_and_content_rule_agree(subject):
    rule = {"enabled": True, "match": "any", "terms": ["hot deal"], "none_of": []}
    by_rule = verdict_of(encoded(subject), rules__content=[rule], rules__body_scanning=False)
    by_line = verdict_of(encoded(subject), subject__enabled=True, subject__lines=["hot deal"])
    assert by_rule[2].disposition == by_line[2].disposition == "drop"


@pytest.mark.parametrize("line", ["\uff48\uff4f\uff54 deal", "h\u200bot  deal", "h\u043et deal"])
def test_line_is_read_like_the_subject(line):
    # a line pasted from a disguised subject blocks the plain one, and the finding names it
    assert matching_line([line], "Hot deal") == line


@pytest.mark.parametrize("pattern,subject,blocked", [
    ("hot", "\uff48\uff4f\uff54 deal", False),          # still the whole subject
    ("hot", "\uff48\uff4f\uff54", True),
    ("?hot?", "s\u00adhot\u200bs", True),               # ? is one visible character
    ("?hot?", "h\u00adot", False),
    ("deal*", "\uff32\uff45: h\u200bot: deal", False),  # "hot:" is no prefix
    ("deal*", "\uff32\uff45: \uff26\uff37: deal now", True),   # full-width Re: Fw: stripped
    ("re: deal", "R\u200be: deal", True),               # the subject with its prefix
])
def test_wildcards_and_prefixes_on_the_read_subject(pattern, subject, blocked):
    assert (matching_line([pattern], subject) is not None) is blocked


def test_all_cyrillic_word_is_left_as_it_is():
    # "рау" all Cyrillic is Russian text, not a disguise (docs/filtering.md)
    assert matching_line(["pay*"], "\u0440\u0430\u0443 now") is None
    assert matching_line(["\u0440\u0430\u0443*"], "\u0440\u0430\u0443 now") is not None
