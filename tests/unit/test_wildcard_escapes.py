"""`\\` escapes `*` and `?` only (guide §6 "Blocking by custom content rules": "Escapes any
special meaning for * and ? only", and the same for spam rules in §5); every other
character, a `\\` before one included, is matched as itself.

Tester policy B2: `\\` took the meaning from any character after it, so the term `c:\\temp`
missed the text "c:\\temp" and matched "c:temp", and a rule for a Windows share
(`\\\\fileserver\\hr`) could never fire. Subject lines share shared/wildcard.py and had the
same fault.
"""

import pytest

from shared.term_set import TermSet
from shared.wildcard import find, matches
from tests.unit.pipeline.support import message, verdict_of


@pytest.mark.parametrize("pattern, text, whole, anywhere", [
    (r"c:\temp", r"c:\temp", True, True),
    (r"c:\temp", "c:temp", False, False),
    (r"\\fileserver\hr", r"\\fileserver\hr", True, True),
    (r"\\fileserver\hr", r"\fileserver\hr", False, False),    # both backslashes count
    (r"\\fileserver\hr", "fileserverhr", False, False),
    (r"50\%", r"50\%", True, True),
    (r"50\%", "50%", False, False),
    ("dir\\", "dir\\", True, True),                              # a last `\` is itself
    (r"\a?c", r"\abc", True, True),                             # `?` after it still a wildcard
    (r"\a?c", "abc", False, False),
    (r"a\*b", "a*b", True, True),                               # ...and before * and ?: escapes
    (r"a\*b", "axb", False, False),
    (r"what\?", "what?", True, True),
    (r"what\?", "whatX", False, False),
    (r"c:\\*", r"c:\*", True, True),                            # `\` then `\*`: "c:\" and "*"
    (r"c:\\*", r"c:\temp", False, False),
    (r"*\docs\*", r"x:\docs*", True, True),                       # the last `*` is escaped
    (r"*\docs\*", r"x:\docs\a", False, False),
])
def test_backslash_escapes_only_star_and_question_mark(pattern, text, whole, anywhere):
    assert matches(pattern, text) is whole
    assert find(pattern, text) is anywhere
    assert (pattern in TermSet([pattern, "unrelated"]).found(text)) is anywhere


def _rule(term):
    return {"enabled": True, "match": "any", "terms": [term], "none_of": []}


@pytest.mark.parametrize("body, dropped", [
    ("saved in c:\\temp today\n", True),
    ("saved in c:temp today\n", False),
    ("see \\\\fileserver\\hr\\salaries.xlsx\n", True),
])
def test_a_content_rule_term_with_a_backslash_finds_the_path(body, dropped):
    raw = message(subject="where", body=body)
    _, findings, verdict = verdict_of(
        raw, rules__content=[_rule("c:\\temp"), _rule("\\\\fileserver\\hr")],
        rules__content_action="drop")
    assert (verdict.disposition == "drop") is dropped
    assert ("content_rule_violation" in [f.event for f in findings]) is dropped


@pytest.mark.parametrize("subject, dropped", [
    ("files in c:\\temp", True),
    ("files in c:temp", False),
])
def test_a_subject_line_with_a_backslash_matches_the_path(subject, dropped):
    _, findings, verdict = verdict_of(message(subject=subject), subject__enabled=True,
                                      subject__lines=["*c:\\temp*"], subject__action="drop")
    assert (verdict.disposition == "drop") is dropped
