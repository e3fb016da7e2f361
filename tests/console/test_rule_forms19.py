"""The two rule pages share one rule form and its texts; the RBL zone rows' controls have
names of their own (review19 r1 C4, D3; fixer19 F15).

C4: each zone row has a check box and a box both labelled "Real-time blacklist domain name"
(the guide's words, kept): a screen reader announced six controls by that one name. Since
antispam21 C2 each has a visible label of its own.
D3: Filtering › Content Rules and Anti-spam › Spam Rules had two near-copies of the rule
form (the name labelled "Name (optional)" on one, "Rule name (optional)" on the other; only
the content form refused a terms line past 12,000 characters, and it refused a long name in
WTForms' words, not the schema's), and wrote the match options and field labels again in
their templates.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from console.rule_terms import MATCH_OPTIONS, NONE_OF_LABEL, TERMS_LABEL
from tests.console.test_antispam import _field_error
from tests.console.test_antispam19_guide_texts import _Controls, _hint

class _AccessibleNames(HTMLParser):
    """Each control's aria-label, by id."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.names: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("input", "select", "textarea") and "aria-label" in attrs:
            self.names[attrs.get("id")] = attrs["aria-label"]


# --- C4, then antispam21 C2 ---------------------------------------------------------------------

def test_each_zone_control_has_a_visible_label_of_its_own_numbered_by_its_row(admin):
    """review19 C4 gave the controls distinct aria-labels behind one visible label, the
    guide's "Real-time blacklist domain name" twice in each row, which read on screen as a
    repeated heading (antispam21 C2): each has a visible label of its own now, numbered as
    its row's legend, and no aria-label that could say otherwise (WCAG 2.5.3)."""
    page = admin.get("/antispam/rbl").get_data(as_text=True)
    labels, names = _Controls(page).labels, _AccessibleNames(page).names
    controls = [f"zone{row}_{field}" for row in range(3) for field in ("enabled", "zone")]
    assert len({labels[control] for control in controls}) == 6
    assert labels["zone1_enabled"] == "Use real-time blacklist 2"
    assert labels["zone1_zone"] == "Real-time blacklist 2 domain name"
    assert not any(control in names for control in controls)
    assert "<legend>Blacklist 2</legend>" in page


# --- D3: one rule form ------------------------------------------------------------------------

def _post_content_rule(admin, **fields):
    return admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "any", "add-terms": "lottery", "add-none_of": "",
        **{f"add-{k}": v for k, v in fields.items()}})


def _post_spam_rule(admin, **fields):
    return admin.post("/antispam/spam-rules/save", {
        "prefix": "new", "new-index": "", "new-enabled": "y", "new-match": "any",
        "new-terms": "lottery", "new-none_of": "",
        **{f"new-{k}": v for k, v in fields.items()}})


def test_both_rule_forms_have_the_same_labels(admin):
    content = _Controls(admin.get("/filtering/content-rules").get_data(as_text=True))
    spam = _Controls(admin.get("/antispam/spam-rules").get_data(as_text=True))
    for field in ("enabled", "name", "terms", "none_of"):
        assert content.labels[f"add-{field}"] == spam.labels[f"new-{field}"], field
    assert content.labels["add-name"] == "Rule name (optional)"
    assert content.options["add-match"] == spam.options["new-match"] == \
        list(MATCH_OPTIONS.values())


def test_a_long_name_is_refused_in_the_schemas_words_on_both_pages(admin):
    for post, field in ((_post_content_rule, "add-name"), (_post_spam_rule, "new-name")):
        response = post(admin, name="L" * 101)
        assert response.status_code == 200
        assert _field_error(response.get_data(as_text=True), field) == \
            "must be at most 100 characters", field
    assert admin.settings()["rules.content"] == admin.settings()["rules.spam"] == []


def test_a_terms_line_past_12000_characters_is_refused_by_both_forms(admin):
    line = ", ".join(["x" * 200] * 60)[:12_001]
    for post, field in ((_post_content_rule, "add-terms"), (_post_spam_rule, "new-terms")):
        response = post(admin, terms=line)
        assert response.status_code == 200
        assert _field_error(response.get_data(as_text=True), field) == \
            "Field cannot be longer than 12000 characters.", field
    assert admin.settings()["rules.content"] == admin.settings()["rules.spam"] == []


# --- D3: the texts from one place -------------------------------------------------------------

def test_the_rules_table_and_both_hints_say_the_forms_texts(admin):
    admin.set(rules__content=[{"enabled": True, "match": "any", "terms": ["a"], "none_of": []},
                              {"enabled": True, "match": "all", "terms": ["b"], "none_of": []}])
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<td>(\d)</td>.*?</tr>", page, re.S)
    assert rows == ["1", "2"]          # numbered from 1 (firstday20 C2)
    cells = re.findall(r"<td>([^<]*)</td>", page.split('id="rules"', 1)[1].split("</table>")[0])
    assert MATCH_OPTIONS["any"] in cells and MATCH_OPTIONS["all"] in cells
    said = (f"In “{TERMS_LABEL}” and “{NONE_OF_LABEL}”", f"choose “{MATCH_OPTIONS['all']}” "
            f"(AND) or “{MATCH_OPTIONS['any']}” (OR) and list the NOT terms under "
            f"“{NONE_OF_LABEL}”")
    for url in ("/filtering/content-rules", "/antispam/spam-rules"):
        hint = _hint(admin, url)
        assert all(text in hint for text in said), url
