"""Both rule pages refuse a rule past 50 terms, "none of" terms included, and say so at the
"none of" field (SPEC §3 "≤50 terms per rule"; tester "guide", finding 11)."""

from __future__ import annotations

import html
import re

from tests.console.test_rule_terms_round_trip import form_fields

TERMS = ", ".join(f"t{i}" for i in range(45))
NONE_OF = ", ".join(f"n{i}" for i in range(6))
MESSAGE = 'a rule has at most 50 terms, its "none of" terms included (45 + 6 = 51)'


def _error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error">(.*?)</span>', page, re.S)
    assert found, f"no error at {field_id}"
    return html.unescape(found.group(1))


def test_spam_rule_page_counts_the_none_of_terms(admin):
    fields = form_fields(admin.get("/antispam/spam-rules").get_data(as_text=True), "rule-new")
    response = admin.post("/antispam/spam-rules/save",
                          {**fields, "new-terms": TERMS, "new-none_of": NONE_OF})
    assert response.status_code == 200
    assert _error(response.get_data(as_text=True), "new-none_of") == MESSAGE
    assert admin.settings()["rules.spam"] == []


def test_content_rule_page_counts_the_none_of_terms(admin):
    fields = form_fields(admin.get("/filtering/content-rules").get_data(as_text=True),
                         "add-rule")
    response = admin.post("/filtering/content-rules/add",
                          {**fields, "add-terms": TERMS, "add-none_of": NONE_OF})
    assert response.status_code == 200
    assert _error(response.get_data(as_text=True), "add-none_of") == MESSAGE
    assert admin.settings()["rules.content"] == []
