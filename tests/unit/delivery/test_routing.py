"""Routing: local list (wildcards, first match, relay or MX), default relay, MX."""

import pytest

from core.delivery.routing import NextHop, domain_of, route


def settings(local=(), default=None):
    return {"routing.local": list(local), "routing.default": default}


def test_no_rules_means_mx_of_the_domain():
    assert route("Example.COM.", settings()) == NextHop("mx", "example.com", 25,
                                                        rule="routing.default")


def test_local_relay_wins_over_default_and_marks_local():
    s = settings([{"match": "example.com", "relay": "mail.example.com", "port": 2525}],
                 {"host": "smarthost.test", "port": 587})
    hop = route("EXAMPLE.com", s)
    assert hop == NextHop("relay", "mail.example.com", 2525, True, "routing.local:example.com")
    assert hop.key == "relay:mail.example.com:2525"


def test_local_without_relay_uses_mx_of_matched_name():
    hop = route("example.com", settings([{"match": "example.com", "port": 25}]))
    assert (hop.kind, hop.name, hop.is_local) == ("mx", "example.com", True)


def test_wildcard_match_without_relay_uses_recipient_domain():
    hop = route("sub.example.com", settings([{"match": "*.example.com", "port": 26}]))
    assert (hop.kind, hop.name, hop.port, hop.is_local) == ("mx", "sub.example.com", 26, True)


def test_question_mark_and_first_match_wins():
    s = settings([{"match": "mx?.test", "relay": "first.test", "port": 25},
                  {"match": "*.test", "relay": "second.test", "port": 25}])
    assert route("mx1.test", s).name == "first.test"
    assert route("mx12.test", s).name == "second.test"


def test_default_relay_for_non_local():
    s = settings([{"match": "local.test", "relay": "in.test", "port": 25}],
                 {"host": "smarthost.test", "port": 587})
    hop = route("elsewhere.test", s)
    assert hop == NextHop("relay", "smarthost.test", 587, False, "routing.default")


def test_domain_literal_goes_to_the_address():
    assert route("[192.0.2.7]", settings()) == NextHop("relay", "192.0.2.7", 25,
                                                       rule="routing.default")
    assert route("[IPv6:2001:db8::1]", settings()).name == "2001:db8::1"


def test_an_ip_entry_routes_mail_to_its_address_literal_before_the_default():
    """tester guide36 finding 3: u@[192.0.2.10] went by routing.default under its entry."""
    s = settings([{"match": "[192.0.2.10]", "relay": "in.test", "port": 2525},
                  {"match": "[IPv6:2001:db8::10]", "relay": "in6.test", "port": 2526}],
                 {"host": "smarthost.test", "port": 587})
    assert route("[192.0.2.10]", s) == NextHop("relay", "in.test", 2525, True,
                                               "routing.local:[192.0.2.10]")
    assert route("[IPv6:2001:DB8:0::10]", s) == NextHop("relay", "in6.test", 2526, True,
                                                        "routing.local:[IPv6:2001:db8::10]")
    assert route("[192.0.2.11]", s).rule == "routing.default"


def test_an_ip_entry_without_relay_sends_to_the_literal_address_on_its_port():
    """RFC 5321 §5.1: a literal names the host; there is no MX to look up for it."""
    s = settings([{"match": "[192.0.2.*]", "port": 2525}])
    assert route("[192.0.2.77]", s) == NextHop("relay", "192.0.2.77", 2525, True,
                                               "routing.local:[192.0.2.*]")


@pytest.mark.parametrize("match", ["[192.0.2.*]", "192.0.2.*", "[192.0.2.10]", "192.0.2.10"])
def test_an_ip_entry_never_makes_a_domain_name_local(match):
    """Review 13, B1: `192.0.2.*` was a domain pattern too, and `*` crosses dots, so mail to
    x@192.0.2.attacker.example was local (an open relay under deny_except) and went to the
    attacker's MX. Bare, as an earlier release stored it, the entry names addresses too."""
    s = settings([{"match": match, "relay": "in.test", "port": 2525}],
                 {"host": "smarthost.test", "port": 587})
    for domain in ("192.0.2.attacker.example", "192.0.2.10.example", "192.0.2.10"):
        assert route(domain, s) == NextHop("relay", "smarthost.test", 587, False,
                                           "routing.default")
    assert route(domain, settings([{"match": match}])) == NextHop("mx", domain, 25,
                                                                  rule="routing.default")
    assert route("[192.0.2.10]", s).is_local


def test_a_domain_pattern_never_matches_an_address_literal():
    """Only an address entry names addresses: `*` and `*.*` are domain names' patterns."""
    s = settings([{"match": "*", "relay": "in.test"}, {"match": "*.*", "relay": "in.test"}])
    assert route("[192.0.2.10]", s) == NextHop("relay", "192.0.2.10", 25,
                                               rule="routing.default")
    assert route("[IPv6:2001:db8::10]", s) == NextHop("relay", "2001:db8::10", 25,
                                                      rule="routing.default")
    assert route("example.com", s).is_local


def test_domain_of():
    assert domain_of("Bob@Example.COM") == "example.com"
    assert domain_of("postmaster") == ""
    assert domain_of('"a@b"@c.test') == "c.test"
