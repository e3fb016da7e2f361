"""The custom blacklist reads a header From before its encoded words are decoded
(core/scan/antispam/lists.py rule 6; tester "guide", finding 8): an RFC 2047 display name is
a name, never the sender's address, and never hides that address."""

import pytest

from core.scan.antispam.lists import header_addresses
from tests.unit.pipeline.support import verdict_of


def _raw(from_value: str) -> bytes:
    return (f"From: {from_value}\r\nTo: user@local.test\r\nSubject: hi\r\n"
            "Message-ID: <1@ok.test>\r\n\r\nhello\r\n").encode()


def _blacklist(from_value: str, entries):
    _, findings, verdict = verdict_of(_raw(from_value), {"sender": "bounce@elsewhere.test"},
                                      blacklist__enabled=True, blacklist__entries=entries)
    return [f for f in findings if f.event == "sender_blocked"], verdict


@pytest.mark.parametrize("from_value", [
    "=?utf-8?q?jim=40company=2Ecom?= <x@ok.test>",                     # the tester's header
    "=?utf-8?b?amltQGNvbXBhbnkuY29t?= <x@ok.test>",
    "=?utf-8?q?Jim_=3Cjim=40company=2Ecom=3E?= <x@ok.test>",          # Jim <jim@company.com>
    "=?utf-8?q?jim=40company=2Ecom=2C?= <x@ok.test>",                  # jim@company.com,
])
def test_an_encoded_display_name_is_not_taken_for_the_sender(from_value):
    blocked, verdict = _blacklist(from_value, ["@company.com"])
    assert blocked == [] and verdict.disposition == "deliver"


def test_the_real_address_behind_an_encoded_display_name_is_the_one_named():
    blocked, verdict = _blacklist("=?utf-8?q?jim=40company=2Ecom?= <x@ok.test>", ["x@ok.test"])
    assert verdict.disposition == "drop"
    assert [(f.data["address"], f.data["entry"]) for f in blocked] == [("x@ok.test", "x@ok.test")]
    assert "header From x@ok.test matches" in blocked[0].reason


@pytest.mark.parametrize("name", [
    "=?utf-8?q?=22?=",                  # "   a quoted string
    "=?utf-8?q?=28Sales?=",             # (   a comment
    "=?utf-8?q?=3C?=",                  # <
    "=?utf-8?q?=3E?=",                  # >
    "=?utf-8?q?a=3B?=",                 # a;  the end of a group
    "=?utf-8?q?a=3A?=",                 # a:  a group's start
    "=?utf-8?q?a=2C?=",                 # a,  a second mailbox
    "=?utf-8?q?a=5C?=",                 # a\  an escape
    "=?utf-8?q?x=40ok=2Etest?=",        # another address
])
def test_an_encoded_display_name_never_hides_the_real_address(name):
    blocked, verdict = _blacklist(f"{name} <jim@company.com>", ["@company.com"])
    assert verdict.disposition == "drop", name
    assert [f.data["address"] for f in blocked] == ["jim@company.com"]


def test_an_address_written_as_an_encoded_word_is_still_checked():
    # RFC 2047 forbids it, but a mail client may show the decoded text as the sender
    blocked, verdict = _blacklist("=?utf-8?q?jim=40company=2Ecom?=, x@ok.test", ["@company.com"])
    assert verdict.disposition == "drop"
    assert [f.data["address"] for f in blocked] == ["jim@company.com"]


def test_header_addresses_reads_the_values_as_received():
    def decode(text):
        return text.replace("=?utf-8?q?jim=40company=2Ecom?=", "jim@company.com")

    assert header_addresses(["=?utf-8?q?jim=40company=2Ecom?= <x@ok.test>"], decode) == [
        "x@ok.test"]
    assert header_addresses(["=?utf-8?q?jim=40company=2Ecom?="], decode) == ["jim@company.com"]
    assert header_addresses(["=?utf-8?q?jim=40company=2Ecom?="]) == []     # nothing decodes
