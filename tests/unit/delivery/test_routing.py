"""Routing: local list (wildcards, first match, relay or MX), default relay, MX."""

from core.delivery.routing import NextHop, domain_of, route


def settings(local=(), default=None):
    return {"routing.local": list(local), "routing.default": default}


def test_no_rules_means_mx_of_the_domain():
    assert route("Example.COM.", settings()) == NextHop("mx", "example.com", 25)


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
    assert route("[192.0.2.7]", settings()) == NextHop("relay", "192.0.2.7", 25)
    assert route("[IPv6:2001:db8::1]", settings()).name == "2001:db8::1"


def test_domain_of():
    assert domain_of("Bob@Example.COM") == "example.com"
    assert domain_of("postmaster") == ""
    assert domain_of('"a@b"@c.test') == "c.test"
