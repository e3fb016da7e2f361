"""A settings field left out of a posted form is "not changed", an empty one is a value
(console18 B3: a post of the default route without its host field cleared
`routing.default`, and non-local mail went by MX)."""

from __future__ import annotations

from tests.console.test_configuration import _form_fields


def test_a_default_route_post_without_the_host_field_changes_nothing(admin):
    admin.set(routing__default={"host": "relay.example.com", "port": 2525})
    admin.post("/configuration/routing/default", {"default-routing__default___port": "46689"})
    assert admin.settings()["routing.default"] == {"host": "relay.example.com", "port": 2525}


def test_an_empty_host_still_clears_the_default_route(admin):
    admin.set(routing__default={"host": "relay.example.com", "port": 2525})
    admin.post("/configuration/routing/default", {"default-routing__default___host": "",
                                                  "default-routing__default___port": "2525"})
    assert admin.settings()["routing.default"] is None


def test_a_text_field_left_out_keeps_its_value_and_the_others_are_saved(admin):
    admin.set(smtp__notify_from="Gateway")
    data = _form_fields(admin, "/configuration/setup")
    del data["smtp__notify_from"]
    data["dns__timeout_seconds"] = "7"
    response = admin.post("/configuration/setup", data)
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert admin.settings()["smtp.notify_from"] == "Gateway"
    assert admin.settings()["dns.timeout_seconds"] == 7
