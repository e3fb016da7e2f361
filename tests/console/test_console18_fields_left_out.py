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


# console18 R4: the port and the extra boxes of a HostPort are fields of their own

def test_a_default_route_post_without_the_port_field_keeps_the_port(admin):
    admin.set(routing__default={"host": "relay.example.com", "port": 2525})
    admin.post("/configuration/routing/default",
               {"default-routing__default___host": "relay.example.com"})
    assert admin.settings()["routing.default"] == {"host": "relay.example.com", "port": 2525}


def test_a_new_host_without_the_port_field_keeps_the_stored_port(admin):
    admin.set(routing__default={"host": "relay.example.com", "port": 2525})
    admin.post("/configuration/routing/default",
               {"default-routing__default___host": "relay2.example.com"})
    assert admin.settings()["routing.default"] == {"host": "relay2.example.com", "port": 2525}


def test_an_empty_port_box_is_still_the_default_port(admin):
    admin.set(routing__default={"host": "relay.example.com", "port": 2525})
    admin.post("/configuration/routing/default", {"default-routing__default___host":
                                                  "relay.example.com",
                                                  "default-routing__default___port": ""})
    assert admin.settings()["routing.default"] == {"host": "relay.example.com", "port": 25}


def _antivirus_page(admin, **quarantine_fields):
    data = {name: value for name, value in _form_fields(admin, "/antivirus/").items()
            if not name.startswith("av__central_quarantine___")}
    data.update({f"av__central_quarantine___{name}": value
                 for name, value in quarantine_fields.items()})
    return admin.post("/antivirus/", data)


def test_a_central_quarantine_post_without_the_mailbox_field_keeps_the_mailbox(admin):
    stored = {"host": "cq.example.test", "port": 2525, "mailbox": "vault@example.test"}
    admin.set(av__central_quarantine=stored)
    response = _antivirus_page(admin, host="cq.example.test", port="2525")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert admin.settings()["av.central_quarantine"] == stored


def test_an_empty_host_clears_the_central_quarantine_with_the_mailbox_field_left_out(admin):
    admin.set(av__central_quarantine={"host": "cq.example.test", "port": 2525,
                                      "mailbox": "vault@example.test"})
    response = _antivirus_page(admin, host="", port="2525")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert admin.settings()["av.central_quarantine"] is None
