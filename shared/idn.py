"""One form for a mail domain, however it was written (SMTPUTF8 mail, console input).

A domain may arrive as `müll.example` (SMTPUTF8 mail, RFC 6531 §3.2), as
`xn--mll-hoa.example`, in capitals or with an ideographic full stop (`例子。广告`), and an
administrator may type any of them; every comparison of a domain with a configured one
(routing.local, relay.allowed, the sender lists, the local/non-local decisions that follow
from routing.local) is made between the `ascii_domain` forms of both, so an entry in one form
matches mail in another. `entry_form` is that comparison for a sender-list entry as a whole
(`@domain`, `.domain`, `local@domain`, a bare domain): two entries in the same form are the
same entry (the settings schema refuses the second; the console's list pages compare with
it); its local part is in NFC and lower case (`local_form`), as the lists read a sender's.
`matches_domain` is the same for a domain pattern with `*`/`?` wildcards, which stand for
characters of the A-label form. `spellings` gives a search term in both forms.
`is_excluded` is the auto-generated whitelist's question, a domain or a parent of it in
whitelist.auto.exclusions, the core's and the console's one answer; the list is put in the
one form once (`exclusion_set`), not once per domain asked about: the console's page asked
it of each of 2,000 learned domains against 10,000 exclusions, 20 million conversions and
52 s a page view (scale19 B1).

A routing.local entry names either domains or IP addresses (`address_pattern`), never both:
an address entry (`[192.0.2.10]`, `[192.0.2.*]`, `[IPv6:2001:db8::10]`) matches only address
literals, by the address they name, and a domain pattern only domain names. Read as text,
`192.0.2.*` would make 192.0.2.attacker.example local, which is an open relay under
relay.mode deny_except (review 13, B1).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Iterable

import idna

from shared.mailbox import canonical_local
from shared.wildcard import matches

__all__ = ["ascii_domain", "domain_form", "entry_form", "local_form", "ascii_pattern",
           "unicode_domain", "FULL_STOPS",
           "matches_domain", "any_matches_domain", "first_matching", "address_literal",
           "address_pattern", "spellings", "exclusion_set", "is_excluded"]

# UTS #46 maps these to "." (the ideographic, fullwidth and halfwidth full stops); mapped
# first, so that a domain ending in one loses it as it loses a final "."
FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def ascii_domain(domain: str) -> str | None:
    """Lower case, without a root dot, non-ASCII labels as IDNA 2008 A-labels (RFC 5890,
    UTS #46 non-transitional, as registries issue them and browsers read them: straße.example
    is xn--strae-oqa.example, not strasse.example as Python's IDNA 2003 codec has it); None
    when a label cannot be one."""
    domain = domain.strip().translate(FULL_STOPS).lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def domain_form(domain: str) -> str:
    """`ascii_domain`, or the domain in lower case as written when it cannot be one (it then
    compares equal to itself only)."""
    return ascii_domain(domain) or domain.strip().lower().rstrip(".")


def entry_form(entry: str) -> str:
    """A sender-list entry in the lists' one form: the local part as `local_form` of its
    one spelling (shared/mailbox.py `canonical_local`: `"evil"` is `evil`), the domain as
    `ascii_domain` (lower case as written when it cannot be one); `@` or a leading `.`
    kept, since they say what the entry matches."""
    head, at, domain = entry.rpartition("@") if "@" in entry else ("", "", entry)
    if not at and domain.startswith("."):
        return "." + (ascii_domain(domain[1:]) or domain[1:].lower())
    return f"{local_form(canonical_local(head))}{at}{ascii_domain(domain) or domain.lower()}"


def exclusion_set(exclusions: Iterable[str]) -> frozenset[str]:
    """whitelist.auto.exclusions in the one form (`entry_form`, a leading `.` dropped), for
    `is_excluded`; worked out once per list (cached on its entries)."""
    return _exclusion_set(tuple(exclusions))


@functools.lru_cache(maxsize=16)
def _exclusion_set(exclusions: tuple[str, ...]) -> frozenset[str]:
    return frozenset(entry_form(e).lstrip(".") for e in exclusions)


def is_excluded(domain: str, exclusions: Iterable[str]) -> bool:
    """Whether `domain` or a parent of it is excluded: BÜCHER.example excludes
    mail.xn--bcher-kva.example. `exclusions` is the setting's list, or its `exclusion_set`
    when many domains are asked about (a page of them)."""
    excluded = exclusions if isinstance(exclusions, frozenset) else exclusion_set(exclusions)
    labels = (ascii_domain(domain) or domain.lower()).split(".")
    return any(".".join(labels[i:]) in excluded for i in range(len(labels)))


def local_form(local: str) -> str:
    """A local part in the lists' one form: canonical composition (NFC), lower case. RFC 6532
    §3.1 asks for NFC; a mailer that sends "u" + U+0308 (NFD, as macOS keeps names) names
    the mailbox "über" all the same, and a blacklist entry `über*@…` missed it (tester
    i18n19 B4)."""
    return unicodedata.normalize("NFC", local).lower()


@functools.lru_cache(maxsize=32768)     # routing.local (≤ 10,000) is read per recipient
def ascii_pattern(pattern: str) -> str | None:
    """A domain pattern with `*`/`?` wildcards (routing.local, relay.allowed `*.domain`) in
    `ascii_domain`'s form, label by label; a label with a wildcard stays as written (lower
    case). None when such a label is not ASCII (`münch*.de`: a wildcard cannot stand inside
    an A-label's letters) or another label cannot be an A-label."""
    pattern = pattern.strip().translate(FULL_STOPS).lower().rstrip(".")
    return pattern if pattern.isascii() else _ascii_labels(pattern)


def _ascii_labels(pattern: str) -> str | None:
    out = []
    for label in pattern.split("."):
        if "*" in label or "?" in label:
            if not label.isascii():
                return None
            out.append(label)
        else:
            form = ascii_domain(label) if label else ""
            if form is None:
                return None
            out.append(form)
    return ".".join(out)


# RFC 5321 §4.1.3 IPv4-address-literal: four Snum of 1 to 3 digits (leading zeros allowed)
_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_IPV6_TAG = "ipv6:"


def address_literal(domain: str) -> str | None:
    """The address an address literal names, in `ipaddress`'s short form (an IPv4-mapped
    IPv6 one as the IPv4 address it stands for, as clients and relay hosts are written):
    `[192.0.2.010]` -> `192.0.2.10`, `[IPv6:2001:DB8:0::1]` -> `2001:db8::1`. None when
    `domain` is no IPv4 or IPv6 address literal (a domain name, a General-address-literal
    with another tag, an address with a zone index)."""
    text = domain.strip().rstrip(".")
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        return None
    text = text[1:-1]
    if _IPV4_LITERAL.match(text):
        octets = [int(part) for part in text.split(".")]
        return ".".join(map(str, octets)) if max(octets) <= 255 else None
    if text[:len(_IPV6_TAG)].lower() != _IPV6_TAG or "%" in text:
        return None
    try:
        address = ipaddress.IPv6Address(text[len(_IPV6_TAG):])
    except ValueError:
        return None
    return str(address.ipv4_mapped or address)


# Bare text that names IPv4 addresses: digits, dots and wildcards, with a digit (`*` alone is
# a domain pattern). No domain has an all-numeric last label (RFC 3696 §2), so such a
# pattern could match a domain name only by a wildcard standing for its letters.
_IPV4_PATTERN = re.compile(r"(?=.*[0-9])[0-9*?.]+\Z")


@functools.lru_cache(maxsize=32768)     # routing.local (≤ 10,000) is read per recipient
def address_pattern(pattern: str) -> str | None:
    """What a routing.local entry naming IP addresses compares an address literal's address
    (`address_literal`) with, or None when `pattern` is a domain pattern. Such an entry is
    stored as an address literal: `[192.0.2.10]`, `[192.0.2.*]`, `[IPv6:2001:db8::10]` ->
    `192.0.2.10`, `192.0.2.*`, `2001:db8::10` (a whole address in its short form, a
    pattern in lower case as written). Bare text that can only name addresses is read the
    same way, as earlier releases stored it (`192.0.2.*`; `2001:db8::10`): digits, dots
    and wildcards with a digit, or text with a `:`."""
    text = pattern.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].removeprefix(_IPV6_TAG)
    elif ":" not in text and not _IPV4_PATTERN.match(text):
        return None
    return address_literal(f"[{_IPV6_TAG}{text}]" if ":" in text else f"[{text}]") or text


def matches_domain(pattern: str, domain: str) -> bool:
    """Does the configured domain pattern match `domain`, both in their A-label forms?"""
    return any_matches_domain((pattern,), domain)


def any_matches_domain(patterns: Iterable[str], domain: str) -> bool:
    """Does any of the patterns match `domain`?"""
    return first_matching(patterns, domain) is not None


def first_matching(patterns: Iterable[str], domain: str) -> int | None:
    """The position (from 0) of the first pattern that matches `domain`, or None: an address
    pattern (`address_pattern`) matches an address literal of its IP version by the address
    it names, a domain pattern a domain name in its A-label form. The domain's form is
    worked out once: with 10,000 routing.local entries, once per entry cost 17 ms a
    recipient (186 ms for an internationalised domain) on the SMTP event loop."""
    address = address_literal(domain)
    if address is None:
        form = domain_form(domain)
        for index, pattern in enumerate(patterns):
            if address_pattern(pattern) is None \
                    and matches(ascii_pattern(pattern) or pattern.lower(), form):
                return index
        return None
    is_ipv6 = ":" in address
    for index, pattern in enumerate(patterns):
        wanted = address_pattern(pattern)
        if wanted is not None and (":" in wanted) == is_ipv6 and matches(wanted, address):
            return index
    return None


def unicode_domain(domain: str) -> str | None:
    """The U-label form of a domain stored in A-labels (`xn--bcher-kva.example` is
    `bücher.example`), for a page to show beside it; None when it has no A-label or does not
    decode."""
    if "xn--" not in domain.lower():
        return None
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return None


def spellings(text: str) -> tuple[str, ...]:
    """`text`, and, when it is a domain or ends in `@domain` whose domain has an
    internationalised label, the same with the domain in its other form: a search for
    `user@münchen.de` also finds `user@xn--mnchen-3ya.de`, and the reverse."""
    if text.isascii() and "xn--" not in text.lower():
        return (text,)
    head, at, domain = text.rpartition("@")
    form = ascii_domain(domain)
    if form is None:
        return (text,)
    unicode_form = unicode_domain(form)
    others = {head + at + f for f in (form, unicode_form) if f and f != domain.lower()}
    return (text, *sorted(others))
