"""The stored values this release refuses on this host are one list (shared.settings_store
`refused_on_this_host`): the Status page shows it and `config export` warns of it. The Status
page left out the host's refusals, a broadcast address of the host's networks stored in
smtp.listen or dns.resolvers by an older release, which the export named (settingsfix18
item 1). 127.255.255.255, the broadcast of the loopback's 127.0.0.0/8, is one on every Linux
host (tests/integration/test_listen_broadcast_stored.py)."""

from __future__ import annotations

import html

from shared.cli import main
from tests.support.core import store_unchecked

from .test_configuration import _form_fields
from .test_upgraded_settings import _warning

BROADCAST = "127.255.255.255"


def _export_warnings(home, capsys) -> list[str]:
    capsys.readouterr()
    assert main(["config", "export", "--home", str(home.root)]) == 0
    return capsys.readouterr().err.splitlines()[1:]


def _status_items(admin) -> list[str]:
    """`KEY: rule` of each item of the Status page's list, without its page."""
    return [f"{item.split(' ', 1)[0]}: {item.split('): ', 1)[1]}"
            for item in _warning(admin.get("/status/").get_data(as_text=True))]


def test_status_names_a_stored_broadcast_listen_and_resolver_address_as_export_does(
        admin, home, capsys):
    store_unchecked(home, {"smtp.listen": ["127.0.0.1", BROADCAST],
                           "dns.resolvers": ["127.0.0.1", BROADCAST],
                           "address_chars.chars": "%%!"})
    items = _status_items(admin)
    assert [item.split(":", 1)[0] for item in items] == [
        "smtp.listen", "dns.resolvers", "address_chars.chars"]
    # a listing of stored values, where nothing is being changed: without a refused
    # change's "; the old value is kept" (upgrade20 C2)
    assert (f"smtp.listen: entry 2: {BROADCAST} is a broadcast address of this host's "
            "networks, which takes no connections") in items
    assert (f"dns.resolvers: entry 2: {BROADCAST} is a broadcast address of this host's "
            "networks, which no DNS server answers from") in items
    assert _export_warnings(home, capsys) == items


def test_a_save_that_keeps_a_stored_broadcast_address_is_refused_keeping_the_old_value(
        admin, home):
    """The refusal of a change keeps its ending; only the listing leaves it out."""
    store_unchecked(home, {"dns.resolvers": ["127.0.0.1", BROADCAST]})
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__max_incoming"] = "21"
    page = html.unescape(admin.post("/configuration/setup", data).get_data(as_text=True))
    assert (f"line 2: {BROADCAST} is a broadcast address of this host's networks, which no "
            "DNS server answers from; the old value is kept") in page
    assert admin.settings()["smtp.max_incoming"] != 21


def test_a_stored_listen_address_in_an_older_form_is_judged_as_held(admin, home, capsys):
    """An address the host lacks is refused as a change only (shared/ports.py rules); one
    stored in the form an older release kept (::ffff:192.0.2.1, stored now as 192.0.2.1)
    was tried as a new one, and named as 'not an address of this host'."""
    store_unchecked(home, {"smtp.listen": ["127.0.0.1", "::ffff:192.0.2.1"]})
    assert _status_items(admin) == []
    assert _export_warnings(home, capsys) == []
