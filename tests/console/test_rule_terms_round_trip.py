"""Content and spam rules' terms lines (SPEC §3: "the console edits terms as one
comma-separated line"; guide §5 and §6 on custom rules).

Tester "policy", B4: a term with a comma ("Smith, John", which the CLI and an import store)
was split into two terms when its content rule was opened and saved unchanged, and the page
said "Content rule saved.". B6: the guide's "invoice AND overdue NOT newsletter" was saved
as one phrase that never matches, without a word.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from shared.events import Action


class _FormFields(HTMLParser):
    """The fields of the form with id `form_id` as a browser submits them unchanged."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.select = form_id, False, None
        self.data: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and a.get("type") == "checkbox":
            if "checked" in a:
                self.data[a["name"]] = a.get("value") or "y"
        elif tag == "input" and a.get("name") and a.get("type") != "submit":
            self.data[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select:       # the first option unless one is selected
            if "selected" in a or self.select not in self.data:
                self.data[self.select] = a["value"]

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_fields(page: str, form_id: str) -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(page)
    assert parser.data, f"no form {form_id!r} on the page"
    return parser.data


def content_rule(terms, none_of=(), match="any"):
    return {"enabled": True, "match": match, "terms": list(terms), "none_of": list(none_of)}


# --- B4: a comma inside a term -----------------------------------------------------------

TERM_LISTS = [
    (["Smith, John", "salary"], ["1,000"]),
    (["C:\\temp\\", "1,000 dollars", "100\\*sure"], []),
    (["a\\,b", "a\\", ","], ["x,"]),
]


@pytest.mark.parametrize("terms,none_of", TERM_LISTS)
def test_content_rule_opened_and_saved_unchanged_keeps_its_terms(admin, terms, none_of):
    admin.set(rules__content=[content_rule(terms, none_of)])
    before = admin.settings()["rules.content"]
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    response = admin.post("/filtering/content-rules/0", form_fields(edit, "edit-rule"))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert admin.settings()["rules.content"] == before
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert "No changes to save." in page and "Content rule saved." not in page
    assert admin.events(Action.OBJECT_MODIFIED) == []


def test_comma_in_a_term_is_shown_escaped_and_typed_escaped(admin):
    admin.set(rules__content=[content_rule(["Smith, John", "salary"])])
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    assert form_fields(edit, "edit-rule")["edit-terms"] == "Smith\\, John, salary"
    listed = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert "Smith\\, John, salary" in listed
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "all", "add-terms": "Doe\\, Jane, bonus",
        "add-none_of": "1\\,000"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert admin.settings()["rules.content"][1] == content_rule(
        ["Doe, Jane", "bonus"], ["1,000"], match="all")


@pytest.mark.parametrize("terms,none_of", TERM_LISTS)
def test_spam_rule_opened_and_saved_unchanged_keeps_its_terms(admin, terms, none_of):
    # the same terms line on the Spam Rules page
    admin.set(rules__spam=[content_rule(terms, none_of)])
    before = admin.settings()["rules.spam"]
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    response = admin.post("/antispam/spam-rules/save", form_fields(page, "rule-r0"))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert admin.settings()["rules.spam"] == before
    assert "No changes to save." in admin.get("/antispam/spam-rules").get_data(as_text=True)


# --- B6: the guide's AND / OR / NOT typed in a term ----------------------------------------

def test_content_rule_with_the_guides_operators_is_refused_with_what_to_type(admin):
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "any",
        "add-terms": "invoice AND overdue NOT newsletter", "add-none_of": "ads OR promo"})
    assert response.status_code == 200
    assert admin.settings()["rules.content"] == []
    page = response.get_data(as_text=True)
    assert ('Instead type &#34;invoice, overdue&#34; as terms with Match &#34;All of these '
            'terms&#34; and &#34;newsletter&#34; under &#34;None of these terms&#34;') in page
    assert 'id="add-terms-error"' in page and 'id="add-none_of-error"' in page
    # what was typed is still in the form, to correct
    assert form_fields(page, "add-rule")["add-terms"] == "invoice AND overdue NOT newsletter"


@pytest.mark.parametrize("terms,advice", [
    ("cheap OR free OR bonus", 'Instead type "cheap, free, bonus" as terms with Match '
                               '"Any of these terms"'),
    ("NOT unsubscribe", 'Instead type "unsubscribe" under "None of these terms"'),
    ("a AND b OR c", "AND and OR cannot be mixed in one rule"),
])
def test_edited_content_rule_with_operators_is_refused(admin, terms, advice):
    import html
    admin.set(rules__content=[content_rule(["merger"])])
    before = admin.settings()["rules.content"]
    fields = form_fields(admin.get("/filtering/content-rules/0").get_data(as_text=True),
                         "edit-rule")
    response = admin.post("/filtering/content-rules/0", {**fields, "edit-terms": terms})
    assert response.status_code == 200
    assert advice in html.unescape(response.get_data(as_text=True))
    assert admin.settings()["rules.content"] == before


def test_spam_rule_with_the_guides_operators_is_refused_as_typed(admin):
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    fields = {**form_fields(page, "rule-new"), "new-terms": "viagra OR cialis",
              "new-none_of": "pharmacy AND licensed"}
    response = admin.post("/antispam/spam-rules/save", fields)
    assert response.status_code == 200
    assert admin.settings()["rules.spam"] == []
    import html
    page = html.unescape(response.get_data(as_text=True))
    assert 'Instead type "viagra, cialis" as terms with Match "Any of these terms"' in page
    assert '"pharmacy AND licensed" would match only that whole phrase' in page
    assert form_fields(response.get_data(as_text=True), "rule-new")["new-terms"] == \
        "viagra OR cialis"


@pytest.mark.parametrize("terms", ["rock and roll", "act now or lose", "OR", "NOT",
                                   "ORDER NOW", "Smith\\, NOT-a-spammer"])
def test_words_that_are_not_the_guides_operators_are_terms(admin, terms):
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "any", "add-terms": terms})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    response = admin.post("/antispam/spam-rules/save",
                          {**form_fields(page, "rule-new"), "new-terms": terms})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert len(admin.settings()["rules.content"]) == len(admin.settings()["rules.spam"]) == 1


def test_a_rule_stored_with_a_capitalised_operator_word_stays_editable(admin):
    """Stored before the refusal (or set with the CLI), "DO NOT REPLY" made its rule
    impossible to re-save until the term was retyped (regress11 finding 8); a new term
    with the guide's operators is still refused."""
    admin.set(rules__content=[content_rule(["DO NOT REPLY", "merger"])])
    fields = form_fields(admin.get("/filtering/content-rules/0").get_data(as_text=True),
                         "edit-rule")
    response = admin.post("/filtering/content-rules/0", {**fields, "edit-name": "renamed"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    [rule] = admin.settings()["rules.content"]
    assert rule["terms"] == ["DO NOT REPLY", "merger"] and rule["name"] == "renamed"
    response = admin.post("/filtering/content-rules/0", {
        **fields, "edit-terms": fields["edit-terms"] + ", buy NOT sell"})
    assert response.status_code == 200
