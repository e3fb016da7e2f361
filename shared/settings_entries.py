"""Settings value kinds for structured entries: a local route, a content or spam rule
and its terms, a real-time blacklist zone and its return codes, the central quarantine
(SPEC §3). Every bad field of an entry is named at once. The kinds' contract is in
`shared.settings_types`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from shared.dnsxl import ERROR_CODE_NET, LISTING_NET, NEVER_LISTED
from shared.idn import address_literal, address_pattern, ascii_pattern
from shared.settings_addresses import Domain, Email, HostPort, Hostname, IpAddress
from shared.settings_types import (
    Bool, Choice, Int, Kind, ListOf, RuleError, Str, checked_fields, entries_rule,
    plain_object,
)

__all__ = ["RoutingEntry", "RuleTerm", "RuleTerms", "Rule", "ListingAnswer", "RblZone",
           "CentralQuarantine"]


_IPV4_MATCH_RULE = ("match of digits and dots must be an IPv4 address such as 192.0.2.10 "
                    "(four numbers 0 to 255)")
_IPV4_PATTERN_MATCH_RULE = ("match of digits, dots and * or ? must be an IPv4 address pattern "
                            "such as 192.0.2.* (at most four parts, numbers 0 to 255)")
_IPV6_MATCH_RULE = ("match with a : must be a whole IPv6 address such as 2001:db8::10, without "
                    "* or ? and without a zone index (%...)")
_LITERAL_MATCH_RULE = ("match in [ ] must be an address literal such as [192.0.2.10], "
                       "[192.0.2.*] or [IPv6:2001:db8::10]")
_IPV4_PART = re.compile(r"[0-9*?]+\Z")


def _address_match(match: str) -> str | None:
    """A `match` that names IP addresses (shared/idn.py `address_pattern`) as it is stored:
    the address literal of the address in its short form (`192.000.002.010` ->
    `[192.0.2.10]`, `2001:DB8:0::10` -> `[IPv6:2001:db8::10]`) or of an IPv4 pattern
    (`192.0.2.*` -> `[192.0.2.*]`); None for a domain pattern."""
    if match.startswith("["):
        inner = match[1:-1] if match.endswith("]") else ""
        if inner[:len("IPv6:")].lower() == "ipv6:":
            address = address_literal(match)
            if address is None:
                raise RuleError(_LITERAL_MATCH_RULE)
            return _literal_of(address)
        if not re.fullmatch(r"[0-9*?.]+", inner):
            raise RuleError(_LITERAL_MATCH_RULE)
        return f"[{_ipv4_pattern(inner)}]"
    if address_pattern(match) is None:
        return None
    if ":" in match:
        try:
            address = ipaddress.IPv6Address(match)
        except ValueError:
            raise RuleError(_IPV6_MATCH_RULE) from None
        if address.scope_id:
            raise RuleError(_IPV6_MATCH_RULE)
        return _literal_of(str(address.ipv4_mapped or address))
    return f"[{_ipv4_pattern(match)}]"


def _literal_of(address: str) -> str:
    """The address literal of an address in its short form (an IPv4-mapped IPv6 address is
    already the IPv4 one, as clients on a dual-stack listener arrive)."""
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def _ipv4_pattern(text: str) -> str:
    """An IPv4 address in its short form, or a pattern of at most four parts with each
    number in its short form. 192.000.002.010 is 192.0.2.10, as RFC 5321 §4.1.3 reads the
    literal [192.000.002.010]."""
    if "*" not in text and "?" not in text:
        address = address_literal(f"[{text}]")
        if address is None:
            raise RuleError(_IPV4_MATCH_RULE)
        return address
    parts = text.split(".")
    if len(parts) > 4 or not all(_IPV4_PART.match(part) and (not part.isdigit() or (
            len(part) <= 3 and int(part) <= 255)) for part in parts):
        raise RuleError(_IPV4_PATTERN_MATCH_RULE)
    return ".".join(str(int(part)) if part.isdigit() else part for part in parts)


@dataclass(frozen=True)
class RoutingEntry(Kind):
    """A local route. An internationalised `match` is stored in A-label form (shared/idn.py
    `ascii_pattern`), which the core compares and whose MX it looks up; a `*` or `?` stands
    for characters of that form, so it may share a label only with ASCII characters.

    A `match` may name IP addresses (guide §3: "host name, domain, or IP address"): it makes
    mail to their address literals local (`192.0.2.10` for user@[192.0.2.10], `2001:db8::10`
    for user@[IPv6:2001:db8::10]) and matches nothing else. It is stored as the literal, in
    the short form shared/idn.py compares with, whether typed bare or as the literal, so the
    stored value shows what it matches: `[192.0.2.10]`, `[IPv6:2001:db8::10]`. An IPv4 entry
    may have `*` and `?`, read on the address's text: `192.0.2.*`, stored `[192.0.2.*]`, is
    [192.0.2.0] to [192.0.2.255], as in the guide's relay lists, and never the domain
    192.0.2.example (review 13, B1: an open relay). An IPv6 one is a whole address. Bare
    text of digits, dots and wildcards names addresses (shared/idn.py `address_pattern`),
    so a plain domain entry stored by an earlier release reads as it did."""

    def check(self, value):
        value = plain_object(value, {"match"}, {"relay", "port"})
        match = Str(max_len=253, min_len=1).check(value["match"])
        if not match.isascii():
            form = ascii_pattern(match)
            if form is None and any(("*" in label or "?" in label) and not label.isascii()
                                    for label in re.split(r"[.。．｡]", match)):
                raise RuleError("match may have * and ? only in labels written in ASCII "
                                "(*.münchen.de, not münch*.de)")
            match = Str(max_len=253, min_len=1).check(form or match)
        address = _address_match(match)     # after the full stops: 192。0。2。* is one
        if address is None and not re.match(r"^[A-Za-z0-9*?.-]+\Z", match):
            raise RuleError("match must be a domain, with * and ? wildcards allowed, or an "
                            "IP address")
        out = {"match": address or match.lower()}
        if value.get("relay") not in (None, ""):
            out["relay"] = Hostname().check(value["relay"])
        try:
            out["port"] = Int(1, 65535).check(value.get("port", 25))
        except RuleError as exc:
            raise RuleError(f"port {exc.rule}") from None
        return out

    def same_form(self, value):
        # The first entry whose match fits a domain routes it (core/delivery/routing.py), so
        # a second entry with the same match, whatever its relay, would never apply; a root
        # dot does not change what a match fits (shared/idn.py compares without it).
        return value["match"].rstrip(".")

    def describe(self):
        return '{"match", "relay"?, "port"?}'


RULE_MAX_TERMS = 50  # SPEC §3 rules.spam: ≤50 terms per rule, its "none of" terms included


@dataclass(frozen=True)
class RuleTerm(Kind):
    """A content or spam rule term: text with `*`/`?` wildcards that names something. Spaces
    around it are not part of it (the rule engine never matched them), so it is stored
    without them and reads back in the console as it was saved."""

    def check(self, value):
        value = Str(max_len=200, min_len=1, header=True).check(value)
        if not value.strip(" \t*?"):
            raise RuleError("must contain something other than spaces and wildcards "
                            "(it would match every message)")
        return value.strip()

    def same_form(self, value):
        # Terms match regardless of letter case (shared/wildcard.py: re.IGNORECASE), so "A"
        # repeats "a". Lower case, not casefold(): re.IGNORECASE compares letters one by
        # one by their lower case, so "Maß" and "MASS" match different text and are two
        # terms, though casefold() makes both "mass".
        return value.lower()

    def describe(self):
        return "term (* and ? wildcards)"


def _length(value) -> int:
    """How many entries a list has (0 for anything else, which its kind refuses)."""
    return len(value) if isinstance(value, list) else 0


def term_count_rule(terms: int, none_of: int) -> str:
    """The rule a rule past RULE_MAX_TERMS breaks, with its counts, whichever list is long."""
    return (f"a rule has at most {RULE_MAX_TERMS} terms, its \"none of\" terms included "
            f"({terms} + {none_of} = {terms + none_of})")


@dataclass(frozen=True)
class RuleTerms(Kind):
    """A rule's terms (`terms`, which needs one at least) or its `none_of` terms. `counts`:
    the rule's (terms, none_of) counts when this list is the one named for taking the rule
    past RULE_MAX_TERMS (Rule.check), which it is refused with."""

    required: bool = False
    counts: tuple[int, int] | None = None

    def check(self, value):
        if self.counts is not None:
            raise RuleError(term_count_rule(*self.counts))
        terms = ListOf(RuleTerm(), max_items=RULE_MAX_TERMS).check(value)
        if self.required and not terms:
            raise RuleError("must have at least one term")
        return terms

    def describe(self):
        return "list of terms"


@dataclass(frozen=True)
class Rule(Kind):
    """A content or spam rule (SPEC §3 rules.spam). Every bad field is named at once."""

    def check(self, value):
        value = plain_object(value, {"terms"}, {"enabled", "match", "none_of", "name"})
        # a name is shown in events and the Detail report: no control or text-direction
        # character that would reverse the line it is shown in (review27c R8)
        name = [("name", Str(max_len=100, header=True), value["name"])] \
            if value.get("name") is not None else []
        # SPEC's "≤50 terms per rule" counts the "none of" terms too: each is matched as a
        # term is (tester "guide", finding 11: 50 + 50 was accepted). One wording, with the
        # counts, whichever list is long (guide19 C2: 51 terms read "must have at most 50
        # entries"): named at terms when they alone are past the limit, else at none_of, the
        # list that takes the rule past it once its terms are within it.
        counts = (_length(value.get("terms", [])), _length(value.get("none_of", [])))
        over = counts if sum(counts) > RULE_MAX_TERMS else None
        terms_over = over if counts[0] > RULE_MAX_TERMS else None
        rule = checked_fields([("enabled", Bool(), value.get("enabled", True)),
                        ("match", Choice(("all", "any")), value.get("match", "any")),
                        *name,
                        ("terms", RuleTerms(required=True, counts=terms_over),
                         value.get("terms", [])),
                        ("none_of", RuleTerms(counts=None if terms_over else over),
                         value.get("none_of", []))])
        # A none-of term that is also a term vetoes every message the term finds: the rule
        # never matches such a message (with match "all", never at all).
        terms = {RuleTerm().same_form(term) for term in rule["terms"]}
        also = [(number, RuleError("is also one of its terms: the rule never matches a "
                                   "message that has it"))
                for number, term in enumerate(rule["none_of"], 1)
                if RuleTerm().same_form(term) in terms]
        if also:
            raise RuleError(entries_rule([(number, exc.rule) for number, exc in also]),
                            entries=tuple(also)).within("none_of")
        return rule

    def describe(self):
        return '{"enabled", "match": all|any, "terms": [...], "none_of": [...]}'


LISTING_ANSWER_RULE = ("must be an IPv4 address in 127.0.0.0/8, as lists answer (for example "
                       "127.0.0.2)")


@dataclass(frozen=True)
class ListingAnswer(IpAddress):
    """An RBL return code: the core takes only A records in 127.0.0.0/8 other than the error
    codes (127.0.0.1 and 127.255.255.0/24) as listings (shared/dnsxl.py), so any other
    address could never match."""

    def check(self, value):
        # Lists answer with A records (RFC 5782 §2.1), so no IPv6 address, nor anything that
        # is no address, is ever a return code: one rule names what is (guide19 C3: "must be
        # an IPv4 or IPv6 address" named IPv6 as if it were taken)
        try:
            value = super().check(value)
        except RuleError:
            raise RuleError(LISTING_ANSWER_RULE) from None
        if ipaddress.ip_address(value) == NEVER_LISTED:
            raise RuleError("127.0.0.1 is never a listing (RFC 5782 §5): lists answer it when "
                            "they refuse a query")
        if ipaddress.ip_address(value) in ERROR_CODE_NET:
            raise RuleError("127.255.255.0/24 is a list's error code (its queries are "
                            "refused), never a listing")
        if ipaddress.ip_address(value) not in LISTING_NET:
            raise RuleError(LISTING_ANSWER_RULE)
        return value


@dataclass(frozen=True)
class RblZone(Kind):
    """A real-time blacklist zone (SPEC §3 rbl.zones). Every bad field is named at once."""

    def check(self, value):
        value = plain_object(value, {"zone"}, {"enabled", "return_codes"})
        return checked_fields([("enabled", Bool(), value.get("enabled", True)),
                        ("zone", Domain(), value["zone"]),
                        ("return_codes", ListOf(ListingAnswer()),
                         value.get("return_codes", []))])

    def describe(self):
        return '{"enabled", "zone", "return_codes": [IP...]}'


@dataclass(frozen=True)
class CentralQuarantine(HostPort):
    """av.central_quarantine (SPEC §3): the SMTP host and port that receive copies of
    infected messages, and the `mailbox` there they are addressed to. The mailbox is
    optional: without it copies go to quarantine@<host> (core/scan/central.py
    `mailbox_of`), so the {"host", "port"} form stays valid as it was. A HostPort, so the
    console's generic forms serve it, the mailbox as an extra box (console/schema_forms.py).
    Every bad field is named at once."""

    extra_fields = (("mailbox", "Quarantine mailbox (empty: quarantine@ the host)"),)

    def check(self, value):
        value = plain_object(value, {"host"}, {"port", "mailbox"})
        checks = [("host", Hostname(), value["host"]),
                  ("port", Int(1, 65535), value.get("port", self.default_port))]
        if value.get("mailbox") not in (None, ""):
            mailbox = value["mailbox"]
            checks.append(("mailbox", Email(),
                           mailbox.strip() if isinstance(mailbox, str) else mailbox))
        return checked_fields(checks)

    def describe(self):
        return '{"host", "port", "mailbox"?}'
