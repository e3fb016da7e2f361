"""A rule term's `\\` escapes `*` and `?` only (guide §5, §6; shared/wildcard.py): a `\\`
before another punctuation mark looks for the backslash, so `100\\% pure` never found "100%
pure" (guide45 minor note). Such terms are refused at save, naming the key, the rule and
the term; those stored before are listed among the refused stored values, matched as
written, and block no edit of another key.
"""

import pytest

from shared.settings import SettingError, defaults, refused_values, validate_changes
from shared.wildcard import misread_escapes
from tests.support.settings_rules import rule_of, stored
from tests.unit.pipeline.support import message, verdict_of


def _rule(*terms, none_of=(), name=None):
    rule = {"enabled": True, "match": "any", "terms": list(terms), "none_of": list(none_of)}
    return {**rule, "name": name} if name else rule


@pytest.mark.parametrize("key", ["rules.spam", "rules.content"])
def test_a_backslash_before_a_punctuation_mark_is_refused_naming_rule_and_term(key):
    assert rule_of(key, [_rule("fine"), _rule("100\\% pure", name="Pure")]) == (
        f'{key}: rule 2 ("Pure") term "100\\% pure": \\ escapes only * and ?, so \\% looks '
        "for a backslash and %; type % alone (or ? where the text itself has a backslash)")


def test_every_bad_term_of_a_rule_is_named_in_one_line_per_rule():
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), {"rules.spam": [
            _rule("www\\.site\\.com", "ok", none_of=["sale\\!"]), _rule("ok"),
            _rule("save 50\\%")]})
    assert info.value.lines() == [
        'rules.spam: rule 1 term "www\\.site\\.com", none-of term "sale\\!": \\ escapes only '
        "* and ?, so \\. and \\! look for a backslash before the mark; type the marks alone "
        "(or ? where the text itself has a backslash)",
        'rules.spam: rule 3 term "save 50\\%": \\ escapes only * and ?, so \\% looks for a '
        "backslash and %; type % alone (or ? where the text itself has a backslash)"]


@pytest.mark.parametrize("term", [
    "c:\\temp", "\\\\fileserver\\hr", "dir\\", "a\\*b", "what\\?", "c:\\\\*", "a\\,b",
    "\\1 ref", "c:\\ temp", "100% pure", "ünïcode\\é"])
def test_backslashes_of_paths_and_escapes_of_wildcards_are_kept(term):
    assert misread_escapes(term) == []
    assert stored("rules.content", [_rule(term)])[0]["terms"] == [term]


def test_a_term_stored_before_is_listed_matched_as_written_and_blocks_no_other_edit():
    old = {**defaults(), "rules.spam": [_rule("100\\% pure")]}
    assert refused_values(old) == [("rules.spam", (
        'rule 1 term "100\\% pure": \\ escapes only * and ?, so \\% looks for a backslash '
        "and %; type % alone (or ? where the text itself has a backslash)"))]
    # the other rule list and other keys save as ever
    validate_changes(old, {"rules.content": [_rule("invoice")], "rules.body_scanning": False})
    # and the term is read as it always was: the backslash and the mark
    for body, spam in (("only 100% pure gold\n", False), ("only 100\\% pure gold\n", True)):
        _, findings, _verdict = verdict_of(message(body=body), rules__spam=old["rules.spam"])
        assert ("spam_rule_violation" in [f.event for f in findings]) is spam
