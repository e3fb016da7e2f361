"""Where a recipient's mail goes next: the routing decision (SPEC §3 Routing, guide §3).

What this module owns
    `route(domain, settings)` -> `NextHop`, a pure function of the recipient domain and
    the settings snapshot. No DNS here: a `NextHop` says *what* to look up (a relay host's
    addresses, or the MX records of a domain); `core/delivery/mx.py` does the looking.

Rules (first that applies wins)
    1. `routing.local`: entries are tried in order (`shared/idn.py` `first_matching`). A
       domain `match` is a `*`/`?` wildcard pattern compared case-insensitively with the
       whole domain (`shared/wildcard.py`), both in their A-label form (mail to
       user@münchen.de, SMTPUTF8, is local under `xn--mnchen-3ya.de`, and the reverse). An
       address `match` (`[192.0.2.10]`, `[192.0.2.*]`, `[IPv6:2001:db8::10]`) is compared
       with the address an address literal names (user@[192.0.2.10]) and with nothing else:
       entry `192.0.2.*` never makes 192.0.2.attacker.example local. The first match
       makes the destination *local* — for the relay check (core/smtp/policy.py) and the
       disclaimer too, which ask the same `shared/idn.py` question. With `relay` the next
       hop is that host and the entry's port; without it, an address literal's own address
       (RFC 5321 §5.1: it names the host), else the MX of the matched name (the entry's
       `match` itself, or the recipient's domain when `match` has wildcards — an MX of
       "*.example.com" does not exist), on the entry's port. A domain a hop names is in
       A-label form, the one DNS answers for.
    2. `routing.default` {"host", "port"}: every non-local destination goes to that relay.
    3. Otherwise: MX delivery to the domain on port 25 (RFC 5321 §5.1).
    An address literal (`user@[192.0.2.1]`) not routed by rules 1-2 goes to that address.
    `NextHop.rule` names the setting that decided (SPEC §5: every decision names its rule;
    the delivery events carry it): "routing.local:<match>" under rule 1, else
    "routing.default" — its relay, or, while it is null, the MX or the literal's address
    (rule 3 is what null routing.default means). MX deliveries once named none, and a
    report could not filter on them (outbound19 C4).
    A relay host is written one way wherever it comes from (`relay_host`: routing.local,
    routing.default, av.central_quarantine): `[::1]`, `0:0::1` and `::1` are one next hop,
    and a bracketed address is never looked up in DNS as a name.

Never: resolve names, read the clock, or depend on anything but its arguments.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.idn import address_literal, ascii_pattern, domain_form, first_matching

__all__ = ["NextHop", "route", "domain_of", "relay_host", "host_port", "SMTP_PORT"]

SMTP_PORT = 25  # RFC 5321 §4.5.4.2 — and the port MX hosts listen on


def host_port(host: str, port: int) -> str:
    """`host:port` as texts write it: an IPv6 address in brackets (`[::1]:25`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NextHop:
    """Where to deliver: `kind` "relay" (connect to `name`) or "mx" (MX records of `name`).

    `key` names the next hop in envelopes, events and the connection pool; two recipients
    with the same key travel in one SMTP transaction.
    """
    kind: str          # "relay" | "mx"
    name: str          # host name / IP for "relay", domain for "mx" (lower case, no final dot,
                       # an A-label domain)
    port: int = SMTP_PORT
    is_local: bool = False
    rule: str | None = None    # what decided: "routing.local:<match>" or "routing.default"

    @property
    def destination(self) -> str:
        return host_port(self.name, self.port)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.destination}"


def domain_of(address: str) -> str:
    """The domain part of an address, lower case without a final dot ("" when none)."""
    _local, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def route(domain: str, settings: Mapping) -> NextHop:
    """The next hop for mail to *domain* under the settings snapshot (see the rules)."""
    return route_with(domain, settings.get("routing.local") or (),
                      settings.get("routing.default"))


def route_with(domain: str, local: Sequence[Mapping], default: Mapping | None) -> NextHop:
    domain = domain_form(domain)
    literal = address_literal(domain)
    index = first_matching((str(entry["match"]) for entry in local), domain)
    if index is not None:
        entry = local[index]
        pattern = str(entry["match"])
        port = int(entry.get("port") or SMTP_PORT)
        rule = f"routing.local:{pattern}"
        relay = entry.get("relay")
        if relay:
            return NextHop("relay", relay_host(relay), port, is_local=True, rule=rule)
        if literal is not None:
            return NextHop("relay", literal, port, is_local=True, rule=rule)
        form = ascii_pattern(pattern) or pattern.lower()
        mx_name = domain if ("*" in pattern or "?" in pattern) else form
        return NextHop("mx", mx_name, port, is_local=True, rule=rule)
    if default:
        return NextHop("relay", relay_host(default["host"]),
                       int(default.get("port") or SMTP_PORT), rule="routing.default")
    if literal is not None:
        return NextHop("relay", literal, SMTP_PORT, rule="routing.default")
    return NextHop("mx", domain, SMTP_PORT, rule="routing.default")


def relay_host(name: str) -> str:
    """A configured relay host as the core connects to it and names it: a host name in
    lower case without a final dot; an address without brackets, in its short form, and an
    IPv4-mapped IPv6 address as the IPv4 address it stands for (`[0:0::1]` -> `::1`,
    `::ffff:192.0.2.1` -> `192.0.2.1`)."""
    name = str(name).strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.lower().rstrip(".")
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)
