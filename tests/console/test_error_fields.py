"""A refused logon, report range or default route says what is wrong on the field it is
about: the message is an alert or beside the field, the field is marked aria-invalid and
described by the message, and the focus (autofocus, there is no script) is on the field to
correct (accessibility findings C3, C4, C5: the logon said it in a role=status note read by
no screen reader, with the focus on an empty User name; a bad From/To was tied to neither
picker; a bad default-route port was tied to Host)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest


class _Elements(HTMLParser):
    """Every element with an id: its tag, attributes and text."""

    def __init__(self, page: str):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self._open: list[dict] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        element = {"tag": tag, "attrs": attributes, "text": ""}
        if "id" in attributes:
            self.by_id[attributes["id"]] = element
        if tag not in ("input", "br", "meta", "link"):
            self._open.append(element)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data


def _elements(response) -> dict[str, dict]:
    return _Elements(response.get_data(as_text=True)).by_id


def _described(elements, field: str) -> str:
    """The text of the elements that describe `field` (aria-describedby)."""
    ids = (elements[field]["attrs"].get("aria-describedby") or "").split()
    return " ".join(elements[i]["text"].strip() for i in ids)


def _focused(elements) -> list[str]:
    return [i for i, e in elements.items() if "autofocus" in e["attrs"]]


# --- logon (C3) ------------------------------------------------------------------------------

def test_an_empty_logon_is_an_alert_tied_to_the_fields_with_the_focus_on_user_name(console):
    response = console.post("/logon", {"username": "", "password": ""})
    elements = _elements(response)
    assert elements["logon-errors"]["attrs"].get("role") == "alert"
    for field, message in (("username", "Enter your user name."),
                           ("password", "Enter your password.")):
        assert elements[field]["attrs"].get("aria-invalid") == "true"
        assert _described(elements, field) == message
        assert message in elements["logon-errors"]["text"]
    assert _focused(elements) == ["username"]


def test_an_empty_password_takes_the_focus_and_user_name_is_not_marked(console):
    elements = _elements(console.post("/logon", {"username": "admin", "password": ""}))
    assert _focused(elements) == ["password"]
    assert _described(elements, "password") == "Enter your password."
    assert "aria-invalid" not in elements["username"]["attrs"]
    assert elements["username"]["attrs"]["value"] == "admin"


def test_a_wrong_password_is_an_alert_describing_both_fields_with_the_focus_on_password(
        console):
    response = console.post("/logon", {"username": "admin", "password": "wrong-password"})
    assert response.status_code == 200
    elements = _elements(response)
    assert elements["logon-errors"]["attrs"].get("role") == "alert"
    for field in ("username", "password"):
        assert elements[field]["attrs"].get("aria-invalid") == "true"
        assert _described(elements, field) == "The user name or password is incorrect."
    assert _focused(elements) == ["password"]


def test_the_logon_page_as_first_shown_marks_nothing(console):
    elements = _elements(console.get("/logon"))
    assert "logon-errors" not in elements and _focused(elements) == ["username"]
    assert not any("aria-invalid" in e["attrs"] for e in elements.values())


# --- reporting From/To (C4) ---------------------------------------------------------------

@pytest.mark.parametrize("tab", ["summary", "detail"])
def test_a_range_ending_before_it_starts_marks_from_and_to_with_the_focus_on_from(admin, tab):
    response = admin.post(f"/reporting/{tab}", {"start": "2026-11-30T10:00",
                                                "end": "2026-11-29T10:00", "generate": "1"},
                          follow_redirects=True)
    assert response.status_code == 400
    elements = _elements(response)
    for field in ("start", "end"):
        assert elements[field]["attrs"].get("aria-invalid") == "true"
        assert _described(elements, field) == "the start of the range must be before its end"
    assert _focused(elements) == ["start"]


def test_a_bad_to_written_to_csv_marks_to_only(admin):
    response = admin.post("/reporting/detail", {"start": "2026-11-29T10:00", "end": "garbage",
                                                "write_csv": "1"})
    assert response.status_code == 400
    elements = _elements(response)
    assert "garbage" in _described(elements, "end") and _focused(elements) == ["end"]
    assert "aria-invalid" not in elements["start"]["attrs"]
    assert "report-errors" not in elements       # nothing is left without its field
    assert not list(admin.home.logs.glob("MAILMOAT*"))


# --- Routing › Default Routing (C5) ---------------------------------------------------------

HOST, PORT = "default-routing__default___host", "default-routing__default___port"


def test_a_bad_default_route_port_marks_port_and_takes_the_focus_not_host(admin):
    response = admin.post("/configuration/routing/default", {HOST: "smtp.example.com",
                                                             PORT: "abc"})
    assert response.status_code == 200
    elements = _elements(response)
    assert elements[PORT]["attrs"].get("aria-invalid") == "true"
    assert "port must be a whole number" in _described(elements, PORT)
    assert "aria-invalid" not in elements[HOST]["attrs"]
    assert _focused(elements) == [PORT]
    assert admin.settings()["routing.default"] is None


def test_a_bad_default_route_host_still_marks_host(admin):
    elements = _elements(admin.post("/configuration/routing/default",
                                    {HOST: "bad host!", PORT: "25"}))
    assert elements[HOST]["attrs"].get("aria-invalid") == "true"
    assert "aria-invalid" not in elements[PORT]["attrs"]
    assert _focused(elements) == [HOST]
