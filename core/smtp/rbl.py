"""Real-time blacklist lookups at connect (SPEC §3 rbl.*, §5 step 1; RFC 5782; guide §5
"Blocking by real-time antispam blacklists").

What it owns
    `RblChecker(resolver).check(client_ip, settings)` -> `RblListing | None`: the client IP
    is looked up in each enabled zone of `rbl.zones` (at most 3) at once, through the core's
    dnspython resolver on trio (core/delivery/mx.py `Resolver.lookup`, which follows
    `dns.resolvers`). `sender_whitelisted(...)` answers the MAIL FROM question for the
    `reject` action; `R550_RBL_LISTED` is its reply.

Rules
    1. Query names per RFC 5782 §2.1 and §2.4: IPv4 octets reversed ("2.0.0.127.zone"),
       IPv6 as 32 reversed nibbles ("1.0.0.0...8.b.d.0.1.0.0.2.zone"); an IPv4-mapped IPv6
       client is looked up as IPv4.
    2. Listed = an A record in 127.0.0.0/8 (RFC 5782 §2.1: other values are not list
       entries — a resolver that rewrites NXDOMAIN must not list everybody). With
       `return_codes` the zone lists the client only when one of its answers is one of them
       (guide: "only the email messages that are associated with the return codes will be
       blocked"); without, any 127/8 answer lists it. The first listing zone, in the
       settings' order, names the rule.
    2a. Answers in 127.255.255.0/24 are the zone's error codes, not listings (Spamhaus:
       127.255.255.254 "query via public/open resolver", .255 "excessive number of
       queries"; they "should NOT be interpreted as any sort of reputation"). Taken as
       listings they would list every client — with action reject, refuse all mail. Such an
       answer counts as "not listed", is cached for its TTL like one, and is counted
       (`on_refused`, the Status page's "Real-time blacklist queries refused").
    3. Results are cached per (zone, IP) for the answer's TTL — positive answers by the A
       record TTL, NXDOMAIN by the negative TTL of the zone's SOA (RFC 2308 §5) — capped at
       MAX_CACHE_SECONDS and MAX_CACHE_ENTRIES (expired entries go first, then the oldest).
    4. Time-limited: all zones together get `min(dns.timeout_seconds, MAX_LOOKUP_SECONDS)`.
       A zone that does not answer in time, or fails (SERVFAIL, no server), counts as "not
       listed" and is not cached: a dead DNS server delays a connection by the limit at
       most and never refuses mail.
    5. Nothing here writes events or replies; the session does (core/smtp/server.py).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver
import trio

from core.delivery.mx import LookupFailed
from core.smtp.policy import Refusal
from core.smtp.replies import Reply
from core.scan.antispam.lists import whitelist_match, address_domain
from shared.dnsxl import ERROR_CODE_NET, LISTING_NET

__all__ = ["RblChecker", "RblListing", "query_name", "sender_whitelisted", "check_rbl_sender",
           "R550_RBL_LISTED", "MAX_LOOKUP_SECONDS", "MAX_CACHE_SECONDS",
           "MAX_CACHE_ENTRIES"]

MAX_LOOKUP_SECONDS = 5.0          # a connection waits at most this for all zones
MAX_CACHE_SECONDS = 3600          # even a zone with a day-long TTL is asked again hourly
DEFAULT_NEGATIVE_SECONDS = 60     # NXDOMAIN without an SOA in the answer
MAX_CACHE_ENTRIES = 50_000

R550_RBL_LISTED = Reply(550, "5.7.1", "Client host rejected: listed in a real-time blacklist")


@dataclass(frozen=True)
class RblListing:
    ip: str
    zone: str
    codes: tuple[str, ...]

    def to_meta(self) -> dict:
        """The envelope's meta["rbl"] (read by core/pipeline/checks/rbl.py)."""
        return {"ip": self.ip, "zone": self.zone, "codes": list(self.codes)}


def query_name(ip: str, zone: str) -> str:
    """Rule 1. Raises ValueError for something that is not an IP address."""
    address = ipaddress.ip_address(ip)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        labels = str(address).split(".")[::-1]
    else:
        labels = list(address.exploded.replace(":", ""))[::-1]
    return ".".join(labels) + "." + zone.rstrip(".")


def sender_whitelisted(sender: str, settings, auto_whitelisted=None) -> bool:
    """Does the custom (or auto-generated) whitelist let this envelope sender through?"""
    if settings["whitelist.custom.enabled"] and whitelist_match(sender,
                                                                 settings["whitelist.custom"]):
        return True
    if settings["whitelist.auto.enabled"] and auto_whitelisted is not None:
        return bool(auto_whitelisted(address_domain(sender), settings))
    return False


def check_rbl_sender(listing: RblListing | None, sender: str, settings,
                     auto_whitelisted=None) -> Refusal | None:
    """At MAIL FROM (SPEC §3 rbl.action "reject"): 550 5.7.1 for a listed client unless the
    envelope sender is whitelisted."""
    if listing is None or settings["rbl.action"] != "reject":
        return None
    if sender_whitelisted(sender, settings, auto_whitelisted):
        return None
    return Refusal(R550_RBL_LISTED, f"rbl.zones {listing.zone}",
                   f"client {listing.ip} listed in {listing.zone} ({', '.join(listing.codes)})")


class RblChecker:
    def __init__(self, resolver, *, clock=trio.current_time,
                 max_entries: int = MAX_CACHE_ENTRIES, on_refused=lambda: None):
        self.resolver = resolver
        self.on_refused = on_refused    # called per answer that is only error codes (rule 2a)
        self.clock = clock
        self.max_entries = max_entries
        # (zone, ip) -> (expires_at, answer codes or () for "not listed")
        self.cache: OrderedDict[tuple[str, str], tuple[float, tuple[str, ...]]] = OrderedDict()
        self.lookups = 0          # DNS queries sent (tests read it)

    @staticmethod
    def enabled_zones(settings) -> list[dict]:
        return [z for z in settings["rbl.zones"] if z.get("enabled", True)]

    async def check(self, client_ip: str, settings) -> RblListing | None:
        """The first zone (settings order) that lists `client_ip`, or None (rules 2-4)."""
        zones = self.enabled_zones(settings)
        if not zones:
            return None
        try:
            ipaddress.ip_address(client_ip)
        except ValueError:
            return None
        results: dict[str, tuple[str, ...] | None] = {}
        limit = min(float(settings["dns.timeout_seconds"]), MAX_LOOKUP_SECONDS)
        with trio.move_on_after(limit):
            async with trio.open_nursery() as nursery:
                for zone in zones:
                    nursery.start_soon(self._zone, client_ip, zone["zone"], results)
        for zone in zones:
            codes = results.get(zone["zone"])
            if not codes:
                continue
            wanted = set(zone.get("return_codes") or ())
            hits = tuple(c for c in codes if not wanted or c in wanted)
            if hits:
                return RblListing(client_ip, zone["zone"], hits)
        return None

    async def _zone(self, ip: str, zone: str, results: dict) -> None:
        key = (zone.lower(), ip)
        now = self.clock()
        cached = self.cache.get(key)
        if cached is not None and cached[0] > now:
            results[zone] = cached[1]
            return
        self.lookups += 1
        name = query_name(ip, zone)
        try:
            answer = await self.resolver.lookup(name, "A")
        except dns.resolver.NXDOMAIN as exc:
            self._store(key, (), _negative_ttl(exc))
            results[zone] = ()
            return
        except (LookupFailed, dns.exception.DNSException, OSError):
            return                     # rule 4: not listed, not cached
        if answer is None:             # NODATA: the name exists but has no A record
            self._store(key, (), DEFAULT_NEGATIVE_SECONDS)
            results[zone] = ()
            return
        answered = {ipaddress.ip_address(rr.address) for rr in answer}
        codes = tuple(sorted(str(a) for a in answered
                             if a in LISTING_NET and a not in ERROR_CODE_NET))
        if not codes and any(a in ERROR_CODE_NET for a in answered):
            self.on_refused()
        ttl = answer.rrset.ttl if answer.rrset is not None else DEFAULT_NEGATIVE_SECONDS
        self._store(key, codes, ttl)
        results[zone] = codes

    def _store(self, key, codes: tuple[str, ...], ttl: float) -> None:
        ttl = max(0.0, min(float(ttl), MAX_CACHE_SECONDS))
        if ttl <= 0:
            return
        now = self.clock()
        self.cache[key] = (now + ttl, codes)
        self.cache.move_to_end(key)
        if len(self.cache) > self.max_entries:
            for stale in [k for k, (expires, _) in self.cache.items() if expires <= now]:
                del self.cache[stale]
            while len(self.cache) > self.max_entries:
                self.cache.popitem(last=False)


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """RFC 2308 §5: the SOA's TTL and MINIMUM, the smaller, from the NXDOMAIN response."""
    try:
        for response in exc.responses().values():
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    return min(rrset.ttl, rrset[0].minimum)
    except Exception:
        pass
    return DEFAULT_NEGATIVE_SECONDS
