"""Repeats where matching would make the second entry do nothing (settings findings 16,
section 7): list entries that differ only in letter case where matching ignores it, a
character listed twice in address_chars.chars, and a rule's none-of term that is also one of
its terms."""

import pytest

from shared.settings import SettingError, defaults, validate_changes


def lines(changes):
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), changes)
    return info.value.lines()


CASE = ": letter case is ignored"      # said where the entries differ (upgrade17 C4)


@pytest.mark.parametrize("key, value, why", [
    ("subject.lines", ["hot", "HOT"], CASE),
    ("subject.lines", ["Win *", " win * "], CASE),
    ("subject.lines", ["Win *", " Win * "], ": spaces around it are ignored"),
    ("subject.lines", ["Win *", "Win *"], ""),
    ("filename.patterns", ["*.exe", "*.EXE"], CASE),
    ("scan.include", [".exe", ".EXE"], ""),       # refused so before: the shape followed
])
def test_entries_differing_only_in_letter_case_are_repeats(key, value, why):
    assert lines({key: value}) == [f"{key}: entry 2 repeats entry 1{why}"]


def test_patterns_that_match_other_text_are_kept_as_written():
    value = ["*.exe", "*.ex?", "*.exe.*"]
    assert validate_changes(defaults(), {"filename.patterns": value}) == {
        "filename.patterns": value}


@pytest.mark.parametrize("value, rule", [
    ("!!", "! is listed more than once"),
    ("!%!%#", "!% are listed more than once"),
])
def test_a_character_listed_twice_is_refused(value, rule):
    assert lines({"address_chars.chars": value}) == [
        f"address_chars.chars: must list each character once: {rule}"]


def test_characters_differing_in_letter_case_are_two():
    # the session compares them as written (core/smtp/policy.py check_recipient)
    assert validate_changes(defaults(), {"address_chars.chars": "xX"}) == {
        "address_chars.chars": "xX"}


ALSO = "is also one of its terms: the rule never matches a message that has it"


@pytest.mark.parametrize("rule, where", [
    ({"terms": ["x"], "none_of": ["x"]}, "entry 1"),
    ({"terms": ["cheap", "pills"], "match": "any", "none_of": ["doctor", "PILLS"]}, "entry 2"),
])
@pytest.mark.parametrize("key", ["rules.content", "rules.spam"])
def test_a_none_of_term_that_is_also_a_term_is_refused(key, rule, where):
    assert lines({key: [rule]}) == [f"{key}: entry 1: none_of: {where}: {ALSO}"]


def test_none_of_terms_other_than_the_terms_are_kept():
    rule = {"terms": ["pills"], "none_of": ["pills*", "doctor"]}
    assert validate_changes(defaults(), {"rules.content": [rule]})["rules.content"][0][
        "none_of"] == ["pills*", "doctor"]
