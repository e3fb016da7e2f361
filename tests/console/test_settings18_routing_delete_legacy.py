"""Routing › Delete of an entry an older release stored naming an IP address bare (192.0.2.10,
2001:DB8::10, 192.0.2.10.), not as the address literal the current rules store: the core
routes mail to [192.0.2.10] by it (shared.idn.address_pattern), but the confirmation looked
the bare text up as a domain, matched no other entry, and said the mail then follows the
default routing while an entry below it takes that mail (settingsfix18 item 2). Yes deletes
exactly the entry it named. Old values are written straight into the settings table
(tests/console/test_routing_delete_after.py)."""

from __future__ import annotations

import pytest

from tests.support.core import store_unchecked

from .test_delete_confirmations import _confirmation, _flashes
from .test_delete_confirmations import _said as _confirmation_said

BELOW = {"[192.0.2.10]": "[192.0.2.10] (destination relay 127.0.0.1, port 2525)",
         "[IPv6:2001:db8::10]": "[IPv6:2001:db8::10] (destination relay 127.0.0.1, port 2525)"}


@pytest.mark.parametrize("legacy,literal", [("192.0.2.10", "[192.0.2.10]"),
                                            ("192.000.002.010", "[192.0.2.10]"),
                                            ("192.0.2.10.", "[192.0.2.10]"),
                                            ("2001:DB8::10", "[IPv6:2001:db8::10]")])
def test_a_bare_address_entry_names_the_entry_below_it_and_yes_deletes_only_it(
        admin, home, legacy, literal):
    store_unchecked(home, {"routing.local": [
        {"match": "good.test", "port": 25},
        {"match": legacy, "port": 25},
        {"match": literal, "relay": "127.0.0.1", "port": 2525}]})
    page = admin.post("/configuration/routing/local/1/delete",
                      {"original": legacy}).get_data(as_text=True)
    assert _confirmation_said(page) == (
        f"Delete the local routing entry {legacy} (destination relay (MX lookup), port 25)? "
        f"Mail to it then follows the entry below it, {BELOW[literal]}.")

    assert admin.post(*_confirmation(page)).status_code == 302
    assert [(entry["match"], entry["port"]) for entry in admin.settings()["routing.local"]] \
        == [("good.test", 25), (literal, 2525)]
    assert f"{legacy} was removed" in _flashes(admin, "/configuration/routing")


def test_the_literal_below_a_bare_entry_says_the_bare_one_takes_its_mail(admin, home):
    store_unchecked(home, {"routing.local": [
        {"match": "192.0.2.10", "port": 25},
        {"match": "[192.0.2.10]", "relay": "127.0.0.1", "port": 2525}]})
    page = admin.post("/configuration/routing/local/1/delete",
                      {"original": "[192.0.2.10]"}).get_data(as_text=True)
    assert _confirmation_said(page).endswith(
        "? An entry above it, 192.0.2.10 (destination relay (MX lookup), port 25), matches "
        "it too and routes that mail now: deleting this one changes no routing.")
    assert admin.post(*_confirmation(page)).status_code == 302
    assert admin.settings()["routing.local"] == [{"match": "[192.0.2.10]", "port": 25}]
