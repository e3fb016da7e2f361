"""Both rule pages refuse a term whose `\\` escapes a punctuation mark (guide45 minor note:
`100\\% pure` was stored and never matched "100% pure"), show the rule again as typed with
the reason, and a term stored so before is named on the Status page and breaks no page."""

from __future__ import annotations

import html
import re

from tests.support.core import store_unchecked

REASON = ('term "100\\% pure": \\ escapes only * and ?, so \\% looks for a backslash and %; '
          "type % alone (or ? where the text itself has a backslash)")


def _page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_the_spam_rules_page_refuses_the_term_and_shows_it_again(admin):
    response = admin.post("/antispam/spam-rules/save", {
        "prefix": "new", "new-index": "", "new-name": "Pure", "new-enabled": "y",
        "new-match": "any", "new-terms": "miracle, 100\\% pure", "new-none_of": ""})
    assert response.status_code == 200
    page = _page(response)
    assert f'rules.spam: rule 1 ("Pure") {REASON}' in page
    assert 'value="miracle, 100\\% pure"' in page
    assert admin.settings()["rules.spam"] == []


def test_the_content_rules_page_refuses_the_term_and_shows_it_again(admin):
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-name": "", "add-match": "any",
        "add-terms": "100\\% pure", "add-none_of": ""})
    assert response.status_code == 200
    assert f"rules.content: rule 1 {REASON}" in _page(response)
    assert admin.settings()["rules.content"] == []


def test_a_term_stored_before_is_named_on_the_status_page_and_the_pages_show(admin, home):
    store_unchecked(home, {"rules.spam": [{"enabled": True, "match": "any",
                                           "terms": ["100\\% pure"], "none_of": []}]})
    status = re.sub(r"</?code>", "", _page(admin.get("/status/")))
    assert f"rules.spam (Anti-spam Policy › Spam Rules): rule 1 {REASON}" in status
    page = admin.get("/antispam/spam-rules")
    assert page.status_code == 200 and "100\\% pure" in _page(page)
