"""SPEC §3 "≤50 terms per rule" counts a rule's "none of" terms too (tester "guide", finding
11: a spam rule of 50 terms and 50 "none of" terms was accepted)."""

import pytest

from shared.db import connect
from shared.home import initialise
from shared.paths import DataHome
from shared.settings import defaults
from shared.settings_entries import RULE_MAX_TERMS, Rule
from shared.settings_store import SettingError, apply_changes, load
from shared.settings_types import RuleError


def _terms(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_terms_and_none_of_terms_count_together():
    with pytest.raises(RuleError) as info:
        Rule().check({"terms": _terms("t", 30), "none_of": _terms("n", 21)})
    error = info.value
    assert str(error) == ('none_of: a rule has at most 50 terms, its "none of" terms '
                          'included (30 + 21 = 51)')
    assert error.field == "none_of"             # the console shows it at that field
    with pytest.raises(RuleError, match=r"\(50 \+ 50 = 100\)"):
        Rule().check({"terms": _terms("t", 50), "none_of": _terms("n", 50)})


def test_fifty_terms_in_all_still_pass():
    assert RULE_MAX_TERMS == 50
    rule = Rule().check({"terms": _terms("t", 25), "none_of": _terms("n", 25)})
    assert len(rule["terms"]) + len(rule["none_of"]) == 50
    assert len(Rule().check({"terms": _terms("t", 50)})["terms"]) == 50


@pytest.mark.parametrize("key", ["rules.spam", "rules.content"])
def test_a_rule_list_with_too_many_terms_is_refused_and_the_defaults_are_valid(tmp_path, key):
    home = DataHome(tmp_path / "home")
    initialise(home, "Admin-pass1")
    conn = connect(home.db)
    try:
        # every default still passes every rule; admin.password's null stands only before
        # init, which sets it, and cannot be set back (clispec19 B1)
        apply_changes(conn, {k: v for k, v in defaults().items() if k != "admin.password"})
        with pytest.raises(SettingError) as info:
            apply_changes(conn, {key: [{"terms": _terms("t", 50), "none_of": ["n"]}]})
        assert '"none of" terms included (50 + 1 = 51)' in str(info.value)
        assert load(conn)[key] == []
    finally:
        conn.close()
