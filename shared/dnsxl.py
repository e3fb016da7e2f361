"""What a DNS list's answer means (RFC 5782 §2.1; Spamhaus' error codes): one place for the
settings' return-code rule, the core's lookups (core/smtp/rbl.py) and the after-DATA check
that applies a listing found earlier (core/pipeline/checks/rbl.py)."""

from __future__ import annotations

import ipaddress
from typing import Iterable, Mapping

__all__ = ["LISTING_NET", "ERROR_CODE_NET", "NEVER_LISTED", "is_error_code", "is_listing",
           "zone_key", "enabled_zones", "enabled_zone", "listing_codes"]

# A listing is an A record in 127.0.0.0/8; any other address is not a list entry (a resolver
# that rewrites NXDOMAIN to its own web server must not list everybody).
LISTING_NET = ipaddress.ip_network("127.0.0.0/8")
# ...except 127.255.255.0/24, the range Spamhaus reserved in 2019 for errors about the query
# itself (.254 "query via public/open resolver", .255 "excessive number of queries"), which
# "should NOT be interpreted as any sort of reputation".
ERROR_CODE_NET = ipaddress.ip_network("127.255.255.0/24")
# ...and 127.0.0.1, which RFC 5782 §5 reserves: a list "MUST NOT contain an entry for
# 127.0.0.1", and URIBL and SURBL answer it to say that they refuse the query (a public or
# blocked resolver). Taken as a listing it would list every client, as the error range would.
NEVER_LISTED = ipaddress.ip_address("127.0.0.1")


def is_error_code(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a list's answer says its query failed (refused, over quota), not who is
    listed: 127.0.0.1 or 127.255.255.0/24."""
    return address == NEVER_LISTED or address in ERROR_CODE_NET


def is_listing(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a list's answer lists the client: in 127.0.0.0/8 and not an error code."""
    return address in LISTING_NET and not is_error_code(address)


def zone_key(zone: str) -> str:
    """A zone's name for comparing: DNS names are case-insensitive, the final dot optional."""
    return zone.lower().rstrip(".")


def enabled_zones(settings: Mapping) -> list[dict]:
    """The `rbl.zones` rows in force, in the settings' order."""
    return [z for z in settings["rbl.zones"] if z.get("enabled", True)]


def enabled_zone(settings: Mapping, zone: str) -> dict | None:
    """The enabled `rbl.zones` row for *zone*, or None when it is removed or disabled."""
    key = zone_key(zone)
    return next((z for z in enabled_zones(settings) if zone_key(z["zone"]) == key), None)


def listing_codes(codes: Iterable[str], zone: Mapping) -> tuple[str, ...]:
    """The answer codes that list the client under this zone row: with `return_codes` only
    those (the guide: "only the email messages that are associated with the return codes
    will be blocked"), without them every code."""
    wanted = set(zone.get("return_codes") or ())
    return tuple(c for c in codes if not wanted or c in wanted)
