"""Filtering Policy pages (guide §6): forms from the schema, saves with events, the schema's
messages, content rules add/edit/delete."""

from __future__ import annotations

import pytest

from console.filtering.forms import PAGE_FORMS
from shared.events import Action
from shared.settings import SCHEMA

from .test_configuration import _form_fields

PAGES = {"content": "/filtering/content", "container": "/filtering/container-limits",
         "encrypted": "/filtering/encrypted-container", "relay": "/filtering/anti-relay",
         "content_rules": "/filtering/content-rules"}


def test_every_filtering_key_has_a_form_field():
    covered = set()
    for form in PAGE_FORMS.values():
        covered |= {sf.key for sf in form.setting_fields}
    expected = {key for key, s in SCHEMA.items()
                if s.page in ("content", "container", "encrypted", "relay", "content_rules")}
    assert expected - covered == {"rules.content"}          # edited as a list of rules
    assert "rules.body_scanning" in covered


@pytest.mark.parametrize("url", PAGES.values())
def test_submitting_a_page_unchanged_changes_nothing(admin, url):
    before = admin.settings()
    response = admin.post(url, _form_fields(admin, url))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert admin.settings() == before
    assert admin.events(Action.OBJECT_MODIFIED) == []


def test_content_page_saves_subject_lines_and_file_names(admin):
    data = _form_fields(admin, PAGES["content"])
    data["subject__enabled"] = "y"
    data["subject__lines"] = "*lottery*\r\nmake money*"
    data["filename__enabled"] = "y"
    assert admin.post(PAGES["content"], data).status_code == 302
    values = admin.settings()
    assert values["subject.lines"] == ["*lottery*", "make money*"]
    assert values["subject.enabled"] and values["filename.enabled"]
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["data"]["page"] == "content"


@pytest.mark.parametrize("page,field,value,message", [
    ("container", "container__max_depth", "0", "between"),
    ("content", "filename__patterns", "*", "would delete every attachment"),
    ("encrypted", "encrypted__action", "forward", "required"),
])
def test_bad_values_are_refused_with_the_schema_message(admin, page, field, value, message):
    data = _form_fields(admin, PAGES[page])
    data[field] = value
    before = admin.settings()
    response = admin.post(PAGES[page], data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert admin.settings() == before


def test_relay_page_warns_when_nothing_may_relay(admin):
    assert "all mail to non-local destinations is refused" in \
        admin.get(PAGES["relay"]).get_data(as_text=True)


def test_content_rules_add_edit_delete(admin):
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-name": "M&A", "add-match": "all",
        "add-terms": "merger, insider trading , ", "add-none_of": "newsletter"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    [rule] = admin.settings()["rules.content"]
    assert rule == {"enabled": True, "match": "all", "name": "M&A",
                    "terms": ["merger", "insider trading"], "none_of": ["newsletter"]}
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert "merger, insider trading" in page
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    import html
    import re
    original = html.unescape(re.search(r'name="edit-original" type="hidden" value="([^"]*)"',
                                       edit).group(1))
    response = admin.post("/filtering/content-rules/0", {
        "edit-enabled": "y", "edit-match": "any", "edit-terms": "acquisition",
        "edit-none_of": "", "edit-original": original})
    assert response.status_code == 302
    assert admin.settings()["rules.content"][0]["terms"] == ["acquisition"]
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    original = html.unescape(re.search(r'name="del0-original" type="hidden" value="([^"]*)"',
                                       page).group(1))
    assert admin.post("/filtering/content-rules/0/delete",
                      {"del0-original": original}).status_code == 302
    assert admin.settings()["rules.content"] == []


def test_saving_an_unchanged_content_rule_says_no_changes_and_writes_nothing(admin):
    import html
    import re
    admin.set(rules__content=[{"enabled": True, "match": "any", "terms": ["merger"],
                               "none_of": []}])
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    original = html.unescape(re.search(r'name="edit-original" type="hidden" value="([^"]*)"',
                                       edit).group(1))
    unchanged = {"edit-enabled": "y", "edit-match": "any", "edit-terms": "merger",
                 "edit-none_of": "", "edit-original": original}
    assert admin.post("/filtering/content-rules/0", unchanged).status_code == 302
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert "No changes to save." in page and "Content rule saved." not in page
    assert not admin.events(Action.OBJECT_MODIFIED)


def test_rule_with_too_many_terms_is_refused(admin):
    terms = ", ".join(f"t{i}" for i in range(51))
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "any", "add-terms": terms})
    assert response.status_code == 200 and admin.settings()["rules.content"] == []


def test_a_refused_content_rule_names_the_bad_terms_next_to_their_field(admin):
    """The Content Rules page showed a refused rule's schema errors as one line at the top
    ("rules.content: entry 1: terms: entry 3 repeats entry 1") while the Spam Rules page
    named the term next to the field; both pages read a rule form the same way now."""
    from .test_antispam import _field_error
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-match": "any", "add-terms": "alpha, beta, , ALPHA",
        "add-none_of": "q, Q"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _field_error(page, "add-terms") == "term 4 repeats term 1"
    assert _field_error(page, "add-none_of") == "term 2 repeats term 1"
    assert "rules.content: entry" not in page
    assert admin.settings()["rules.content"] == []
    admin.set(rules__content=[{"enabled": True, "match": "any", "terms": ["merger"],
                               "none_of": []}])
    import html
    import re
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    original = html.unescape(re.search(r'name="edit-original" type="hidden" value="([^"]*)"',
                                       edit).group(1))
    response = admin.post("/filtering/content-rules/0", {
        "edit-enabled": "y", "edit-match": "any", "edit-terms": "merger, x, MERGER",
        "edit-none_of": "", "edit-original": original})
    assert _field_error(response.get_data(as_text=True), "edit-terms") == \
        "term 3 repeats term 1"
    assert admin.settings()["rules.content"][0]["terms"] == ["merger"]


def test_a_content_rule_takes_no_name_another_rule_has(admin):
    # tester27b C6, on the Content Rules page: added, and edited to another's name
    import html
    import re
    admin.set(rules__content=[
        {"enabled": True, "match": "any", "terms": ["merger"], "none_of": [], "name": "M&A"},
        {"enabled": True, "match": "any", "terms": ["salary"], "none_of": [], "name": "HR"}])
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-name": "m&a ", "add-match": "any", "add-terms": "buyout",
        "add-none_of": ""})
    assert response.status_code == 200
    assert "rule 1 has this name" in html.unescape(response.get_data(as_text=True))
    edit = admin.get("/filtering/content-rules/0").get_data(as_text=True)
    original = html.unescape(re.search(r'name="edit-original" type="hidden" value="([^"]*)"',
                                       edit).group(1))
    response = admin.post("/filtering/content-rules/0", {
        "edit-enabled": "y", "edit-name": "hr", "edit-match": "any", "edit-terms": "merger",
        "edit-none_of": "", "edit-original": original})
    assert response.status_code == 200
    assert "rule 2 has this name" in html.unescape(response.get_data(as_text=True))
    assert [r["name"] for r in admin.settings()["rules.content"]] == ["M&A", "HR"]
