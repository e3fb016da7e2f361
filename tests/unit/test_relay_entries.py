"""relay.allowed entries (shared/settings_addresses.py RelayEntry) against the guide's wildcard
rule, and the matcher (core/smtp/policy.py) taking what the kind takes.

Guide §6 "Preventing relaying": "You can use the * wildcard character as the first element
of a domain name or the last element of an IP address … *.someplace.com 1.2.3.* 1.2.* 1.*"
(policy finding B1: `1.2.*` and `1.*` were refused, `1.2.*.4` accepted).
"""

import pytest

from core.smtp.policy import listed_relay_client, relay_needs_ptr
from shared.settings import SettingError, defaults, validate_changes
from shared.settings_addresses import RelayEntry
from shared.settings_types import RuleError

PLACEMENT_RULE = "* may stand only for the last parts of an IP address: 1.2.3.*, 1.2.* or 1.*"


@pytest.mark.parametrize("entry", ["1.2.3.*", "1.2.*", "1.*", "10.*", "192.168.*",
                                   "1.2.*.*", "1.*.*.*", "255.255.255.*"])
def test_the_guides_ip_wildcards_are_accepted_as_written(entry):
    assert RelayEntry().check(entry) == entry


@pytest.mark.parametrize("entry", ["1.2.*.4", "1.*.3.4", "127.*.0.2", "*.2.3.4", "*.*.*.*",
                                   "1.*.3.*", "*.2.*"])
def test_a_wildcard_before_the_last_parts_of_an_ip_is_refused(entry):
    with pytest.raises(RuleError) as refused:
        RelayEntry().check(entry)
    assert refused.value.rule == PLACEMENT_RULE


@pytest.mark.parametrize("entry", ["1.2.3.4.*", "1.2.3.4.5.*", "1.*.*.*.*", "300.*",
                                   "01.2.*", "1..*", "1.2.3*", "1.2.*3"])
def test_what_is_no_ip_wildcard_at_all_is_refused(entry):
    with pytest.raises(RuleError):
        RelayEntry().check(entry)


def test_saving_the_list_names_the_entry_that_puts_the_wildcard_first():
    """An entry like 127.*.0.2 that an earlier release took is refused at the next save of
    the list, with the rule, so the administrator learns what to write instead."""
    with pytest.raises(SettingError) as refused:
        validate_changes(defaults(), {"relay.allowed": ["1.2.*", "127.*.0.2"]})
    assert refused.value.errors == [("relay.allowed", f"entry 2: {PLACEMENT_RULE}")]
    assert validate_changes(defaults(), {"relay.allowed": ["1.2.*", "1.*"]}) == {
        "relay.allowed": ["1.2.*", "1.*"]}


def _settings(entry):
    values = defaults()
    values["relay.allowed"] = [entry]
    return values


@pytest.mark.parametrize("entry,ip,listed", [
    ("1.2.*", "1.2.0.1", True),
    ("1.2.*", "1.2.255.254", True),
    ("1.2.*", "1.20.0.1", False),
    ("1.2.*", "1.3.2.1", False),
    ("1.*", "1.255.0.1", True),
    ("1.*", "10.0.0.1", False),
    ("1.*", "::ffff:1.9.9.9", True),          # IPv4 through a dual-stack listener
    ("1.*", "2001:db8::1", False),
    ("1.2.*.*", "1.2.3.4", True),
    # Stored by an earlier release and read as written until the list is saved again.
    ("127.*.0.2", "127.9.0.2", True),
    ("127.*.0.2", "127.9.0.3", False),
])
def test_the_matcher_reads_an_ip_wildcard_as_the_kind_takes_it(entry, ip, listed):
    assert listed_relay_client(ip, None, _settings(entry)) is listed
    assert not relay_needs_ptr(_settings(entry))      # an IP entry asks no DNS
