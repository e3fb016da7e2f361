"""Turning a next hop into the hosts and addresses to connect to (RFC 5321 §5.1, RFC 7505).

What this module owns
    `candidates(hop, settings)` -> ordered `Candidate`s (host, port, addresses) for a
    `routing.NextHop`, using dnspython's async resolver on trio (sniffio picks the backend).
    `make_resolver(settings)` builds that resolver (StaggeredResolver: the servers in turn)
    from `dns.resolvers` / `dns.timeout_seconds`; other features that need DNS (RBL, a
    client's name) use it too.

Rules
    1. MX records are tried in ascending preference; hosts with equal preference are
       shuffled (RFC 5321 §5.1 "randomize them to spread the load"). An MX record names
       a host (RFC 5321 §5.1; RFC 2181 §10.3: its data "must point to a host which itself
       can be resolved"): a target written as an IP address ("MX 10 192.0.2.1.") is
       looked up as a name like any other and, where it does not resolve, left out like
       any MX host without an address: with no host left, the mail fails with 5.4.4, or
       waits when a lookup failed for the moment. Postfix looks it up as a host name too
       (and logs it "malformed"); Exim refuses it unless allow_mx_to_ip. It was once
       connected to as it was: mail went where a zone's mistake pointed. A relay host
       may be an IP address (rule 5): the administrator wrote it.
    2. No MX record at all (NOERROR, empty answer) -> the domain's own A/AAAA as an implicit
       MX of preference 0 (RFC 5321 §5.1).
    3. A null MX (a single MX with exchange ".", RFC 7505) -> permanent failure 5.1.10.
    4. NXDOMAIN of the domain -> permanent failure (5.1.2, "domain not found"); SERVFAIL,
       a timeout or no reachable server -> temporary failure (4.4.3): try again later.
    5. A relay host (routing.local relay / routing.default) is the administrator's own
       choice: every failure to resolve it is temporary — a typo must not bounce mail.
    6. Every lookup is limited by `dns.timeout_seconds` (dnspython's lifetime, plus a trio
       deadline as a backstop). Addresses per host: IPv4 first, then IPv6; at most
       MAX_MX_HOSTS hosts are tried.
    7. A client's name is its forward-confirmed PTR name (FCrDNS): a PTR name of its
       address whose A (IPv4) or AAAA (IPv6) records include that address; of several PTR
       names the first that does, of at most MAX_PTR_NAMES. Whoever holds an address block
       writes its PTR records, so 203.0.113.9 may call itself mail.example.com; only the
       name's own zone can confirm it (Postfix names such a client "unknown"). A failed
       lookup, PTR or forward, confirms nothing: the client has no name. The forward
       lookups run side by side, so the whole takes at most two lookups' time.

Never: use the system resolver when `dns.resolvers` lists servers, block the event loop, or
raise anything but LookupFailed for a DNS outcome.
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver
import dns.reversename
import trio

from core.delivery.routing import NextHop

__all__ = ["Candidate", "LookupFailed", "Resolver", "candidates", "make_resolver",
           "parse_resolver", "order_mx", "MAX_MX_HOSTS", "MAX_PTR_NAMES"]

MAX_MX_HOSTS = 10                 # Postfix tries 5 addresses; 10 hosts is plenty
MAX_PTR_NAMES = 5                 # each costs a forward lookup before the greeting
TRIO_DEADLINE_MARGIN_SECONDS = 1  # the backstop above dnspython's own lifetime


@dataclass(frozen=True)
class Candidate:
    """One host to try, in order; `addresses` are IPs to connect to, in order."""
    host: str
    port: int
    addresses: tuple[str, ...]
    preference: int = 0


class LookupFailed(Exception):
    """DNS could not give a destination. `is_permanent` decides bounce vs. retry;
    `status` is the RFC 3463 code for the DSN."""

    def __init__(self, text: str, *, is_permanent: bool, status: str) -> None:
        super().__init__(text)
        self.text = text
        self.is_permanent = is_permanent
        self.status = status


def parse_resolver(entry: str) -> tuple[str, int]:
    """"IP", "IP:port" or "[IPv6]:port" -> (ip, port)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, 53


def make_resolver(settings: Mapping) -> StaggeredResolver:
    """A resolver for the settings snapshot; the system's configuration when the list is empty."""
    entries = list(settings.get("dns.resolvers") or [])
    if entries:
        servers = [dns.nameserver.Do53Nameserver(*parse_resolver(e)) for e in entries]
    else:
        servers = list(dns.asyncresolver.Resolver().nameservers)
    limit = float(settings.get("dns.timeout_seconds") or 5)
    return StaggeredResolver([_one_server(server, limit) for server in servers], limit)


def _one_server(server, limit: float) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.lifetime = resolver.timeout = limit
    resolver.cache = None
    return resolver


STAGGER_SECONDS = 1.0   # a server that has not answered by then: the next is asked too


class StaggeredResolver:
    """The servers of `dns.resolvers` asked in turn within one lookup's time limit, the next
    one as soon as the one before fails or after STAGGER_SECONDS without an answer; the
    first answer (records, none, or NXDOMAIN) decides. dnspython asks its servers one after
    the other, each for a share of the limit: with the whole limit a dead first server used
    it up (ipv6 finding 1), with a share a slow server that answers within the limit was
    given up on (regress11 finding 1). A dead server now costs STAGGER_SECONDS, a slow one
    nothing."""

    def __init__(self, servers: list[dns.asyncresolver.Resolver], lifetime: float):
        self.servers = servers
        self.lifetime = lifetime

    async def resolve(self, name: str, rdtype: str, search: bool = False):
        if len(self.servers) == 1:
            return await self.servers[0].resolve(name, rdtype, search=search)
        decided: list = []          # [("answer", answer) | ("raise", exception)]
        failures: list[Exception] = []
        with trio.move_on_after(self.lifetime):
            async with trio.open_nursery() as nursery:
                async def ask(server, failed: trio.Event) -> None:
                    try:
                        answer = await server.resolve(name, rdtype, search=search)
                    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
                        decided.append(("raise", exc))
                    except (dns.exception.DNSException, OSError) as exc:
                        failures.append(exc)
                        failed.set()
                        return
                    else:
                        decided.append(("answer", answer))
                    nursery.cancel_scope.cancel()

                for server in self.servers:
                    failed = trio.Event()
                    nursery.start_soon(ask, server, failed)
                    with trio.move_on_after(STAGGER_SECONDS):
                        await failed.wait()
        if decided:
            kind, value = decided[0]
            if kind == "raise":
                raise value
            return value
        if failures and len(failures) == len(self.servers):
            raise failures[-1]
        raise dns.exception.Timeout(timeout=self.lifetime)


class Resolver:
    """The core's DNS access, shared by delivery and SMTP-time policy (client name, RBL).

    `settings` is the settings callable; the dnspython resolver is rebuilt when
    `dns.resolvers` or `dns.timeout_seconds` change.
    """

    def __init__(self, settings: Callable[[], Mapping], *, rng: random.Random | None = None):
        self._settings = settings
        self._rng = rng or random.Random()
        self._key: tuple | None = None
        self._resolver: dns.asyncresolver.Resolver | None = None

    def resolver(self, settings: Mapping | None = None) -> dns.asyncresolver.Resolver:
        settings = settings if settings is not None else self._settings()
        key = (tuple(settings.get("dns.resolvers") or ()), settings.get("dns.timeout_seconds"))
        if key != self._key or self._resolver is None:
            self._resolver, self._key = make_resolver(settings), key
        return self._resolver

    async def candidates(self, hop: NextHop, settings: Mapping | None = None) -> list[Candidate]:
        """See the module function `candidates`; raises LookupFailed."""
        settings = settings if settings is not None else self._settings()
        return await candidates(hop, settings, rng=self._rng, resolver=self.resolver(settings))

    async def confirmed_ptr(self, ip: str) -> str | None:
        """The forward-confirmed PTR name of *ip* (rule 7), lower case without the final dot;
        None when no PTR name resolves back to *ip* or DNS fails."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if address.version == 6 and address.ipv4_mapped:   # a dual-stack listener's client
            address = address.ipv4_mapped
        resolver = self.resolver()
        # Two lookups deep, the forward ones side by side: the greeting waits at most two
        # limits, however many names the client's own PTR records list (it writes them).
        with trio.move_on_after(2 * resolver.lifetime + TRIO_DEADLINE_MARGIN_SECONDS):
            try:
                answer = await _query(
                    resolver, dns.reversename.from_address(str(address)).to_text(), "PTR")
            except (LookupFailed, dns.exception.DNSException):
                return None
            names = list(dict.fromkeys(filter(None, (
                str(rr.target).rstrip(".").lower() for rr in answer or ()))))[:MAX_PTR_NAMES]
            rdtype = "A" if address.version == 4 else "AAAA"
            confirmed: set[str] = set()

            async def confirm(name: str) -> None:
                try:
                    forward = await _query(resolver, name, rdtype)
                except (LookupFailed, dns.exception.DNSException):
                    return
                if any(ipaddress.ip_address(rr.address) == address for rr in forward or ()):
                    confirmed.add(name)

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(confirm, name)
            return next((name for name in names if name in confirmed), None)
        return None

    async def addresses(self, host: str) -> tuple[str, ...]:
        """IPv4 then IPv6 addresses of *host*; raises LookupFailed (NXDOMAIN is permanent)."""
        return await _addresses(host, self.resolver())

    async def lookup(self, name: str, rdtype: str):
        """A raw answer for RBL/TXT-style lookups: None for NODATA; NXDOMAIN propagates as
        dns.resolver.NXDOMAIN; other failures raise LookupFailed (temporary)."""
        return await _query(self.resolver(), name, rdtype)


async def candidates(hop: NextHop, settings: Mapping, *,
                     rng: random.Random | None = None,
                     resolver: dns.asyncresolver.Resolver | None = None) -> list[Candidate]:
    """Ordered candidates for *hop*; raises LookupFailed (never an empty list)."""
    resolver = resolver or make_resolver(settings)
    if hop.kind == "relay":
        return [await _relay(hop, resolver)]
    return await _mx(hop, resolver, rng or random.Random())


async def _relay(hop: NextHop, resolver) -> Candidate:
    if _is_ip(hop.name):
        return Candidate(hop.name, hop.port, (hop.name,))
    try:
        addresses = await _addresses(hop.name, resolver)
    except LookupFailed as failure:
        raise LookupFailed(f"relay {hop.name}: {failure.text}", is_permanent=False,
                           status="4.4.3") from None
    if not addresses:
        raise LookupFailed(f"relay {hop.name} has no address", is_permanent=False,
                           status="4.4.3")
    return Candidate(hop.name, hop.port, addresses)


async def _mx(hop: NextHop, resolver, rng: random.Random) -> list[Candidate]:
    domain = hop.name
    try:
        answer = await _query(resolver, domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise LookupFailed(f"domain {domain} not found", is_permanent=True,
                           status="5.1.2") from None
    if answer is None:     # no MX: the domain itself is the implicit MX (RFC 5321 §5.1)
        addresses = await _addresses(domain, resolver)
        if not addresses:
            raise LookupFailed(f"domain {domain} has no MX and no address", is_permanent=True,
                               status="5.1.2")
        return [Candidate(domain, hop.port, addresses)]
    records = [(rr.preference, str(rr.exchange).lower().rstrip(".")) for rr in answer]
    if any(host == "" for _, host in records):   # RFC 7505 §3: "." means no mail
        raise LookupFailed(f"domain {domain} does not accept mail (null MX)",
                           is_permanent=True, status="5.1.10")
    ordered = order_mx(records, rng)[:MAX_MX_HOSTS]
    result: list[Candidate] = []
    temporary: LookupFailed | None = None
    for preference, host in ordered:
        try:
            addresses = await _addresses(host, resolver)     # an IP too is a name (rule 1)
        except LookupFailed as failure:
            if not failure.is_permanent and temporary is None:
                temporary = failure
            continue
        if addresses:
            result.append(Candidate(host, hop.port, addresses, preference))
    if result:
        return result
    if temporary is not None:
        raise LookupFailed(f"MX hosts of {domain}: {temporary.text}", is_permanent=False,
                           status="4.4.3")
    raise LookupFailed(f"no MX host of {domain} has an address", is_permanent=True,
                       status="5.4.4")


def order_mx(records: list[tuple[int, str]], rng: random.Random) -> list[tuple[int, str]]:
    """Ascending preference, equal preferences shuffled (RFC 5321 §5.1)."""
    shuffled = list(records)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda record: record[0])   # sort is stable


async def _addresses(host: str, resolver) -> tuple[str, ...]:
    """IPv4 then IPv6 addresses of *host*; () when it has none.

    Raises LookupFailed: permanent on NXDOMAIN, temporary on SERVFAIL / timeout."""
    found: list[str] = []
    failure: LookupFailed | None = None
    for rdtype in ("A", "AAAA"):
        try:
            answer = await _query(resolver, host, rdtype)
        except dns.resolver.NXDOMAIN:
            raise LookupFailed(f"host {host} not found", is_permanent=True,
                               status="5.4.4") from None
        except LookupFailed as exc:
            failure = exc
            continue
        if answer is not None:
            found.extend(rr.address for rr in answer)
    if not found and failure is not None:
        raise failure
    return tuple(found)


async def _query(resolver, name: str, rdtype: str):
    """The answer, or None for NOERROR without records; NXDOMAIN propagates;
    every other failure becomes a temporary LookupFailed."""
    limit = (resolver.lifetime or 5) + TRIO_DEADLINE_MARGIN_SECONDS
    try:
        with trio.fail_after(limit):
            return await resolver.resolve(name, rdtype, search=False)
    except dns.resolver.NoAnswer:
        return None
    except dns.resolver.NXDOMAIN:
        raise
    except (dns.exception.Timeout, trio.TooSlowError):
        raise LookupFailed(f"DNS timeout looking up {rdtype} of {name}", is_permanent=False,
                           status="4.4.3") from None
    except dns.resolver.NoNameservers:
        raise LookupFailed(f"DNS server failure looking up {rdtype} of {name}",
                           is_permanent=False, status="4.4.3") from None
    except (dns.exception.DNSException, OSError) as exc:
        raise LookupFailed(f"DNS error looking up {rdtype} of {name}: {exc}",
                           is_permanent=False, status="4.4.3") from None


@functools.lru_cache(maxsize=1024)   # asked for every delivery to a relay host
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
