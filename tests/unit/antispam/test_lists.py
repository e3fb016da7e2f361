"""Sender lists: the guide's whitelist and blacklist examples (guide §5), SPEC §3 match order."""

import pytest

from core.scan.antispam.lists import (blacklist_match, header_addresses, is_excluded,
                                      parent_domains, whitelist_match)


# --- custom whitelist (guide §5 "Creating a custom whitelist") ---------------------------------

def test_period_entry_is_a_wildcard_for_subdomains_guide_example():
    # guide: ".company.com would match mail.company.com"
    assert whitelist_match("joe@mail.company.com", [".company.com"]) == ".company.com"
    assert whitelist_match("joe@company.com", [".company.com"]) == ".company.com"


def test_at_entry_matches_that_domain_only():
    assert whitelist_match("joe@company.com", ["@company.com"]) == "@company.com"
    assert whitelist_match("joe@mail.company.com", ["@company.com"]) is None
    assert whitelist_match("joe@notcompany.com", [".company.com"]) is None


def test_full_address_entry_guide_example():
    # guide: "fully qualified addresses (for example, user@company.com)"
    assert whitelist_match("User@Company.com", ["user@company.com"]) == "user@company.com"
    assert whitelist_match("other@company.com", ["user@company.com"]) is None


def test_null_sender_is_never_whitelisted():
    assert whitelist_match("", ["@company.com", ".company.com"]) is None


# --- custom blacklist (guide §5 "Blocking by a custom blacklist"; SPEC §3 blacklist.*) --------

def test_domain_entry_blocks_subdomains_but_not_the_reverse_spec_example():
    # SPEC: "@example.com also blocks user@mail.example.com, while @mail.example.com does not
    # block user@example.com"
    assert blacklist_match("user@mail.example.com", ["@example.com"]) == "@example.com"
    assert blacklist_match("user@example.com", ["@mail.example.com"]) is None


def test_subdomain_entry_blocks_only_that_subdomain_guide_note():
    # guide: "block a subdomain (server.company.com) ... blocks only that subdomain"
    entries = ["@server.company.com"]
    assert blacklist_match("a@server.company.com", entries) == "@server.company.com"
    assert blacklist_match("a@company.com", entries) is None
    assert blacklist_match("a@other.company.com", entries) is None


@pytest.mark.parametrize("entries, expected", [
    # exact address first, whatever the list order
    (["@example.com", "sp*@mail.example.com", "@mail.example.com", "spammer@mail.example.com"],
     "spammer@mail.example.com"),
    # then wildcard local part for the same domain
    (["@example.com", "@mail.example.com", "spam*@mail.example.com"], "spam*@mail.example.com"),
    # then the domain itself
    (["@example.com", "@mail.example.com"], "@mail.example.com"),
    # then parent domains, nearest first
    (["@com", "@example.com"], "@example.com"),
    (["@com"], "@com"),
])
def test_match_order_exact_wildcard_domain_parents(entries, expected):
    assert blacklist_match("spammer@mail.example.com", entries) == expected


def test_wildcards_in_the_local_part():
    assert blacklist_match("sales12@ads.test", ["sales??@ads.test"]) == "sales??@ads.test"
    assert blacklist_match("sales123@ads.test", ["sales??@ads.test"]) is None
    assert blacklist_match("anyone@ads.test", ["*@ads.test"]) == "*@ads.test"
    # a wildcard entry is for its own domain only
    assert blacklist_match("anyone@sub.ads.test", ["*@ads.test"]) is None


def test_case_insensitive_and_trailing_dot():
    # the entry is named as it was configured
    assert blacklist_match("Spammer@Example.COM.", ["SPAMMER@example.com"]) == "SPAMMER@example.com"


def test_null_sender_matches_nothing():
    assert blacklist_match("", ["@example.com"]) is None


def test_helpers():
    assert parent_domains("a.b.example.com") == ["b.example.com", "example.com", "com"]
    assert is_excluded("mail.example.com", ["example.com"])
    assert not is_excluded("example.org", ["example.com"])
    assert header_addresses(['"Joe" <joe@example.com>, x@y.test']) == ["joe@example.com",
                                                                       "x@y.test"]


def test_period_entries_and_root_dots():
    # the guide: blacklist domains "must begin with either @ or a period"
    assert blacklist_match("x@mail.spam.test", [".spam.test"]) == ".spam.test"
    assert blacklist_match("x@spam.test", [".spam.test"]) == ".spam.test"
    assert blacklist_match("x@other.test", [".spam.test"]) is None
    # entries stored before validation stripped a root dot still match
    assert blacklist_match("x@spam.test", ["@spam.test."]) == "@spam.test."
    assert whitelist_match("x@good.test", ["@good.test."]) == "@good.test."


@pytest.mark.parametrize("entry", ["@müll.example", "@xn--mll-hoa.example", "@MÜLL.example"])
@pytest.mark.parametrize("sender", ["spam@müll.example", "spam@xn--mll-hoa.example",
                                    "Spam@Müll.Example"])
def test_a_domain_matches_in_either_idn_form(entry, sender):
    # SMTPUTF8 mail carries U-labels; an administrator may type either form
    assert blacklist_match(sender, [entry]) == entry
    assert blacklist_match(sender.replace("@", "@mail."), [entry]) == entry    # parents too
    assert whitelist_match(sender, [entry]) == entry
    assert whitelist_match(sender, ["." + entry[1:]]) == "." + entry[1:]
    assert is_excluded(sender.partition("@")[2], [entry[1:]])
    assert blacklist_match(sender, ["spam@" + entry[1:]]) == "spam@" + entry[1:]
