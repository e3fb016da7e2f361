"""Anti-spam Policy › Auto-generated Whitelist: Delete asks first, as every other Delete of the
console does (tests/console/test_delete_confirmations.py): a page naming the selected entries,
nothing deleted before Yes, then the Delete of exactly the entries it named, or of nothing
when they left the list meanwhile. It deleted at once (settingsfix18 item 3)."""

from __future__ import annotations

import html

from .test_antispam import _seed_auto
from .test_delete_confirmations import _confirmation, _flashes, _said

PAGE = "/antispam/auto-whitelist"
MANAGE = "/antispam/auto-whitelist/manage"


def _seeded(home) -> None:
    _seed_auto(home, [("zeta.org", 40, 2.0, 9.0), ("alpha.net", 5, 0.5, 9.0),
                      ("b.example.com", 5, 1.0, 9.0)])


def test_delete_asks_first_then_deletes_exactly_the_entries_it_listed(admin, home):
    _seeded(home)
    response = admin.post(MANAGE + "?sort=domain",
                          {"domains": ["zeta.org", "alpha.net", "gone.example"], "delete": "y"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert admin.commands() == []                           # nothing asked before Yes
    assert "<title>Deleting Auto-generated Whitelist Entries · Auto-generated Whitelist · " \
        in page
    assert _said(page).startswith("Delete these 2 entries from the auto-generated whitelist?")
    assert ("1 of the selected entries is no longer in the auto-generated whitelist and is "
            "not listed") in html.unescape(page)
    assert "zeta.org" in page and "alpha.net" in page and "b.example.com" not in page

    action, data = _confirmation(page)
    assert sorted(data["domains"]) == ["alpha.net", "zeta.org"]
    response = admin.post(html.unescape(action), data)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(PAGE + "?sort=domain")
    assert [(c["kind"], c["args"]) for c in admin.commands()] == [
        ("whitelist.auto.delete", {"domains": ["alpha.net", "zeta.org"]})]
    assert "2 entries: deleted." in _flashes(admin, PAGE)


def test_a_confirmation_of_entries_gone_meanwhile_deletes_nothing(admin, home):
    _seeded(home)
    page = admin.post(MANAGE, {"domains": ["alpha.net"], "delete": "y"}).get_data(as_text=True)
    assert _said(page).startswith("Delete this entry from the auto-generated whitelist?")
    action, data = _confirmation(page)
    # meanwhile, in another tab, the entry is moved to the exclusion list
    admin.post(MANAGE, {"domains": ["alpha.net"], "to_exclusions": "y"})
    asked = len(admin.commands())
    assert admin.post(html.unescape(action), data).status_code == 302
    assert len(admin.commands()) == asked
    assert "Nothing was deleted" in _flashes(admin, PAGE)
    # a selection gone before its confirmation is shown: said, and no confirmation
    response = admin.post(MANAGE, {"domains": ["alpha.net"], "delete": "y"})
    assert response.status_code == 302
    assert "Nothing was deleted" in _flashes(admin, PAGE)
    assert len(admin.commands()) == asked


def test_the_moves_still_act_at_once(admin, home):
    """Add to Custom Whitelist and Add to Exclusion List delete nothing for good (the entry
    goes to a list it can be taken from): no confirmation, as before."""
    _seeded(home)
    assert admin.post(MANAGE, {"domains": ["zeta.org"], "to_exclusions": "y"}).status_code \
        == 302
    assert admin.settings()["whitelist.auto.exclusions"] == ["zeta.org"]
