"""A certificate request's fields: a required one of spaces only is empty, and control
characters are refused by the field's name.

Regression tests for certs17 finding C7: an Organization of spaces only passed "required"
and O was left out of the request without a word; `a\\x01b` went into the subject as typed.
"""

from __future__ import annotations

import html
import re

import pytest

from console import certs

REQUEST_URL = "/configuration/setup/certificates/request"
REQUEST = {"request-common_name": "mail.example.com", "request-organization": "Example Ltd",
           "request-unit": "IT", "request-city": "Springfield", "request-state": "Illinois",
           "request-country": "US", "request-email": "admin@example.com"}


def _field_error(page: str, name: str) -> str:
    [error] = re.findall(rf'<span class="error" id="request-{name}-error">(.*?)</span>', page)
    return html.unescape(error)


@pytest.mark.parametrize("name", ["organization", "city", "state", "country", "email",
                                  "common_name"])
def test_a_required_field_of_spaces_only_is_refused_as_empty(admin, home, name):
    response = admin.post(REQUEST_URL, {**REQUEST, f"request-{name}": "   "})
    assert response.status_code == 200
    assert _field_error(response.get_data(as_text=True), name) == "This field is required."
    assert not certs.request_path(home).exists()


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("organization", "a\x01b", "Organization"),
    ("unit", "IT\tdept", "Organization Unit"),
    ("city", "Spring\nfield", "City/Locality"),
    ("common_name", "mail\x7f.example.com", "Common Name"),
    ("state", "Illi\u202enois", "State/Province"),
])
def test_control_characters_are_refused_naming_the_field(admin, home, name, value, shown):
    response = admin.post(REQUEST_URL, {**REQUEST, f"request-{name}": value})
    assert response.status_code == 200
    assert _field_error(response.get_data(as_text=True), name) == (
        f"{shown} cannot hold control characters (a tab, a line break, a bidi control); "
        "type it as one line of text")
    assert not certs.request_path(home).exists()


def test_an_optional_field_of_spaces_only_is_left_out(admin, home):
    response = admin.post(REQUEST_URL, {**REQUEST, "request-unit": "  "})
    assert response.status_code == 302
    assert certs.request_path(home).exists()
