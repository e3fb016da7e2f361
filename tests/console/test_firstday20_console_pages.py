"""Console pages as a new administrator reads them (firstday20 C1, C2, C3, C5)."""

from __future__ import annotations

import html
import re

import pytest

from console.schema_forms import settings_form, supports
from shared.settings import SCHEMA
from tests.support.core import store_unchecked

from .test_configuration import _form_fields


@pytest.fixture
def upgraded_quarantine(admin, home):
    """A home where an older release stored rules.content_action quarantine."""
    store_unchecked(home, {"rules.content_action": "quarantine"})
    return admin


def _label_of(page: str, field: str) -> str:
    found = re.search(rf'<label for="{field}">(.*?)</label>', page, re.S)
    return html.unescape(found.group(1)).strip()


def test_the_setup_tab_labels_outbound_starttls_in_a_few_words(admin):
    """C1: its label was the key's whole help text, cut mid-sentence at its first " ("."""
    page = admin.get("/configuration/setup").get_data(as_text=True)
    assert _label_of(page, "smtp__tls__outbound") == "STARTTLS when delivering"


def test_a_label_made_from_a_help_text_is_its_first_sentence_only():
    """C1: a key no page gives a label is labelled from its help text; never more than
    its first sentence."""
    for key in (k for k in SCHEMA if supports(k)):
        for name, unbound in vars(settings_form([key])).items():
            if hasattr(unbound, "field_class") and name.startswith(key.replace(".", "__")):
                label = unbound.args[0]
                assert ". " not in label and not label.endswith("."), (key, label)


def _add_content_rule(admin, name: str, terms: str):
    response = admin.post("/filtering/content-rules/add", {
        "add-enabled": "y", "add-name": name, "add-match": "any", "add-terms": terms})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def test_content_rules_are_numbered_from_1_as_their_refusals_name_them(admin):
    """C2: the table numbered the first rule 0, while a refusal of the second says
    "rules.content: rule 2 …" and the Spam Rules page heads its first "Rule 1"."""
    _add_content_rule(admin, "first", "alpha")
    _add_content_rule(admin, "second", "beta")
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<td>(\d+)</td><td>yes</td><td>(\w+)</td>", page)
    assert rows == [("1", "first"), ("2", "second")]
    edit = admin.get("/filtering/content-rules/1").get_data(as_text=True)
    assert "<h2>Edit content rule 2</h2>" in edit and 'value="second"' in edit


def _options(page: str, field: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select[^>]*name="{field}"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [(value, html.unescape(text)) for value, text in
            re.findall(r'<option[^>]*value="([^"]*)"[^>]*>(.*?)</option>', select)]


def test_content_rules_do_not_offer_the_quarantine_no_save_may_ask_for(admin):
    """C3: "Quarantine" was offered, and choosing it was always refused."""
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert [value for value, _text in _options(page, "rules__content_action")] == \
        ["drop", "log", "forward"]


def test_a_stored_quarantine_is_shown_selected_and_marked_until_changed(upgraded_quarantine):
    """An older release's stored quarantine stays what the select shows (left out, it
    would show Drop, and a save would change the action unseen); a save names it, as any
    page holding a refused stored value does, until another action is chosen."""
    admin = upgraded_quarantine
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    options = dict(_options(page, "rules__content_action"))
    assert options["quarantine"] == ("Quarantine (not available yet: matching mail is held "
                                     "in the hold queue instead; choose another action)")
    assert re.search(r'<option selected value="quarantine"|<option value="quarantine" '
                     r'selected', page)
    data = _form_fields(admin, "/filtering/content-rules")
    assert data["rules__content_action"] == "quarantine"
    refused = html.unescape(admin.post("/filtering/content-rules", data)
                            .get_data(as_text=True))
    assert "quarantine is not available yet" in refused
    assert admin.settings()["rules.content_action"] == "quarantine"
    data["rules__content_action"] = "log"
    assert admin.post("/filtering/content-rules", data).status_code == 302
    page = admin.get("/filtering/content-rules").get_data(as_text=True)
    assert [value for value, _text in _options(page, "rules__content_action")] == \
        ["drop", "log", "forward"]


def test_an_empty_hold_queue_says_only_that_it_is_empty(admin):
    """C5: "0 message(s) in the hold queue. Select messages to act on them only; …" came
    before "The hold queue is empty: there is nothing to reprocess, drop or forward."."""
    page = admin.get("/configuration/hold").get_data(as_text=True)
    tab = " ".join(re.sub(r"<[^>]+>", " ", page.split("<h2>Hold Queue</h2>", 1)[1]
                          .split("</form>", 1)[0]).split())
    assert "The hold queue is empty: there is nothing to reprocess, drop or forward." in tab
    assert "Select messages" not in tab and "message(s)" not in tab
