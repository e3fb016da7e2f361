"""relay.allowed read once per settings change, into what a client is looked up in.

What it owns
    `relay_list(entries)`: the list of a settings snapshot as a `RelayList`, worked out once
    for the list object (one slot, as core/smtp/policy.py `_relay_entries` keeps
    routing.local's split) and reused by every session and RCPT until the settings change.
    Before (scale19 A2), every RCPT parsed each entry as a network and every session each
    entry again to learn whether a PTR lookup was needed: with the 10,000 entries SPEC §3
    allows, 111 ms a RCPT and 149 ms a session on the listener's event loop, every other
    session waiting.

Rules
    1. An entry means what core/smtp/policy.py `listed_relay_client` always read it as:
       with a `/`, a network (strict=False); with a `*` after a leading digit, or `*` alone,
       an IPv4 pattern (`1.2.*`: the octets it stands for, so 1.2.0.0/16); else an address
       when it reads as one (`is_host_entry`), else a host name or `*.domain` compared with
       the client's forward-confirmed PTR name (shared/idn.py `matches_domain`).
    2. Looking up costs no time linear in the entries where that is cheap: networks and
       addresses are kept per IP version and prefix length as sets of their leading bits
       (one set look-up per prefix length in use, at most 33 or 129); exact host names in a
       set, `*.domain` as a set of the domains, looked up per label of the PTR name. What
       does not fit those shapes (a `?`, a `\\`, a `*` in the middle: an older release's
       entry) is matched as written, one by one.
    3. An entry that reads as nothing (a network or address that does not parse, stored by
       an older release) matches no client; it used to raise at each RCPT.
    4. The lists are never changed after they are made; the slot holds the list object it
       was made from, so an id is never reused for another list while it is kept.
"""

from __future__ import annotations

import ipaddress
import re

from shared.idn import address_pattern, ascii_pattern, domain_form, matches_domain
from shared.wildcard import matches

__all__ = ["RelayList", "relay_list", "is_host_entry"]

_MAX_PREFIX = {4: 32, 6: 128}
_OCTETS_THEN_STARS = re.compile(r"^((?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){0,3})"
                                r"((?:\.\*)+)\Z")
_PATTERN_CHARS = set("*?\\")


def is_host_entry(entry: str) -> bool:
    """Whether an entry (not a network, not an IPv4 pattern) names a host, to be compared
    with the client's PTR name, rather than an address."""
    if entry.replace(".", "").replace("*", "").isdigit():
        return False
    try:
        ipaddress.ip_network(entry, strict=False)
        return False
    except ValueError:
        return True


class RelayList:
    """One relay.allowed, ready to be asked (module rules)."""

    def __init__(self, entries) -> None:
        # {version: {prefix length: {leading bits}}}
        self._networks: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        self._ipv4_patterns: list[str] = []     # IPv4 patterns that are not a prefix
        self._names: set[str] = set()           # host names, A-label form
        self._suffixes: set[str] = set()        # the domains of `*.domain` entries
        self._host_patterns: list[str] = []     # other host patterns, matched one by one
        self.needs_ptr = False
        for entry in entries:
            self._add(entry)

    def _add(self, entry: str) -> None:
        # needs_ptr: whether any entry reads as a host (is_host_entry), as the session
        # has always asked before it looks the PTR name up
        if "/" in entry:
            try:
                self._add_network(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.needs_ptr = True           # rule 3; is_host_entry says True
        elif "*" in entry and entry[0].isdigit() or entry == "*":
            self.needs_ptr = self.needs_ptr or is_host_entry(entry)
            found = _OCTETS_THEN_STARS.match(entry)
            octets = found.group(1).split(".") if found else []
            if entry == "*":
                self._add_network(ipaddress.ip_network("0.0.0.0/0"))
            elif found and all(int(o) <= 255 for o in octets) \
                    and len(octets) + found.group(2).count("*") <= 4:
                address = ".".join(octets + ["0"] * (4 - len(octets)))
                self._add_network(ipaddress.ip_network(f"{address}/{8 * len(octets)}"))
            else:
                self._ipv4_patterns.append(entry)
        elif not is_host_entry(entry):
            try:
                self._add_network(ipaddress.ip_network(ipaddress.ip_address(entry)))
            except ValueError:
                pass                            # rule 3
        else:
            self.needs_ptr = True
            self._add_host(entry)

    def _add_network(self, network) -> None:
        shift = _MAX_PREFIX[network.version] - network.prefixlen
        self._networks[network.version].setdefault(network.prefixlen, set()).add(
            int(network.network_address) >> shift)

    def _add_host(self, entry: str) -> None:
        if address_pattern(entry) is not None:
            return                              # names addresses: never a PTR name
        form = ascii_pattern(entry)
        if form is None:
            self._host_patterns.append(entry)
        elif not _PATTERN_CHARS & set(form):
            self._names.add(form)
        elif form.startswith("*.") and not _PATTERN_CHARS & set(form[2:]):
            self._suffixes.add(form[2:])
        else:
            self._host_patterns.append(entry)

    def has(self, address, client_ptr: str | None) -> bool:
        """Whether the client at `address` (an ip_address, IPv4-mapped ones already in
        their IPv4 form), its forward-confirmed PTR name `client_ptr` (None when not
        looked up), is listed."""
        bits = int(address)
        top = _MAX_PREFIX[address.version]
        for prefix, leading in self._networks[address.version].items():
            if bits >> (top - prefix) in leading:
                return True
        if address.version == 4 and self._ipv4_patterns:
            text = str(address)
            if any(matches(pattern, text) for pattern in self._ipv4_patterns):
                return True
        if not client_ptr:
            return False
        form = domain_form(client_ptr)
        if form in self._names:
            return True
        if self._suffixes:
            dot = form.find(".")
            while dot != -1:
                if form[dot + 1:] in self._suffixes:
                    return True
                dot = form.find(".", dot + 1)
        return any(matches_domain(pattern, client_ptr) for pattern in self._host_patterns)


_slot: tuple[object, RelayList | None] = (None, None)


def relay_list(entries) -> RelayList:
    """The RelayList of `entries` (a settings snapshot's relay.allowed), made once for the
    list object (rule 4)."""
    global _slot
    made_from, made = _slot
    if made_from is not entries or made is None:
        made = RelayList(entries)
        _slot = (entries, made)
    return made
