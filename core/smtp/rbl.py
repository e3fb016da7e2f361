"""Real-time blacklist lookups at connect (SPEC §3 rbl.*, §5 step 1; RFC 5782; guide §5
"Blocking by real-time antispam blacklists").

What it owns
    `RblChecker(resolver).answers(client_ip, settings)` -> `RblAnswers`: the client IP is
    looked up in each enabled zone of `rbl.zones` (at most 3) at once, through the core's
    dnspython resolver on trio (core/delivery/mx.py `Resolver.lookup`, which follows
    `dns.resolvers`). `RblAnswers.listing(settings)` -> `RblListing | None` says which zone
    lists the client under the settings in force when it is asked (`check` does both at
    once). `sender_whitelisted(...)` answers the MAIL FROM question for the `reject` action;
    `R550_RBL_LISTED(listing)` is its reply, naming the client and the zone that lists it
    ("blocked using zen.example", as Postfix says it), so the sender's postmaster knows
    whom to ask for delisting (antispam21 C4: it said only "a real-time blacklist").

Rules
    1. Query names per RFC 5782 §2.1 and §2.4: IPv4 octets reversed ("2.0.0.127.zone"),
       IPv6 as 32 reversed nibbles ("1.0.0.0...8.b.d.0.1.0.0.2.zone"); an IPv4-mapped IPv6
       client is looked up as IPv4.
    2. Listed = an A record in 127.0.0.0/8 (RFC 5782 §2.1: other values are not list
       entries — a resolver that rewrites NXDOMAIN must not list everybody). With
       `return_codes` the zone lists the client only when one of its answers is one of them
       (guide: "only the email messages that are associated with the return codes will be
       blocked"); without, any 127/8 answer lists it. The first listing zone, in the
       settings' order, names the rule. The answers are kept unfiltered (`RblAnswers`) and
       filtered by the settings of the moment (shared/dnsxl.py): a zone removed or disabled
       since the lookup no longer lists anybody, and changed return codes apply at once
       (SPEC §3 "every setting applies live").
    2a. Answers in 127.255.255.0/24 are the zone's error codes, not listings (Spamhaus:
       127.255.255.254 "query via public/open resolver", .255 "excessive number of
       queries"; they "should NOT be interpreted as any sort of reputation"). Taken as
       listings they would list every client — with action reject, refuse all mail. Such an
       answer counts as "not listed", is cached for its TTL like one, and is counted
       (`on_refused`, the Status page's "Real-time blacklist queries refused").
    3. Results are cached per (zone, IP) for the answer's TTL — positive answers by the A
       record TTL, NXDOMAIN by the negative TTL of the zone's SOA (RFC 2308 §5) — capped at
       MAX_CACHE_SECONDS and MAX_CACHE_ENTRIES. Storing costs O(log n) amortised, never a
       scan of the cache: expired entries leave first (a heap of expiry times), then the
       oldest stored (the front of the OrderedDict).
    4. Time-limited: all zones together get `min(dns.timeout_seconds, MAX_LOOKUP_SECONDS)`.
       A zone that does not answer in time, or fails (SERVFAIL, no server), counts as "not
       listed" and is not cached: a dead DNS server never refuses mail.
    5. Circuit breaker per zone: FAILURES_TO_SUSPEND failed or timed-out lookups of a zone in
       a row, within FAILURE_WINDOW_SECONDS, suspend it for SUSPEND_SECONDS. A suspended
       zone is not asked (cached answers still count): the client counts as not listed
       there at once, and each such skip is counted (`on_skipped`, the Status page's
       "Real-time blacklist lookups skipped"). Without it every connection would wait the
       whole time limit while holding its smtp.max_incoming slot, capping intake at
       max_incoming / time limit connections a second. When the suspension ends one
       lookup probes the zone (the others keep skipping it meanwhile): an answer, even
       NXDOMAIN, ends the suspension, a failure renews it. A change of `dns.resolvers` or
       `dns.timeout_seconds` ends every suspension (the operator fixed the DNS).
       `on_suspended(zone, failures)` is called once per suspension, not per renewal: an
       administrator learns that a zone has gone dark (mail from its listed clients gets
       through meanwhile) from an event (and its Scan Error alert), not only from a
       counter on the Status page.
    6. Nothing here writes events or replies; the listener does: core/smtp/session.py
       asks at connect and writes the session's events (`Session.record`),
       core/smtp/transaction.py answers MAIL FROM (the refusal, and its event through the
       session), core/smtp/server.py writes a zone's suspension event.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

import dns.exception
import dns.rdatatype
import dns.resolver
import trio

from core.delivery.mx import LookupFailed
from core.smtp.policy import Refusal
from core.smtp.replies import Reply
from core.scan.antispam.lists import whitelist_match, address_domain
from shared.dnsxl import enabled_zones, is_error_code, is_listing, listing_codes, zone_key

__all__ = ["RblChecker", "RblAnswers", "RblListing", "query_name", "sender_whitelisted",
           "check_rbl_sender", "R550_RBL_LISTED", "MAX_LOOKUP_SECONDS", "MAX_CACHE_SECONDS",
           "MAX_CACHE_ENTRIES", "FAILURES_TO_SUSPEND", "FAILURE_WINDOW_SECONDS",
           "SUSPEND_SECONDS"]

MAX_LOOKUP_SECONDS = 5.0          # a connection waits at most this for all zones
MAX_CACHE_SECONDS = 3600          # even a zone with a day-long TTL is asked again hourly
DEFAULT_NEGATIVE_SECONDS = 60     # NXDOMAIN without an SOA in the answer
MAX_CACHE_ENTRIES = 50_000
FAILURES_TO_SUSPEND = 3           # rule 5: this many failed lookups of a zone in a row...
FAILURE_WINDOW_SECONDS = 60.0     # ...within this long...
SUSPEND_SECONDS = 30.0            # ...and the zone is skipped for this long


@dataclass(frozen=True)
class RblListing:
    ip: str
    zone: str
    codes: tuple[str, ...]

    def to_meta(self) -> dict:
        """The envelope's meta["rbl"] (read by core/pipeline/checks/rbl.py)."""
        return {"ip": self.ip, "zone": self.zone, "codes": list(self.codes)}


@dataclass(frozen=True)
class RblAnswers:
    """What the zones answered for one client: zone_key -> the answer's listing codes, not
    yet filtered by return codes ("()" = not listed). A zone that timed out, failed or was
    skipped (rule 5) is absent, as is a zone that was not enabled when it was asked."""
    ip: str
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def listing(self, settings) -> RblListing | None:
        """The first zone enabled in *settings* (their order) whose answer lists the client
        under that zone's return codes in *settings* (rule 2)."""
        for zone in enabled_zones(settings):
            codes = self.codes.get(zone_key(zone["zone"]))
            hits = listing_codes(codes, zone) if codes else ()
            if hits:
                return RblListing(self.ip, zone["zone"], hits)
        return None


def R550_RBL_LISTED(listing: RblListing) -> Reply:  # noqa: N802 - named like the constants
    """The refusal at MAIL FROM of a client `listing` lists (rules above; the zone is a
    domain name in ASCII, the settings keep A-labels)."""
    return Reply(550, "5.7.1", f"Client host [{listing.ip}] blocked using {listing.zone}")


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
    return Refusal(R550_RBL_LISTED(listing), f"rbl.zones {listing.zone}",
                   f"client {listing.ip} listed in {listing.zone} ({', '.join(listing.codes)})")


@dataclass
class _ZoneHealth:
    """Rule 5: one zone's run of failed lookups."""
    failures: int = 0
    first_failure: float = 0.0
    suspended_until: float | None = None
    probing: bool = False          # a lookup after the suspension is under way


class RblChecker:
    def __init__(self, resolver, *, clock=trio.current_time,
                 max_entries: int = MAX_CACHE_ENTRIES, on_refused=lambda: None,
                 on_skipped=lambda: None, on_suspended=lambda zone, failures: None):
        self.resolver = resolver
        self.on_refused = on_refused    # called per answer that is only error codes (rule 2a)
        self.on_skipped = on_skipped    # called per lookup of a suspended zone skipped (rule 5)
        self.on_suspended = on_suspended  # a zone suspended (rule 5), once per episode
        self.clock = clock
        self.max_entries = max_entries
        # (zone_key, ip) -> (expires_at, answer codes or () for "not listed"), oldest first
        self.cache: OrderedDict[tuple[str, str], tuple[float, tuple[str, ...]]] = OrderedDict()
        # (expires_at, key) per store; a row whose entry was stored again or evicted since is
        # stale and skipped when it surfaces
        self._expiries: list[tuple[float, tuple[str, str]]] = []
        self.health: dict[str, _ZoneHealth] = {}      # zone_key -> its failures (rule 5)
        self._dns_key: tuple | None = None
        self.lookups = 0          # DNS queries sent (tests read it)

    enabled_zones = staticmethod(enabled_zones)

    async def check(self, client_ip: str, settings) -> RblListing | None:
        """The first zone (settings order) that lists `client_ip`, or None (rules 2-5)."""
        return (await self.answers(client_ip, settings)).listing(settings)

    async def answers(self, client_ip: str, settings) -> RblAnswers:
        """Each enabled zone's answer for `client_ip`, from the cache or asked at once within
        the time limit (rules 3-5)."""
        results: dict[str, tuple[str, ...]] = {}
        zones = enabled_zones(settings)
        try:
            ipaddress.ip_address(client_ip)
        except ValueError:
            zones = []
        if zones:
            dns_key = (tuple(settings["dns.resolvers"]), settings["dns.timeout_seconds"])
            if dns_key != self._dns_key:      # rule 5: new DNS settings, fresh chances
                self._dns_key = dns_key
                self.health.clear()
            limit = min(float(settings["dns.timeout_seconds"]), MAX_LOOKUP_SECONDS)
            deadline = trio.current_time() + limit
            async with trio.open_nursery() as nursery:
                for zone in {zone_key(z["zone"]) for z in zones}:
                    nursery.start_soon(self._zone, client_ip, zone, deadline, results)
        return RblAnswers(client_ip, results)

    async def _zone(self, ip: str, zone: str, deadline: float, results: dict) -> None:
        key = (zone, ip)
        now = self.clock()
        cached = self.cache.get(key)
        if cached is not None and cached[0] > now:
            results[zone] = cached[1]
            return
        health = self.health.get(zone)
        probe = False
        if health is not None and health.suspended_until is not None:
            if now < health.suspended_until or health.probing:
                self.on_skipped()
                return
            health.probing = probe = True
        self.lookups += 1
        answered: bool | None = None       # None: interrupted from outside (shutdown)
        try:
            with trio.move_on_at(deadline):
                answered = await self._ask(ip, zone, results)
            if answered is None:
                answered = False            # the time limit
        finally:
            self._after_lookup(zone, answered, probe)

    async def _ask(self, ip: str, zone: str, results: dict) -> bool:
        """One DNS query; True when the zone answered (listed or not), False on failure."""
        key = (zone, ip)
        try:
            answer = await self.resolver.lookup(query_name(ip, zone), "A")
        except dns.resolver.NXDOMAIN as exc:
            self._store(key, (), _negative_ttl(exc))
            results[zone] = ()
            return True
        except (LookupFailed, dns.exception.DNSException, OSError):
            return False                   # rule 4: not listed, not cached
        if answer is None:                 # NODATA: the name exists but has no A record
            self._store(key, (), DEFAULT_NEGATIVE_SECONDS)
            results[zone] = ()
            return True
        answered = {ipaddress.ip_address(rr.address) for rr in answer}
        codes = tuple(sorted(str(a) for a in answered if is_listing(a)))
        if not codes and any(is_error_code(a) for a in answered):
            self.on_refused()
        ttl = answer.rrset.ttl if answer.rrset is not None else DEFAULT_NEGATIVE_SECONDS
        self._store(key, codes, ttl)
        results[zone] = codes
        return True

    def _after_lookup(self, zone: str, answered: bool | None, probe: bool) -> None:
        """Rule 5's bookkeeping after one lookup of *zone*."""
        health = self.health.get(zone)
        if probe and health is not None:
            health.probing = False
        if answered is None:
            return
        if answered:
            self.health.pop(zone, None)
            return
        now = self.clock()
        if health is None:
            health = self.health[zone] = _ZoneHealth(first_failure=now)
        if health.suspended_until is not None:
            # A failed probe suspends the zone again; a lookup that began before the
            # suspension and failed after it changes nothing.
            if probe:
                health.suspended_until = now + SUSPEND_SECONDS
            return
        if now - health.first_failure > FAILURE_WINDOW_SECONDS:
            health.failures, health.first_failure = 0, now
        health.failures += 1
        if health.failures >= FAILURES_TO_SUSPEND:
            health.suspended_until = now + SUSPEND_SECONDS
            self.on_suspended(zone, health.failures)

    def suspended(self, zone: str) -> bool:
        """Is *zone* skipped now (rule 5)? (for tests and diagnostics)"""
        health = self.health.get(zone_key(zone))
        return (health is not None and health.suspended_until is not None
                and (self.clock() < health.suspended_until or health.probing))

    def _store(self, key, codes: tuple[str, ...], ttl: float) -> None:
        ttl = max(0.0, min(float(ttl), MAX_CACHE_SECONDS))
        if ttl <= 0:
            return
        now = self.clock()
        expires = now + ttl
        self.cache[key] = (expires, codes)
        self.cache.move_to_end(key)
        heapq.heappush(self._expiries, (expires, key))
        self._evict(now)

    def _evict(self, now: float) -> None:
        """Rule 3. Every heap row is pushed once and popped at most once, so the expired
        entries cost O(log n) each; the oldest go from the front of the OrderedDict in O(1)."""
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            entry = self.cache.get(key)
            if entry is not None and entry[0] == expires:
                del self.cache[key]
        while len(self.cache) > self.max_entries:
            self.cache.popitem(last=False)
        # Rows of entries evicted unexpired, or stored again, would pile up until they expire
        # (an hour at most): rebuilt once they outnumber the entries twice — O(n) at most
        # every n stores.
        if len(heap) > 2 * len(self.cache) + 64:
            self._expiries = [(expires, key) for key, (expires, _) in self.cache.items()]
            heapq.heapify(self._expiries)


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
