"""SMTP-time policy (core/smtp/policy.py; SPEC §5 step 1, guide §6 "Preventing relaying",
"Blocking by characters in email addresses", "Blocking by message size")."""

import pytest

from core.smtp import replies as R
from core.smtp.policy import (check_recipient, check_spool_space, is_local_domain,
                              max_message_octets, refused_local_entries, relay_allowed,
                              relay_needs_ptr)
from shared.settings import defaults


def settings(**changes):
    values = defaults()
    values["routing.local"] = [{"match": "local.test"}, {"match": "*.corp.test"}]
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


@pytest.mark.parametrize("entry,ip,ptr,allowed", [
    ("192.0.2.10", "192.0.2.10", None, True),
    ("192.0.2.10", "192.0.2.11", None, False),
    ("192.0.2.0/24", "192.0.2.99", None, True),
    ("192.0.2.0/24", "198.51.100.1", None, False),
    ("1.2.3.*", "1.2.3.4", None, True),            # the guide's examples
    ("1.2.*", "1.2.99.4", None, True),
    ("1.*", "1.200.3.4", None, True),
    ("1.2.3.*", "1.2.4.4", None, False),
    ("2001:db8::/32", "2001:db8::5", None, True),
    ("2001:db8::5", "2001:db8::5", None, True),
    ("*.someplace.com", "203.0.113.5", "mx1.someplace.com", True),
    ("*.someplace.com", "203.0.113.5", "someplace.com.evil.test", False),
    ("*.someplace.com", "203.0.113.5", None, False),          # no PTR, no match
    ("mail.partner.test", "203.0.113.6", "MAIL.partner.test.", True),
    ("192.0.2.10", "::ffff:192.0.2.10", None, True),            # IPv4 via a dual-stack socket
    ("1.2.3.*", "::ffff:1.2.3.4", None, True),
])
def test_relay_entries(entry, ip, ptr, allowed):
    assert relay_allowed(ip, ptr, settings(relay__allowed=[entry])) is allowed


def test_allow_mode_relays_for_everyone_and_empty_list_for_no_one():
    assert relay_allowed("203.0.113.1", None, settings(relay__mode="allow"))
    assert not relay_allowed("203.0.113.1", None, settings())


def test_ptr_is_looked_up_only_when_host_entries_exist():
    assert not relay_needs_ptr(settings(relay__allowed=["1.2.3.*", "10.0.0.0/8", "::1"]))
    assert relay_needs_ptr(settings(relay__allowed=["*.someplace.com"]))
    # under "allow" the list still names the organisation's own hosts (exempt from the RBL)
    assert relay_needs_ptr(settings(relay__mode="allow", relay__allowed=["a.test"]))


def test_local_destinations_are_the_local_routing_entries():
    s = settings()
    assert is_local_domain("local.test", s) and is_local_domain("mail.corp.test", s)
    assert not is_local_domain("elsewhere.test", s)


@pytest.mark.parametrize("entry,recipient,local", [
    # guide §3 "Configuring local routing": an IP address entry makes mail to it local, and
    # mail to an IP address is written as an address literal (RFC 5321 §4.1.3)
    ("192.0.2.10", "u@[192.0.2.10]", True),
    ("192.0.2.10", "u@[192.0.2.010]", True),                 # Snum may have leading zeros
    ("192.0.2.10", "u@[IPv6:::ffff:192.0.2.10]", True),      # IPv4-mapped: the IPv4 address
    ("192.0.2.10", "u@[192.0.2.11]", False),
    ("192.0.2.*", "u@[192.0.2.200]", True),                  # as the guide's relay lists
    ("192.0.*", "u@[192.0.77.1]", True),
    ("192.0.2.*", "u@[192.0.3.1]", False),
    ("2001:db8::10", "u@[IPv6:2001:DB8:0:0::10]", True),
    ("2001:db8::10", "u@[IPv6:2001:db8::11]", False),
    ("2001:db8::10", "u@[2001:db8::10]", False),             # no IPv6 literal without its tag
    ("*.corp.test", "u@[192.0.2.10]", False),
    ("[192.0.2.*]", "u@[192.0.2.7]", True),                  # as the entry is stored
    ("[IPv6:2001:db8::10]", "u@[IPv6:2001:db8::10]", True),
    ("*", "u@[192.0.2.10]", False),                          # a domain pattern: domains only
    # review 13, B1: an entry for addresses never makes a domain name local; read as text,
    # `*` crossed the dots, and the gateway relayed for every such domain (deny_except)
    ("192.0.2.*", "u@192.0.2.attacker.example", False),
    ("[192.0.2.*]", "u@192.0.2.attacker.example", False),
    ("192.0.*", "u@192.0.2.10.example", False),
    ("192.0.2.10", "u@192.0.2.10", False),
])
def test_ip_entries_make_their_address_literals_local(entry, recipient, local):
    """tester guide36 finding 3: u@[192.0.2.10] was refused as relaying under its entry."""
    s = settings(routing__local=[{"match": entry}])
    refusal = check_recipient(recipient, "203.0.113.1", None, s)
    assert (refusal is None) is local
    if not local:
        assert refusal.reply is R.R550_RELAY_DENIED


def test_recipient_to_non_local_domain_from_unlisted_client_is_550():
    refusal = check_recipient("x@elsewhere.test", "203.0.113.1", None, settings())
    assert refusal.reply == R.R550_RELAY_DENIED and refusal.rule == "relay.allowed"
    assert refusal.reply.code == 550 and refusal.reply.enhanced == "5.7.1"


def test_local_destination_is_never_a_relay():
    assert check_recipient("x@local.test", "203.0.113.1", None, settings()) is None
    assert check_recipient("postmaster", "203.0.113.1", None, settings()) is None


def test_listed_client_may_relay():
    s = settings(relay__allowed=["203.0.113.0/24"])
    assert check_recipient("x@elsewhere.test", "203.0.113.1", None, s) is None


@pytest.mark.parametrize("stored, recipient", [
    ("*", "bob@remote.test"), ("*.*", "bob@remote.test"), ("**", "bob@xn--mnchen-3ya.de"),
    ("[*]", "bob@[203.0.113.5]")])
def test_a_stored_match_all_entry_defers_relaying_with_451(stored, recipient):
    """Upgrade16 finding 3: an entry matching every destination that an older release
    stored (today's rules refuse it) kept the gateway an open relay. It is left out of the
    relay check; a recipient only it makes local is deferred, naming the setting."""
    s = settings()
    s["routing.local"] = [*s["routing.local"], {"match": stored}]
    refusal = check_recipient(recipient, "203.0.113.1", None, s)
    assert refusal.reply is R.R451_RELAY_DEFERRED and refusal.rule == "routing.local"
    assert (refusal.reply.code, refusal.reply.enhanced) == (451, "4.7.1")
    assert refusal.reason.startswith(f"routing.local entry '{stored}' is refused by this "
                                     "version: fix the setting")
    assert check_recipient("x@local.test", "203.0.113.1", None, s) is None   # its own entry
    assert check_recipient(recipient, "203.0.113.1", None,
                           {**s, "relay.allowed": ["203.0.113.0/24"]}) is None
    assert check_recipient(recipient, "203.0.113.1", None, {**s, "relay.mode": "allow"}) is None
    assert is_local_domain(recipient.partition("@")[2], s)      # still routed by it
    assert refused_local_entries(s) == (stored,)


def test_a_stored_match_all_domain_entry_leaves_address_literals_denied():
    s = settings()
    s["routing.local"] = [*s["routing.local"], {"match": "*"}]
    refusal = check_recipient("x@[203.0.113.5]", "203.0.113.1", None, s)
    assert refusal.reply is R.R550_RELAY_DENIED
    assert refused_local_entries(settings()) == ()


def test_address_characters_are_refused_with_553():
    s = settings(address_chars__enabled=True)
    refusal = check_recipient("a%b@local.test", "192.0.2.1", None, s)
    assert refusal.reply == R.R553_BAD_ADDRESS_CHARS and refusal.rule == "address_chars.chars"
    assert check_recipient("a!b@local.test", "192.0.2.1", None, s).reply.code == 553
    assert check_recipient("a%b@local.test", "192.0.2.1", None, settings()) is None


def test_size_at_mail_and_disk_space():
    s = settings(size__enabled=True, size__max_mb=1)
    assert max_message_octets(s) == 1 << 20 and max_message_octets(settings()) is None
    assert check_spool_space(0.05, at="DATA") is None
    refusal = check_spool_space(0.04, at="DATA")
    assert refusal.reply == R.R452_INSUFFICIENT_STORAGE and refusal.rule == "spool.disk_free"


def test_a_refusal_for_space_at_mail_says_so_not_with_this_message():
    """diskfull21 C2: a 452 for space at MAIL said "… free with this message", but no
    message has come at MAIL: it says so, with the declared SIZE when there is one."""
    assert check_spool_space(0.017, at="DATA").reason == \
        "spool file system 1.7% free with this message"
    assert check_spool_space(0.017, at="MAIL").reason == \
        "spool file system 1.7% free at MAIL"
    assert check_spool_space(0.017, at="MAIL", declared=1_500_000).reason == \
        "spool file system 1.7% free at MAIL with the declared SIZE of 1500000 octets"
    # which of the two, always said (review21a D3: None meant after DATA, left out)
    with pytest.raises(TypeError):
        check_spool_space(0.017)
    with pytest.raises(ValueError):
        check_spool_space(0.017, at="RCPT")
