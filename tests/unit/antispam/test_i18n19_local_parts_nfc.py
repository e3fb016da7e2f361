"""Local parts compare in canonical composition (NFC; RFC 6532 §3.1), on the entry's side and
the sender's (tester i18n19 B4): "u" + U+0308 (NFD, as macOS keeps names) is "ü"."""

from __future__ import annotations

import pytest

from core.scan.antispam.lists import blacklist_match, whitelist_match
from shared.idn import entry_form

NFD_UBER = "u\u0308bermensch@bu\u0308cher.example"


@pytest.mark.parametrize("entry", ["über*@bücher.example", "übermensch@bücher.example",
                                   "ÜBER*@BÜCHER.EXAMPLE"])
def test_a_decomposed_sender_is_blocked_by_the_composed_entry(entry):
    assert blacklist_match(NFD_UBER, [entry]) == entry


def test_a_decomposed_entry_blocks_the_composed_sender():
    entry = "u\u0308ber*@bücher.example"
    assert blacklist_match("übermensch@bücher.example", [entry]) == entry


def test_a_decomposed_sender_is_whitelisted_by_the_composed_entry():
    assert whitelist_match("jose\u0301@corp.es", ["josé@corp.es"]) == "josé@corp.es"
    assert whitelist_match("Jose\u0301@corp.es", ["JOSÉ@corp.es"]) == "JOSÉ@corp.es"


def test_the_two_forms_of_an_entry_are_one_entry():
    assert entry_form("jose\u0301@corp.es") == entry_form("JOSÉ@corp.es") == "josé@corp.es"


def test_an_accent_still_tells_two_mailboxes_apart():
    # addresses are identifiers: only the form is one, the letters are not read without marks
    assert blacklist_match("uber@bücher.example", ["über*@bücher.example"]) is None
    assert whitelist_match("jose@corp.es", ["josé@corp.es"]) is None
