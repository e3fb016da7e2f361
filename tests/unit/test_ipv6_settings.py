"""IPv6 forms in settings and relay names (ipv6 findings 2, 3, 4 and 7).

- relay.allowed and smtp.listen store an IPv4-mapped address (::ffff:10.0.0.1) as the IPv4
  address it stands for: clients arrive unmapped (the listener sets IPV6_V6ONLY), so the
  mapped form matched no client and could not be listened on, and it read back in hex.
- smtp.listen refuses a zone index (fe80::1%lo) with a rule that says so.
- smtp.hostname is the gateway's DNS name: an IP address made Mailmoat send `EHLO ::1` and
  write `MAILER-DAEMON@::1` (RFC 5321 §4.1.1.1: an address needs a domain).
- A relay host is written one way (core/delivery/routing.py `relay_host`): `[::1]` is the
  address ::1, not a DNS name, and `0:0::1` and `::1` are one next hop, whose key brackets it.
"""

from __future__ import annotations

import pytest

from core.delivery import NextHop, relay_host, route
from core.smtp.policy import listed_relay_client
from tests.support.settings_rules import rule_of, stored

HOSTNAME_RULE = ("smtp.hostname: must be the gateway's DNS name (mail.example.com), not an "
                 "IP address: EHLO, bounces and Message-IDs need a domain; null uses the "
                 "machine's name")


@pytest.mark.parametrize("typed, kept", [
    ("::ffff:10.0.0.1", "10.0.0.1"),
    ("::FFFF:127.0.0.1", "127.0.0.1"),
    ("::ffff:127.0.0.0/104", "127.0.0.0/8"),
    ("::ffff:10.1.2.3/120", "10.1.2.0/24"),
    ("::ffff:0:0/96", "0.0.0.0/0"),
    ("::ffff:10.0.0.1/128", "10.0.0.1/32"),
    # not mapped: as before
    ("::1", "::1"),
    ("fd00::/64", "fd00::/64"),
    ("::/0", "::/0"),
    ("0:0:0:0:0:0:0:1", "::1"),
])
def test_relay_allowed_stores_a_mapped_entry_in_its_ipv4_form(typed, kept):
    assert stored("relay.allowed", [typed]) == [kept]


@pytest.mark.parametrize("entry", ["::ffff:127.0.0.1", "::ffff:127.0.0.0/104"])
def test_a_mapped_relay_entry_as_stored_lets_the_ipv4_client_relay(entry):
    values = {"relay.allowed": stored("relay.allowed", [entry])}
    assert listed_relay_client("127.0.0.1", None, values)
    assert not listed_relay_client("::1", None, values)


def test_a_mapped_relay_entry_repeats_its_ipv4_form():
    assert rule_of("relay.allowed", ["127.0.0.1", "::ffff:127.0.0.1"]) == \
        "relay.allowed: entry 2 repeats entry 1"


def test_smtp_listen_stores_a_mapped_address_as_ipv4():
    assert stored("smtp.listen", ["::ffff:127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]


def test_smtp_listen_refuses_a_zone_index_with_a_rule_saying_so():
    assert rule_of("smtp.listen", ["fe80::1%lo"]) == (
        "smtp.listen: entry 1: must be an address without a zone index (%...): give an "
        "address of one of the host's interfaces, or :: for all of them")


@pytest.mark.parametrize("value", ["::1", "[::1]", "[IPv6:::1]", "2001:db8::25",
                                   "192.0.2.1", "[192.0.2.1]"])
def test_smtp_hostname_refuses_an_ip_address(value):
    assert rule_of("smtp.hostname", value) == HOSTNAME_RULE


@pytest.mark.parametrize("value, kept", [("mail.example.com.", "mail.example.com"),
                                         (None, None)])
def test_smtp_hostname_takes_a_name_and_null(value, kept):
    assert stored("smtp.hostname", value) == kept


def test_smtp_hostname_that_is_no_name_says_what_it_takes():
    assert rule_of("smtp.hostname", "bad_host") == \
        "smtp.hostname: must be a host name such as mail.example.com"


@pytest.mark.parametrize("typed, host", [
    ("[::1]", "::1"), ("::1", "::1"), ("0:0:0:0:0:0:0:1", "::1"), ("[0:0::1]", "::1"),
    ("::ffff:127.0.0.1", "127.0.0.1"), ("[192.0.2.7]", "192.0.2.7"),
    ("MX.Example.COM.", "mx.example.com"), (" relay.test ", "relay.test"),
])
def test_relay_host_writes_a_host_one_way(typed, host):
    assert relay_host(typed) == host


def test_an_ipv6_next_hop_key_has_brackets_and_one_form():
    def hop(relay):
        return route("local.test", {"routing.local": [
            {"match": "local.test", "relay": relay, "port": 2525}], "routing.default": None})
    assert hop("::1").key == hop("0:0:0:0:0:0:0:1").key == hop("[::1]").key \
        == "relay:[::1]:2525"
    assert hop("::1").destination == "[::1]:2525"
    assert NextHop("relay", "127.0.0.1", 25).key == "relay:127.0.0.1:25"
    assert NextHop("mx", "example.com", 25).key == "mx:example.com:25"
    assert route("[IPv6:2001:DB8:0::1]", {}).key == "relay:[2001:db8::1]:25"
