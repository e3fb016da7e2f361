"""SMTP-time policy (SPEC §5 step 1): what the session asks before it answers MAIL and RCPT.

Each check is a small pure function of (facts, settings snapshot) returning a `Refusal` or
None; the session turns a refusal into its reply and a `rejected` event naming the rule.
They never touch sockets or SQLite. Relay entries that name hosts need the client's
forward-confirmed PTR name (core/delivery/mx.py rule 7: a PTR name alone is whatever the
holder of the client's address block wrote), which the session looks up once per connection
(only when such entries exist) and passes in.

A routing.local entry matching every destination (`*`, `[*]`) turns anti-relay off, so
today's settings rules refuse it; one an older release stored is still used for routing, but
not by the relay check: a client not in relay.allowed sending to a destination only it makes
local gets 451 4.7.1 naming the setting (a temporary answer, so no mail the administrator
meant to accept is lost while the setting is fixed), never 250 (upgrade16 finding 3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from core.smtp import replies as R
from core.smtp.relay_list import relay_list
from core.smtp.replies import Reply
from shared.idn import any_matches_domain, matches_domain
from shared.settings_cross_rules import matches_every_destination

__all__ = ["Refusal", "check_reject_incoming", "check_declared_size", "check_recipient",
           "check_spool_space", "is_local_domain", "relay_allowed", "listed_relay_client",
           "relay_needs_ptr", "MIN_FREE_DISK_FRACTION", "max_message_octets",
           "refused_local_entries", "refused_entry_notice"]

MIN_FREE_DISK_FRACTION = 0.05  # SPEC §3 size: refuse with 452 4.3.1 under 5% free
MIB = 1 << 20


@dataclass(frozen=True)
class Refusal:
    reply: Reply
    rule: str      # the setting or rule that fired, for the event
    reason: str


def check_reject_incoming(settings: Mapping) -> Refusal | None:
    """delivery.reject_incoming (SPEC §3: "refuse new mail with 421"): at connect, and at
    each MAIL FROM, RCPT TO and DATA of a session already open (core/smtp/session.py)."""
    if settings["delivery.reject_incoming"]:
        return Refusal(R.R421_SERVICE_NOT_AVAILABLE, "delivery.reject_incoming",
                       "incoming mail refused (421)")
    return None


def max_message_octets(settings: Mapping) -> int | None:
    return settings["size.max_mb"] * MIB if settings["size.enabled"] else None


def check_declared_size(declared: int, limit: int | None) -> Refusal | None:
    """RFC 1870 §6: a MAIL FROM whose SIZE= is over the limit the session advertised
    (`limit`, None for none) is refused 552 5.3.4 at once, as the rule `size.max_mb` that
    refuses the same message after DATA (guide Table 7-2 counts it as rejected)."""
    if limit is not None and declared > limit:
        return Refusal(R.R552_SIZE_EXCEEDED, "size.max_mb",
                       f"declared SIZE={declared} over the limit of {limit} octets")
    return None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def is_local_domain(domain: str, settings: Mapping) -> bool:
    """A destination is local when routing.local has an entry matching its domain, in
    either form (shared/idn.py: münchen.de is xn--mnchen-3ya.de), or, for an address
    literal, its address (entry [192.0.2.10] or [192.0.2.*]: [192.0.2.10]). An address
    entry matches address literals only: under [192.0.2.*], 192.0.2.attacker.example is
    relaying. The question core/delivery/routing.py asks, so a destination routed as local
    is never refused as relaying — but for an entry matching every destination, which the
    relay check (`check_recipient`) does not honour (`refused_local_entries`)."""
    return any_matches_domain((entry["match"] for entry in settings["routing.local"]), domain)


def refused_local_entries(settings: Mapping) -> tuple[str, ...]:
    """The routing.local matches that match every destination (`*`, `[*]`), which today's
    rules refuse as an open relay (shared.settings_cross_rules `matches_every_destination`)
    but an older release stored: what the core says at start (core/app.py)."""
    return _relay_entries(settings["routing.local"])[1]


def refused_entry_notice(match: str) -> str:
    """What the core says at start of a stored routing.local entry matching every
    destination (stderr and a service_start_failed event of rule routing.local)."""
    return (f"routing.local entry '{match}' is refused by this version (it makes every "
            "destination local: an open relay) and is left out of the relay check: mail from "
            "clients not in relay.allowed to a destination only it makes local is deferred "
            "(451 4.7.1) until the setting is fixed")


def _relay_entries(local: list) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """routing.local's matches split for the relay check: (those that make a destination
    local, those left out: matching every destination). Worked out once per settings
    snapshot (one slot holding the list it was worked out from), not per recipient: with
    10,000 entries it would cost the SMTP event loop milliseconds a RCPT."""
    global _relay_split
    if _relay_split[0] is not local:
        honoured, refused = [], []
        for entry in local:
            (refused if matches_every_destination(entry["match"]) else honoured).append(
                entry["match"])
        _relay_split = (local, tuple(honoured), tuple(refused))
    return _relay_split[1], _relay_split[2]


_relay_split: tuple[object, tuple[str, ...], tuple[str, ...]] = (None, (), ())


def relay_needs_ptr(settings: Mapping) -> bool:
    """Host names in relay.allowed are matched against the client's confirmed PTR name (for
    relaying under "deny_except", and in either mode to exempt the client from the RBL)."""
    return relay_list(settings["relay.allowed"]).needs_ptr


def relay_allowed(client_ip: str, client_ptr: str | None, settings: Mapping) -> bool:
    return settings["relay.mode"] == "allow" or listed_relay_client(client_ip, client_ptr,
                                                                    settings)


def listed_relay_client(client_ip: str, client_ptr: str | None, settings: Mapping) -> bool:
    """Is the client one of relay.allowed (IPs, CIDRs, `1.2.3.*`, `1.2.*`, `1.*`, host names
    and `*.domain` via `client_ptr`, its forward-confirmed PTR name) — one of the
    organisation's own mail hosts? `*` spans the octets it stands for (`1.*` is
    1.0.0.0/8). An entry an earlier release stored with `*` in the middle (`127.*.0.2`)
    reads as written until the list is saved again, which refuses it
    (shared/settings_addresses.py RelayEntry). The list is read once per settings change
    (core/smtp/relay_list.py), not at each RCPT."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:   # a dual-stack listener's IPv4 client
        address = address.ipv4_mapped
    return relay_list(settings["relay.allowed"]).has(address, client_ptr)


def check_spool_space(free_fraction_after: float, *, at: str,
                      declared: int = 0) -> Refusal | None:
    """SPEC §3: whatever the settings, a message that would leave the spool's file system
    under MIN_FREE_DISK_FRACTION free is refused (452 4.3.1). `free_fraction_after` is the
    free fraction once the message is written: `at` "MAIL" with its declared SIZE
    (`declared`, 0 for none), `at` "DATA" (after it) with its real size. The event's reason
    says which: at MAIL no message has come yet (diskfull21 C2); `at` has no default, so
    that a caller cannot say one for the other by leaving it out (review21a D3). (A
    declared SIZE over size.max_mb is `check_declared_size`'s.)"""
    if at not in ("MAIL", "DATA"):
        raise ValueError(f"check_spool_space at {at!r}: MAIL or DATA")
    if free_fraction_after < MIN_FREE_DISK_FRACTION:
        if at == "DATA":
            with_what = "with this message"
        elif declared:
            with_what = f"at MAIL with the declared SIZE of {declared} octets"
        else:
            with_what = "at MAIL"
        return Refusal(R.R452_INSUFFICIENT_STORAGE, "spool.disk_free",
                       f"spool file system {free_fraction_after:.1%} free {with_what}")
    return None


def check_recipient(address: str, client_ip: str, client_ptr: str | None,
                    settings: Mapping) -> Refusal | None:
    if settings["address_chars.enabled"]:
        bad = [ch for ch in settings["address_chars.chars"] if ch in address]
        if bad:
            return Refusal(R.R553_BAD_ADDRESS_CHARS, "address_chars.chars",
                           f"recipient contains {''.join(bad)!r}")
    domain = domain_of(address) if "@" in address else ""
    if domain and not relay_allowed(client_ip, client_ptr, settings):
        honoured, refused = _relay_entries(settings["routing.local"])
        if any_matches_domain(honoured, domain):
            return None
        # An entry matching every destination, stored by an older release, would make this
        # an open relay; it is not honoured here. Deferred, not refused: the administrator
        # may have meant some of this mail, and senders retry while the setting is fixed.
        for match in refused:
            if matches_domain(match, domain):
                return Refusal(R.R451_RELAY_DEFERRED, "routing.local",
                               f"routing.local entry '{match}' is refused by this version: "
                               f"fix the setting; relay to {domain} deferred for {client_ip}")
        return Refusal(R.R550_RELAY_DENIED, "relay.allowed",
                       f"relay to {domain} denied for {client_ip}")
    return None
