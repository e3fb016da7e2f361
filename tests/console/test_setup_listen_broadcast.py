"""Configuration › Setup refuses a broadcast address of the host's networks for smtp.listen,
as `config set` does (shared/ports.py rules; listen17 item 2)."""

from __future__ import annotations

import html

from .test_configuration import _form_fields


def test_the_loopback_networks_broadcast_address_is_refused_by_line(admin):
    before = admin.settings()["smtp.listen"]
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__listen"] = "127.0.0.1\n127.255.255.255"     # the broadcast of 127.0.0.0/8
    response = admin.post("/configuration/setup", data)
    assert response.status_code == 200
    assert ("line 2: 127.255.255.255 is a broadcast address of this host's networks, which "
            "takes no connections; the old value is kept") in \
        html.unescape(response.get_data(as_text=True))
    assert admin.settings()["smtp.listen"] == before


def test_the_other_fields_errors_are_named_beside_it(admin):
    """The host's refusal of the listen address came alone; a bad host name saved with it
    was named only at the next save (regress17 R4)."""
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__listen"] = "127.255.255.255"
    data["smtp__hostname"] = "localhost"
    page = html.unescape(admin.post("/configuration/setup", data).get_data(as_text=True))
    assert "127.255.255.255 is a broadcast address of this host's networks" in page
    assert "not localhost: localhost names every machine to itself" in page
