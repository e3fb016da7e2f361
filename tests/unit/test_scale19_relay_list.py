"""relay.allowed at its maximum (scale19 A2): the list is read once per settings change
(core/smtp/relay_list.py), not entry by entry at each RCPT and each session, where 10,000
entries cost 111 ms a RCPT and 149 ms a session on the listener's event loop. The answers
stay what they were for every shape of entry. Times are bench/relay_allowed.py's; here the
work is counted."""

import ipaddress

import pytest

from core.smtp.policy import listed_relay_client, relay_needs_ptr

ENTRIES = 1000
ASKED = 50


def _settings(*entries) -> dict:
    return {"relay.mode": "deny_except", "relay.allowed": list(entries)}


@pytest.fixture
def network_parses(monkeypatch):
    """How many times an entry was read as a network or an address."""
    count = [0]
    for name in ("ip_network", "ip_address"):
        real = getattr(ipaddress, name)

        def counted(*args, _real=real, **kwargs):
            count[0] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(ipaddress, name, counted)
    return count


def test_a_long_list_is_read_once_per_settings_change_not_per_rcpt(network_parses):
    entries = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(ENTRIES - 1)] + ["127.0.0.1"]
    settings = _settings(*entries)
    for _ in range(ASKED):
        assert listed_relay_client("127.0.0.1", None, settings)
        assert not listed_relay_client("192.0.2.1", None, settings)
        assert not relay_needs_ptr(settings)
    # one reading of each entry (and of each client address), not one per question
    assert network_parses[0] <= 2 * ENTRIES + 2 * ASKED
    # a change of the list (a new settings snapshot) is read again
    changed = _settings(*entries[:-1], "mx.example.test")
    assert not listed_relay_client("127.0.0.1", None, changed)
    assert listed_relay_client("192.0.2.1", "mx.example.test", changed)
    assert relay_needs_ptr(changed)


@pytest.mark.parametrize("entries,ip,ptr,listed", [
    (["192.0.2.0/24"], "192.0.2.200", None, True),
    (["192.0.2.0/24"], "192.0.3.1", None, False),
    (["192.0.2.7/24"], "192.0.2.1", None, True),                # strict=False, as before
    (["192.0.2.0/24"], "::ffff:192.0.2.9", None, True),         # dual-stack listener
    (["2001:db8::/32"], "2001:db8:1::5", None, True),
    (["2001:db8::/32"], "2001:db9::5", None, False),
    (["2001:db8::/32"], "192.0.2.1", None, False),
    (["0.0.0.0/0"], "203.0.113.9", None, True),
    (["::/0"], "203.0.113.9", None, False),                     # not across IP versions
    (["198.51.100.4"], "198.51.100.4", None, True),
    (["198.51.100.4"], "198.51.100.5", None, False),
    (["2001:db8::10"], "2001:db8:0:0::10", None, True),
    (["1.2.3.*"], "1.2.3.99", None, True),
    (["1.2.3.*"], "1.2.4.99", None, False),
    (["1.2.*"], "1.2.250.1", None, True),
    (["1.*"], "10.0.0.1", None, False),
    (["1.*.*.*"], "1.9.9.9", None, True),
    (["*"], "203.0.113.9", None, True),
    (["*"], "2001:db8::1", None, False),                        # `*` is IPv4's
    (["1.2.3.*.*"], "1.2.3.4", None, False),                    # as written: no fifth part
    (["127.*.0.2"], "127.7.0.2", None, True),                   # an older release's entry
    (["127.*.0.2"], "127.7.0.3", None, False),
    (["mx.example.test"], "192.0.2.1", "MX.example.test.", True),
    (["mx.example.test"], "192.0.2.1", "mx2.example.test", False),
    (["mx.example.test"], "192.0.2.1", None, False),
    (["*.example.test"], "192.0.2.1", "a.b.example.test", True),
    (["*.example.test"], "192.0.2.1", "example.test", False),
    (["*.example.test"], "192.0.2.1", "badexample.test", False),
    (["*.bücher.example"], "192.0.2.1", "mx.xn--bcher-kva.example", True),
    (["mx?.example.test"], "192.0.2.1", "mx7.example.test", True),
    (["mx*.example.test"], "192.0.2.1", "mx-out.example.test", True),
    (["mx*.example.test"], "192.0.2.1", "out.example.test", False),
    (["[192.0.2.1]"], "192.0.2.1", "mx.example.test", False),    # names no host
    (["10.0.0.0/8", "*.example.test", "198.51.100.4"], "198.51.100.4", None, True),
    (["10.0.0.0/8", "*.example.test", "198.51.100.4"], "192.0.2.1", "x.example.test", True),
])
def test_every_shape_of_entry_answers_as_before(entries, ip, ptr, listed):
    assert listed_relay_client(ip, ptr, _settings(*entries)) is listed


@pytest.mark.parametrize("entries,needs", [
    (["192.0.2.0/24", "1.2.*", "198.51.100.4", "2001:db8::/32"], False),
    (["192.0.2.0/24", "mx.example.test"], True),
    (["*.example.test"], True),
    (["mail/24"], True),            # reads as no network: a host, as it always did
])
def test_a_ptr_lookup_is_asked_for_only_by_host_entries(entries, needs):
    assert relay_needs_ptr(_settings(*entries)) is needs


@pytest.mark.parametrize("entry", ["192.0.2.0/33", "10.1.2", "300.1.1.1"])
def test_an_entry_that_reads_as_no_address_matches_nobody_and_raises_nothing(entry):
    """Stored by an older release (today's settings refuse them): they raised ValueError at
    each RCPT."""
    assert not listed_relay_client("192.0.2.1", None, _settings(entry, "198.51.100.4"))
    assert listed_relay_client("198.51.100.4", None, _settings(entry, "198.51.100.4"))
