"""What the Anti-spam Policy pages say about behaviour an administrator following the guide
would not expect (tester "guide"): finding 7, every auto-whitelist exclusion covers its
subdomains and the guide's leading period is not kept; finding 9, clients allowed to relay
are never checked against the real-time blacklists (that behaviour is
tests/integration/test_antispam_rbl.py's)."""

from __future__ import annotations

import html
import re

from core.scan.antispam.lists import is_excluded


def _text(page: str, element_id: str) -> str:
    found = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(2)))


def test_auto_whitelist_page_says_every_exclusion_covers_its_subdomains(admin):
    response = admin.post("/antispam/auto-whitelist", {
        "whitelist__auto__enabled": "y", "whitelist__auto__exclusions": ".dotted.test\nexact.test"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    # what the note describes: the period is dropped, and an entry without one is a wildcard
    exclusions = admin.settings()["whitelist.auto.exclusions"]
    assert exclusions == ["dotted.test", "exact.test"]
    assert is_excluded("sub.exact.test", exclusions) and is_excluded("dotted.test", exclusions)
    page = admin.get("/antispam/auto-whitelist").get_data(as_text=True)
    note = _text(page, "exclusions-note")
    assert "subdomains" in note and "leading period" in note and "not stored" in note
    label = re.search(r'<label for="whitelist__auto__exclusions">(.*?)</label>', page,
                      re.S).group(1)
    assert "subdomains" in label and "leading period is optional" in label


def test_rbl_page_says_relay_clients_are_never_checked(admin):
    page = admin.get("/antispam/rbl").get_data(as_text=True)
    note = _text(page, "rbl-relay-note")
    assert "never checked against these zones" in note and "permit_mynetworks" in note
    assert 'href="/filtering/anti-relay"' in page
