"""Console pages as a new administrator reads them (firstday20 C1, C2, C3, C5)."""

from __future__ import annotations

import html
import re

from console.schema_forms import settings_form, supports
from shared.settings import SCHEMA


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
