"""The Anti-spam Policy pages in the guide's words, and four messages (tester guide19, C1-C4).

C1: SPEC's preamble makes the guide the reference for its texts; an administrator following
chapter 5 step by step met other labels ("Scan message bodies (spam and content rules)" for
"Enable message body scanning for both Spam and Content Violation Rules", "Zone" for
"Real-time blacklist domain name", "Drop" for "Drop message", ...). What Mailmoat adds to a
guide label ("comma-separated", "one per line") is in the page's hint.
C2: 51 terms said "must have at most 50 entries", 30 + 21 terms said the rule's own words
with the counts: one wording, with the counts, in both cases.
C3: a return code that is no IPv4 address was told "must be an IPv4 or IPv6 address", though
no IPv6 address is ever taken; the console and `mailmoat config set` name what is.
C4: the custom blacklist kept `@spam.test` and `.Spam.test`, which block the same mail, where
the whitelist and the exclusion list report an entry spelled otherwise as a repeat.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest

from shared.cli import main
from tests.console.test_rule_terms_round_trip import form_fields

IPV4_RULE = "must be an IPv4 address in 127.0.0.0/8, as lists answer (for example 127.0.0.2)"


class _Controls(HTMLParser):
    """Each control's label (by `for`, or the label around it) and each select's options."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.labels: dict[str, str] = {}
        self.options: dict[str, list[str]] = {}
        self._label: list | None = None     # [for, text, nested control id]
        self._select: str | None = None
        self._option: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self._label = [attrs.get("for"), "", None]
        elif tag in ("input", "select", "textarea") and self._label is not None:
            self._label[2] = attrs.get("id")
        if tag == "select":
            self._select = attrs.get("id")
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self._option = []

    def handle_endtag(self, tag):
        if tag == "label" and self._label is not None:
            control = self._label[0] or self._label[2]
            self.labels[control] = " ".join(self._label[1].split())
            self._label = None
        elif tag == "option" and self._option is not None:
            self.options[self._select].append("".join(self._option).strip())
            self._option = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._label is not None:
            self._label[1] += data
        if self._option is not None:
            self._option.append(data)


def _controls(admin, url: str) -> _Controls:
    response = admin.get(url)
    assert response.status_code == 200
    return _Controls(response.get_data(as_text=True))


def _hint(admin, url: str) -> str:
    page = admin.get(url).get_data(as_text=True)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", " ".join(
        re.findall(r'<p class="hint"[^>]*>(.*?)</p>', page, re.S)))).split())


# --- C1: the guide's texts --------------------------------------------------------------------

def test_spam_rules_page_has_the_guides_labels(admin):
    page = _controls(admin, "/antispam/spam-rules")
    assert page.labels["rules__body_scanning"] == \
        "Enable message body scanning for both Spam and Content Violation Rules"
    assert page.labels["new-enabled"] == "Enable this custom filtering rule"
    assert page.options["new-match"] == ["All of these terms", "Any of these terms"]
    assert page.labels["new-terms"] == "Identify messages that contain"
    assert page.labels["new-none_of"] == "None of these terms"
    # what the labels no longer say, the hint does
    hint = _hint(admin, "/antispam/spam-rules")
    assert "In “Identify messages that contain” and “None of these terms”" in hint
    assert "separated by commas" in hint and "wildcards" in hint and "escapes them" in hint


def test_a_stored_rule_shows_the_guides_labels_too(admin):
    admin.set(rules__spam=[{"enabled": True, "match": "any", "terms": ["lotto"],
                            "none_of": []}])
    page = _controls(admin, "/antispam/spam-rules")
    assert page.labels["r0-enabled"] == "Enable this custom filtering rule"
    assert page.options["r0-match"] == ["All of these terms", "Any of these terms"]
    assert page.labels["r0-terms"] == "Identify messages that contain"


def test_real_time_blacklists_page_has_the_guides_labels(admin):
    page = _controls(admin, "/antispam/rbl")
    for row in range(3):
        # the guide's check box and box were both "Real-time blacklist domain name"; each
        # has its own now, numbered, the box keeping the guide's words (antispam21 C2)
        assert page.labels[f"zone{row}_enabled"] == f"Use real-time blacklist {row + 1}"
        assert page.labels[f"zone{row}_zone"] == f"Real-time blacklist {row + 1} domain name"
        assert page.labels[f"zone{row}_codes"] == "Identify spam by return codes"
    assert page.labels["rbl__action"] == \
        "Do the following when a real-time blacklist anti-spam list violation occurs"
    assert page.options["rbl__action"] == ["Drop message", "Log only", "Forward message",
                                           "Reject message"]
    hint = _hint(admin, "/antispam/rbl")
    assert "one return code per line" in hint and "without return codes any listing" in hint
    assert "“Reject message” refuses the sender at MAIL FROM" in hint


def test_custom_blacklist_page_has_the_guides_action_texts(admin):
    page = _controls(admin, "/antispam/blacklist")
    assert page.labels["blacklist__action"] == "Do the following when a violation occurs"
    assert page.options["blacklist__action"] == ["Drop message", "Log only", "Forward message"]


def test_the_action_texts_save_the_same_values(admin):
    fields = form_fields(admin.get("/antispam/blacklist").get_data(as_text=True),
                         "settings-form")
    response = admin.post("/antispam/blacklist", {**fields, "blacklist__action": "log"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert admin.settings()["blacklist.action"] == "log"
    page = admin.get("/antispam/blacklist").get_data(as_text=True)
    assert '<option selected value="log">Log only</option>' in page


@pytest.mark.parametrize("sort, shown, link", [
    ("frequency", "Sort by Frequency", ("sort-domain", "Sort by 2nd-Level Domain")),
    ("domain", "Sort by 2nd-Level Domain", ("sort-frequency", "Sort by Frequency")),
])
def test_auto_whitelist_sorts_are_the_guides(admin, sort, shown, link):
    page = admin.get(f"/antispam/auto-whitelist?sort={sort}").get_data(as_text=True)
    assert f"<strong>{shown}</strong>" in page
    assert re.search(rf'id="{link[0]}">{link[1]}</a>', page)


# --- C2: one wording for the 50-term limit -----------------------------------------------------

def _error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error">(.*?)</span>', page, re.S)
    assert found, f"no error at {field_id}"
    return html.unescape(found.group(1))


@pytest.mark.parametrize("terms, none_of, field, counts", [
    (51, 0, "new-terms", "51 + 0 = 51"),
    (30, 21, "new-none_of", "30 + 21 = 51"),
])
def test_a_rule_past_50_terms_is_told_so_with_the_counts(admin, terms, none_of, field, counts):
    fields = form_fields(admin.get("/antispam/spam-rules").get_data(as_text=True), "rule-new")
    response = admin.post("/antispam/spam-rules/save", {
        **fields, "new-name": "many", "new-match": "any",
        "new-terms": ", ".join(f"t{i}" for i in range(terms)),
        "new-none_of": ", ".join(f"n{i}" for i in range(none_of))})
    assert response.status_code == 200
    assert _error(response.get_data(as_text=True), field) == \
        f'a rule has at most 50 terms, its "none of" terms included ({counts})'
    assert admin.settings()["rules.spam"] == []


# --- C3: a return code is an IPv4 address in 127.0.0.0/8 ----------------------------------------

def test_every_bad_return_code_is_told_what_is_taken(admin):
    fields = form_fields(admin.get("/antispam/rbl").get_data(as_text=True), "rbl-form")
    response = admin.post("/antispam/rbl", {
        **fields, "zone0_enabled": "y", "zone0_zone": "rbl1.test",
        "zone0_codes": "::2\n127.0.0.2/32\n127.000.000.002\nabc\n10.0.0.1"})
    assert response.status_code == 200
    assert _error(response.get_data(as_text=True), "zone0_codes") == \
        f"lines 1, 2, 3, 4 and 5: {IPV4_RULE}"
    assert "IPv6" not in _error(response.get_data(as_text=True), "zone0_codes")
    assert admin.settings()["rbl.zones"] == []


def test_config_set_says_the_same_of_a_bad_return_code(home, capsys):
    zones = [{"zone": "rbl1.test", "return_codes": ["::2", "abc"]}]
    code = main(["config", "set", "rbl.zones", json.dumps(zones), "--home", str(home.root)])
    assert code == 2
    assert capsys.readouterr().err == \
        f"rbl.zones: entry 1: return_codes: entries 1 and 2: {IPV4_RULE}\n"


# --- C4: `.domain` repeats `@domain` in the custom blacklist ------------------------------------

def test_blacklist_dot_domain_beside_at_domain_is_a_repeat(admin):
    fields = form_fields(admin.get("/antispam/blacklist").get_data(as_text=True),
                         "settings-form")
    response = admin.post("/antispam/blacklist", {
        **fields, "blacklist__enabled": "y",
        "blacklist__entries": "@spam.test\nuser@other.test\n.Spam.test"})
    assert response.status_code == 200
    assert _error(response.get_data(as_text=True), "blacklist__entries") == \
        "line 3 repeats line 1: .domain blocks what @domain blocks"
    assert admin.settings()["blacklist.entries"] == []
    # either alone is taken, and a subdomain of it is another entry
    response = admin.post("/antispam/blacklist", {
        **fields, "blacklist__enabled": "y",
        "blacklist__entries": ".spam.test\n@mail.spam.test"})
    assert response.status_code == 302
    assert admin.settings()["blacklist.entries"] == [".spam.test", "@mail.spam.test"]
