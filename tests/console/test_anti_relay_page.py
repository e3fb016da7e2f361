"""Filtering Policy › Anti-Relay says what its choice does (tester dayone17, finding 1): a
bare "Allow" sat just above "Allowed hosts" and read as "allow the hosts below"; one click
made the gateway an open relay, and no page said so. The page now names the choices
unambiguously, shows the setting's help beside them, and warns while relaying is allowed."""

from __future__ import annotations

import html
import re

from console.filtering.forms import RELAY_MODE_CHOICES
from shared.settings import OPEN_RELAY_WARNING, SCHEMA

from .test_configuration import _form_fields

URL = "/filtering/anti-relay"


def _page(admin) -> str:
    return html.unescape(admin.get(URL).get_data(as_text=True))


def _options(page: str) -> dict[str, str]:
    select = re.search(r'<select[^>]*name="relay__mode"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no relay.mode select on the page"
    return {value: label.strip() for value, label in
            re.findall(r'<option[^>]*value="([^"]*)"[^>]*>(.*?)</option>', select.group(1))}


def test_the_choices_say_which_one_opens_the_relay(admin):
    options = _options(_page(admin))
    assert set(options) == set(SCHEMA["relay.mode"].kind.choices) == \
        {value for value, _label in RELAY_MODE_CHOICES}
    assert "open relay" in options["allow"] and "any client" in options["allow"]
    assert options["deny_except"] == "Do not allow, except for listed hosts"   # the guide's


def test_the_page_shows_what_the_setting_does(admin):
    page = _page(admin)
    note = re.search(r'<p class="hint" id="relay.mode-hint">(.*?)</p>', page, re.S)
    assert note, "no note on the relay choice"
    assert note.group(1) == SCHEMA["relay.mode"].help
    assert "open relay" in note.group(1)


def test_saving_allow_warns_on_the_page_until_it_is_set_back(admin):
    assert OPEN_RELAY_WARNING not in _page(admin)
    data = _form_fields(admin, URL)
    data["relay__mode"] = "allow"
    assert admin.post(URL, data).status_code == 302
    assert admin.settings()["relay.mode"] == "allow"
    assert OPEN_RELAY_WARNING in _page(admin)
    data = _form_fields(admin, URL)
    data["relay__mode"] = "deny_except"
    assert admin.post(URL, data).status_code == 302
    assert OPEN_RELAY_WARNING not in _page(admin)
