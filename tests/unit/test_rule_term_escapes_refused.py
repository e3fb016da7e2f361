"""A rule term's `\\` escapes `*` and `?` only (guide §5, §6; shared/wildcard.py): a `\\`
before another punctuation mark looks for the backslash, so `100\\% pure` never found "100%
pure" (guide45 minor note). Such terms are refused at save, naming the key, the rule and
the term; those stored before are listed among the refused stored values, matched as
written, and block no edit of another key. A term that holds a Windows path's start (a
drive, a server) is the path: its `\\` before a name's first mark (`c:\\users\\.ssh`) is
kept (review 14: such paths were refused, told to drop the backslash).
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


@pytest.mark.parametrize("term", [
    "c:\\users\\.ssh", "C:\\$Recycle.Bin", "\\\\fs\\$Recycle.Bin", "d:\\src\\_build",
    "c:\\temp\\~tmp", "open c:\\users\\..\\admin", "\\\\fs\\hr\\#2024"])
def test_a_path_from_its_drive_or_server_keeps_each_backslash_and_is_found(term):
    assert misread_escapes(term) == []
    assert stored("rules.content", [_rule(term)])[0]["terms"] == [term]
    body = f"the copy went to {term} yesterday\n"
    _, findings, _verdict = verdict_of(message(body=body), rules__content=[_rule(term)])
    assert "content_rule_violation" in [f.event for f in findings]


@pytest.mark.parametrize("term, pair", [
    ("www\\.site\\.com", "\\."), ("\\.ru", "\\."), ("users\\.ssh", "\\."),
    ("save \\$100", "\\$"), ("snake\\_case", "\\_"), ("\\w+\\.com", "\\."),
    ("buy\\snow\\!", "\\!"), ("https:\\/\\/site", "\\/")])
def test_escapes_with_no_path_start_in_the_term_are_refused_though_a_name_may_begin_so(
        term, pair):
    # a `\` between letters is no path's start (a regular expression's \s, \w)
    assert misread_escapes(term)[0] == pair
    assert f'term "{term}"' in rule_of("rules.spam", [_rule(term)])


@pytest.mark.parametrize("refused, name, text", [
    ("\\$Recycle.Bin", "$Recycle.Bin", "C:\\$Recycle.Bin\\S-1-5"),
    ("\\.ssh", ".ssh", "c:\\users\\.ssh"), ("\\~tmp", "~tmp", "\\\\fs\\~tmp"),
    ("\\_build", "_build", "src\\_build")])
def test_the_advice_for_a_name_alone_finds_it_in_a_path(refused, name, text):
    line = rule_of("rules.content", [_rule(refused)])
    assert f"type {name[0]} alone" in line
    _, findings, _verdict = verdict_of(message(body=f"found in {text} today\n"),
                                       rules__content=[_rule(name)])
    assert "content_rule_violation" in [f.event for f in findings]


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
