"""A new content or spam rule matches all of its terms unless the administrator chooses any
(tester "guide", finding 6): the guide reads a comma as AND and lists "All of these terms"
first, so "free, money" typed with the default must not mark every mail with "free" as spam.
A stored rule without "match" keeps the schema's "any" (shared/settings_entries.py Rule)."""

from __future__ import annotations

from tests.console.test_rule_terms_round_trip import form_fields


def test_the_spam_rules_add_form_defaults_to_all_of_the_terms(admin):
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    fields = form_fields(page, "rule-new")
    assert fields["new-match"] == "all"
    response = admin.post("/antispam/spam-rules/save", {**fields, "new-terms": "free, money"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    [rule] = admin.settings()["rules.spam"]
    assert (rule["match"], rule["terms"]) == ("all", ["free", "money"])


def test_the_content_rules_add_form_defaults_to_all_of_these_terms(admin):
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    fields = form_fields(page, "add-rule")
    assert fields["add-match"] == "all"
    response = admin.post("/filtering/content-rules/add", {**fields, "add-terms": "free, money"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    [rule] = admin.settings()["rules.content"]
    assert (rule["match"], rule["terms"]) == ("all", ["free", "money"])


def test_a_stored_rule_without_match_still_shows_and_keeps_any(admin):
    admin.set(rules__spam=[{"terms": ["free"]}], rules__content=[{"terms": ["free"]}])
    assert admin.settings()["rules.spam"][0]["match"] == "any"
    spam = admin.get("/antispam/spam-rules").get_data(as_text=True)
    assert form_fields(spam, "rule-r0")["r0-match"] == "any"
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    assert form_fields(edit, "edit-rule")["edit-match"] == "any"
