"""dns.resolvers (shared/settings_addresses.py `Resolver`): one server written two ways is a
repeat, and an address that is no one server is refused (settings findings 16, section 7)."""

import pytest

from shared.settings import SettingError, defaults, validate_changes


def lines(value):
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), {"dns.resolvers": value})
    return info.value.lines()


@pytest.mark.parametrize("value", [
    ["127.0.0.1:53", "127.0.0.1:0053"],
    ["127.0.0.1", "127.0.0.1:53"],
    ["[::1]:53", "::1"],
    ["::1", "[0:0::1]"],
    ["::ffff:127.0.0.1", "127.0.0.1:53"],
])
def test_one_server_written_two_ways_is_a_repeat(value):
    assert lines(value) == ["dns.resolvers: entry 2 repeats entry 1"]


def test_servers_that_differ_by_port_or_address_are_kept_as_written():
    value = ["127.0.0.1:53", "127.0.0.1:5353", "[::1]:0053", "192.0.2.53"]
    assert validate_changes(defaults(), {"dns.resolvers": value}) == {"dns.resolvers": value}


@pytest.mark.parametrize("value, address, kind", [
    ("0.0.0.0", "0.0.0.0", "the unspecified"),
    ("[::]:53", "::", "the unspecified"),
    ("::ffff:0.0.0.0", "0.0.0.0", "the unspecified"),
    ("224.0.0.1", "224.0.0.1", "a multicast"),
    ("[ff02::fb]:5353", "ff02::fb", "a multicast"),
    ("255.255.255.255:53", "255.255.255.255", "the broadcast"),
])
def test_an_address_that_is_no_one_server_is_refused(value, address, kind):
    assert lines(["192.0.2.53", value]) == [
        f"dns.resolvers: entry 2: {address} is {kind} address, not a DNS server's: give the "
        "address of one (127.0.0.1 for a server on this host)"]
