"""Spam Rules with a stored rule this release's rules refuse (an older release stored it):
a save of another rule is refused, and the message is shown at the rule to correct, not
only under the rule being saved (upgrade17 C3)."""

from __future__ import annotations

import html
import re

from tests.support.core import store_unchecked

# "none_of" holding one of the rule's own terms: taken by older releases, refused now
OLD_RULE = {"enabled": True, "match": "any", "terms": ["cheap pills", "viagra"],
            "none_of": ["viagra"]}
GOOD_RULE = {"enabled": True, "match": "any", "terms": ["casino"], "none_of": []}


def _form(page: str, prefix: str) -> str:
    [form] = re.findall(rf'<form[^>]*id="rule-{prefix}"[^>]*>(.*?)</form>', page, re.S)
    return form


def _input(form: str, name: str) -> str:
    [tag] = [t for t in re.findall(r"<input[^>]*>", form) if f'name="{name}"' in t]
    return tag


def _original(page: str, prefix: str) -> str:
    [value] = re.findall(rf'name="{prefix}-original"[^>]*value="([^"]*)"', _form(page, prefix))
    return html.unescape(value)


def test_saving_another_rule_marks_the_stored_rule_to_correct(admin, home):
    store_unchecked(home, {"rules.spam": [OLD_RULE, GOOD_RULE]})
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    response = admin.post("/antispam/spam-rules/save", {
        "prefix": "r1", "r1-index": "1", "r1-original": _original(page, "r1"),
        "r1-name": "", "r1-enabled": "y", "r1-match": "any", "r1-terms": "casino, poker",
        "r1-none_of": ""})
    assert response.status_code == 200
    page = response.get_data(as_text=True)

    stored = html.unescape(_form(page, "r0"))
    assert 'id="rule-r0-stored-refused"' in stored
    assert "This rule, as stored, breaks a rule of this release" in stored
    # the reason by its field, None of these terms, marked invalid
    assert 'aria-invalid="true"' in _input(stored, "r0-none_of")
    assert "is also one of its terms" in stored

    typed = html.unescape(_form(page, "r1"))
    assert "Nothing was saved" in typed
    assert "Rule 1 must be corrected or deleted first: see its message." in typed
    assert "is also one of its terms" not in typed
    assert 'value="casino, poker"' in typed
    assert admin.settings()["rules.spam"] == [OLD_RULE, GOOD_RULE]


def test_the_new_rules_own_error_stays_with_it(admin, home):
    store_unchecked(home, {"rules.spam": [OLD_RULE]})
    page = admin.post("/antispam/spam-rules/save", {
        "prefix": "new", "new-index": "", "new-name": "", "new-enabled": "y",
        "new-match": "any", "new-terms": "casino", "new-none_of": "casino"}
    ).get_data(as_text=True)
    typed = html.unescape(_form(page, "new"))
    assert 'aria-invalid="true"' in _input(typed, "new-none_of")
    assert "Rule 1 must be corrected or deleted first: see its message." in typed
    assert 'id="rule-r0-stored-refused"' in page
