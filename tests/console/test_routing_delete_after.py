"""Routing › Delete's confirmation says where mail to the entry goes once it is deleted: the
entry above it that matches it too (and takes that mail now), the entry below it that
matches it, or the default routing (upgrade17 C2: "then follows the default routing" was
said of good.test., a repeat of good.test an older release stored)."""

from __future__ import annotations

import html
import re

from tests.support.core import store_unchecked


def _said(admin, index: int, match: str) -> str:
    page = admin.post(f"/configuration/routing/local/{index}/delete",
                      {"original": match}).get_data(as_text=True)
    [what] = re.findall(r'<p id="confirm-what">(.*?)</p>', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", what)).split())


def test_a_repeat_of_an_entry_above_it_names_that_entry(admin, home):
    store_unchecked(home, {"routing.local": [
        {"match": "good.test", "relay": "127.0.0.1", "port": 2525},
        {"match": "good.test.", "relay": "127.0.0.2", "port": 2526},
        {"match": "*.test", "port": 25},
        {"match": "other.test", "port": 25}]})
    assert _said(admin, 1, "good.test.").endswith(
        "? An entry above it, good.test (destination relay 127.0.0.1, port 2525), matches "
        "it too and routes that mail now: deleting this one changes no routing.")
    assert _said(admin, 0, "good.test").endswith(
        "? Mail to it then follows the entry below it, good.test. (destination relay "
        "127.0.0.2, port 2526).")
    assert _said(admin, 2, "*.test").endswith(
        "? Mail it matches then follows the first other entry that matches it, else the "
        "default routing.")
    assert _said(admin, 3, "other.test").endswith(
        "? An entry above it, *.test (destination relay (MX lookup), port 25), matches it "
        "too and routes that mail now: deleting this one changes no routing.")


def test_an_entry_no_other_matches_follows_the_default_routing(admin, home):
    store_unchecked(home, {"routing.local": [{"match": "corp.test", "port": 25},
                                             {"match": "other.test", "port": 25}]})
    assert _said(admin, 0, "corp.test").endswith(
        "? Mail to it then follows the default routing.")
