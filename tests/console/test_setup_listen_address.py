"""Configuration › Setup refuses an smtp.listen address this host does not have, as it
refuses a port another program holds (settings finding 2; shared/ports.py)."""

from __future__ import annotations

import html

from .test_configuration import _form_fields


def test_an_address_this_host_lacks_is_refused_by_line_and_the_old_value_kept(admin):
    before = admin.settings()["smtp.listen"]
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__listen"] = "127.0.0.1\n\n192.0.2.1"      # TEST-NET-1: never this host's
    response = admin.post("/configuration/setup", data)
    assert response.status_code == 200
    assert ("line 3: 192.0.2.1 is not an address of this host (Cannot assign requested "
            "address); the old value is kept") in html.unescape(response.get_data(as_text=True))
    assert admin.settings()["smtp.listen"] == before


def test_an_address_of_this_host_is_saved(admin):
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__listen"] = "127.0.0.1\n127.0.0.2"
    assert admin.post("/configuration/setup", data).status_code == 302
    assert admin.settings()["smtp.listen"] == ["127.0.0.1", "127.0.0.2"]
