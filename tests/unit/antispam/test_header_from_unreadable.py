"""A header From that Python's address parser cannot read (x4-cost finding 13): the addresses
in its text are still found, and the envelope sender is checked whatever the header holds
(core/scan/antispam/lists.py rule 5, core/pipeline/checks/blacklist.py)."""

import pytest

from core.scan.antispam.lists import header_addresses
from tests.unit.pipeline.support import verdict_of

NESTING = 2000      # "(" or ":" this many times: getaddresses raises RecursionError


def _raw(from_value: bytes) -> bytes:
    return (b"From: " + from_value + b"\r\nTo: user@local.test\r\nSubject: hi\r\n"
            b"Message-ID: <1@b.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhello\r\n")


@pytest.mark.parametrize("unit", ["(", ":"])
def test_unreadable_header_from_yields_the_addr_specs_in_its_text(unit):
    assert header_addresses([unit * NESTING]) == []
    assert header_addresses([unit * NESTING + " Spammer@Evil.test"]) == ["Spammer@Evil.test"]
    assert header_addresses([unit * NESTING + "<a@b.test>, c@d.test"]) == ["a@b.test", "c@d.test"]


def test_one_unreadable_value_does_not_hide_the_others():
    assert header_addresses(["(" * NESTING, "Joe <joe@example.com>"]) == ["joe@example.com"]
    assert header_addresses(['"Joe" <joe@example.com>, x@y.test']) == ["joe@example.com",
                                                                       "x@y.test"]


def test_an_encoded_address_in_an_unreadable_header_is_found_decoded():
    def decode(text):
        return text.replace("=?utf-8?q?joe=40example=2Ecom?=", "joe@example.com")

    value = "(" * NESTING + " =?utf-8?q?joe=40example=2Ecom?="
    assert header_addresses([value], decode) == ["joe@example.com"]


def test_a_long_word_without_at_in_an_unreadable_header_yields_nothing():
    # a run without "@" is scanned from its start only (no result, and no quadratic scan)
    assert header_addresses(["(" * NESTING + "a" * 400_000 + ")"]) == []


@pytest.mark.parametrize("unit", [b"(", b":"])
def test_envelope_sender_is_blacklisted_whatever_the_header_from_holds(unit):
    view, findings, verdict = verdict_of(
        _raw(unit * NESTING), {"sender": "a@b.test"}, blacklist__enabled=True,
        blacklist__entries=["a@b.test"], scan__unprocessable="deliver")
    assert verdict.disposition == "drop" and verdict.rule == "blacklist.entries"
    assert "scan_error" not in [f.event for f in findings]


def test_header_from_address_behind_unreadable_comments_is_blacklisted():
    view, findings, verdict = verdict_of(
        _raw(b"(" * NESTING + b" spammer@evil.test"), {"sender": "a@b.test"},
        blacklist__enabled=True, blacklist__entries=["spammer@evil.test"],
        scan__unprocessable="deliver")
    assert verdict.disposition == "drop"
    blocked = [f for f in findings if f.rule == "blacklist.entries"]
    assert blocked and blocked[0].data["where"] == "header From"
    assert "scan_error" not in [f.event for f in findings]
