"""av.central_quarantine (shared/settings_entries.py CentralQuarantine): host, port and the
optional quarantine mailbox copies are addressed to (guide finding 1). The {"host", "port"}
form stored and scripted before stays valid as it was."""

from __future__ import annotations

import pytest

from shared.settings import SCHEMA, SettingError, defaults, parse_cli_value, validate_changes
from shared.settings_entries import CentralQuarantine
from shared.settings_types import RuleError

KEY = "av.central_quarantine"


@pytest.mark.parametrize("text, stored", [
    ('{"host": "127.0.0.1", "port": 2525}', {"host": "127.0.0.1", "port": 2525}),
    ('{"host": "cq.example.com"}', {"host": "cq.example.com", "port": 25}),
    ('{"host": "cq.example.com", "port": 25, "mailbox": "vault@example.com"}',
     {"host": "cq.example.com", "port": 25, "mailbox": "vault@example.com"}),
    ('{"host": "cq.example.com", "mailbox": ""}', {"host": "cq.example.com", "port": 25}),
    ("null", None),
])
def test_config_set_accepts_the_two_field_form_and_a_mailbox(text, stored):
    changes = validate_changes(defaults(), {KEY: parse_cli_value(KEY, text)})
    assert changes[KEY] == stored


def test_every_bad_field_is_named_at_once():
    with pytest.raises(RuleError) as caught:
        CentralQuarantine().check({"host": "bad host", "port": 0, "mailbox": "nobody"})
    assert caught.value.rule == (
        "host: must be a host name or an IP address; port: must be between 1 and 65535; "
        "mailbox: must be a full email address such as admin@example.com")


def test_an_unknown_field_is_refused():
    with pytest.raises(SettingError) as caught:
        validate_changes(defaults(), {KEY: {"host": "cq.example.com", "tls": True}})
    assert caught.value.errors == [(KEY, "unknown field 'tls'")]


def test_the_help_says_where_copies_go_and_which_key_signs_them():
    assert "quarantine@<host>" in SCHEMA[KEY].help
    assert "quarantine.reinsertion_key" in SCHEMA[KEY].help
    assert "same key" in SCHEMA["quarantine.reinsertion_key"].help
