"""A spam rule whose Match value is not one of the choices is refused on the page, with the
rule kept as typed and the field marked, as the content-rule form does (console18 B6: a
redirect flashed "Match: Not a valid choice." and threw the typed name and terms away)."""

from __future__ import annotations

import pytest

from tests.console.test_antispam import _rule, _shown_rule_fields


def test_a_new_rule_with_a_bad_match_is_shown_again_as_typed(admin):
    response = admin.post("/antispam/spam-rules/save", {
        "prefix": "new", "new-index": "", "new-name": "Keep this name", "new-enabled": "y",
        "new-match": "<script>x</script>", "new-terms": "cheap watches, pills"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'value="Keep this name"' in page and 'value="cheap watches, pills"' in page
    assert "Not a valid choice" in page and "<script>x" not in page
    assert 'aria-invalid="true"' in page.split('name="new-match"')[0].rsplit("<select", 1)[1]
    assert admin.settings()["rules.spam"] == []


def test_a_stored_rule_edited_with_a_bad_match_is_shown_again_in_its_place(admin):
    admin.set(rules__spam=[_rule("Pharma", "pills")])
    response = admin.post("/antispam/spam-rules/save", {
        **_shown_rule_fields(admin, "r0"), "prefix": "r0", "r0-name": "Pharma edited",
        "r0-enabled": "y", "r0-match": "some", "r0-terms": "pills, tablets"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'value="Pharma edited"' in page and "Not a valid choice" in page
    assert admin.settings()["rules.spam"] == [_rule("Pharma", "pills")]


@pytest.mark.parametrize("index", ["abc", "²"])
def test_a_bad_hidden_rule_number_is_still_refused_by_a_redirect(admin, index):
    response = admin.post("/antispam/spam-rules/save", {
        "prefix": "r0", "r0-index": index, "r0-match": "any", "r0-terms": "x"})
    assert response.status_code == 302
