"""Sender lists: the custom whitelist, the auto-generated whitelist's matching, the custom
blacklist (SPEC §3 whitelist.*, blacklist.*; guide §5 "Creating a custom whitelist",
"Blocking by a custom blacklist").

Rules
    1. Whitelist entries (guide): `@domain` — senders at exactly that domain; `.domain` — a
       wildcard: that domain and every subdomain (".company.com" matches mail.company.com);
       a full address — that sender only. The whitelist is checked on the envelope sender
       (the guide: "if the envelope sender matches ... the email message is allowed").
    2. The auto-generated whitelist holds domains; a sender is auto-whitelisted when its
       domain is an entry that is not excluded (whitelist.auto.exclusions: the domain and its
       subdomains; `is_excluded`, shared/idn.py, the console's answer too).
    3. Blacklist entries are checked on the envelope sender and on the header From, in the
       guide's order: the exact address -> entries with wildcards (`*`, `?`) in the local
       part for the same domain -> `@domain` -> `@parent` for each parent domain, removing
       the leftmost label each time ("@example.com" blocks user@mail.example.com;
       "@mail.example.com" does not block user@example.com). The first match names the
       rule. `.domain` (the guide: "Domain names must begin with either @ or a period")
       blocks what `@domain` blocks.
    4. Addresses compare case-insensitively, local parts in NFC (shared/idn.py `local_form`:
       an entry `josé@corp.es` matches "jose" + U+0301, RFC 6532 §3.1), domains in one form
       (shared/idn.py: an entry for müll.example matches mail from xn--mll-hoa.example and
       the other way round); a null or local-part-only sender matches nothing.
    5. A header From that Python's address parser cannot read (it recurses once per "(" or
       ":", so 2,000 of them raise RecursionError; x4-cost finding 13) still yields the
       addr-specs found in its text: reading a header never fails the blacklist check, which
       would leave the envelope sender unchecked (scan.unprocessable=deliver delivered it).
    6. A header From is parsed as received, and only then are its encoded words decoded: an
       encoded word is an atom of the display name (RFC 2047 §5), so what it decodes to never
       changes which address a mailbox holds. It neither hides the address (a decoded '"' or
       '(' would open a quoted string or comment) nor stands for it (`=?utf-8?q?jim=40
       company=2Ecom?= <x@ok.test>` is from x@ok.test; tester "guide", finding 8). Only a
       mailbox whose address holds no "@" (an address written as an encoded word, which
       RFC 2047 forbids but a mail client may show as the sender) is read from its decoded
       text, as is an unreadable value (rule 5).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses

from shared.idn import ascii_domain, entry_form, is_excluded, local_form
from shared.mailbox import canonical_local, local_content
from shared.wildcard import matches

__all__ = ["address_domain", "whitelist_match", "is_excluded", "blacklist_match",
           "header_addresses", "parent_domains"]


def address_domain(address: str) -> str:
    """The address's domain in the lists' one form (rule 4); "" for none."""
    return (ascii_domain(address.rpartition("@")[2]) or "") if "@" in address else ""


def parent_domains(domain: str) -> list[str]:
    """"a.b.example.com" -> ["b.example.com", "example.com", "com"]."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


@dataclass(frozen=True)
class _Index:
    """One list's entries by what they match, in the lists' one form; built once per list
    (`_index`), since the lists hold up to 10,000 entries and are asked per address."""
    addresses: dict       # "local@domain" -> entry (blacklist: without wildcards)
    wildcards: dict       # domain -> [(local pattern, entry)], blacklist only
    at_domains: dict      # "@domain" entries: domain -> entry
    dot_domains: dict     # ".domain" entries: domain -> entry


@functools.lru_cache(maxsize=16)
def _index(entries: tuple) -> _Index:
    index = _Index({}, {}, {}, {})
    for entry in entries:                   # setdefault: the first entry of a kind names it
        form = entry_form(entry)
        local, at, domain = form.rpartition("@")
        if form.startswith("@"):
            index.at_domains.setdefault(form[1:], entry)
        elif at and ("*" in local or "?" in local):
            index.wildcards.setdefault(domain, []).append((local, entry))
        elif at:                            # .x@host is an address, not a .domain
            index.addresses.setdefault(form, entry)
        elif form.startswith("."):
            index.dot_domains.setdefault(form[1:], entry)
    return index


def _address(address: str) -> tuple[str, str]:
    """(local part in the lists' one form, domain in the one form); ("", "") for none.
    `"evil"@spam.example` is the mailbox `evil@spam.example` (shared/mailbox.py
    `canonical_local`), as entries are (shared/idn.py `entry_form`)."""
    return (local_form(canonical_local(address.strip().rpartition("@")[0])),
            address_domain(address))


def whitelist_match(sender: str, entries) -> str | None:
    """The custom-whitelist entry that lets `sender` through (rule 1), or None."""
    local, domain = _address(sender)
    if not domain:
        return None
    index = _index(tuple(entries))
    found = index.addresses.get(f"{local}@{domain}") or index.at_domains.get(domain)
    for candidate in [domain, *parent_domains(domain)]:
        found = found or index.dot_domains.get(candidate)
    return found


def blacklist_match(address: str, entries) -> str | None:
    """The blacklist entry that blocks `address` (rule 3), or None."""
    local, domain = _address(address)
    if not local or not domain:
        return None
    index = _index(tuple(entries))
    found = index.addresses.get(f"{local}@{domain}")
    if found:
        return found
    said = local_content(local)     # "bad guy" is matched as bad guy (review25c R1)
    for pattern, entry in index.wildcards.get(domain, ()):     # wildcard local part
        if matches(pattern, said):
            return entry
    for candidate in [domain, *parent_domains(domain)]:         # domain, then its parents
        found = index.at_domains.get(candidate) or index.dot_domains.get(candidate)
        if found:
            return found
    return None


def header_addresses(raw_values, decode: Callable[[str], str] | None = None) -> list[str]:
    """The addresses of header From values as received (display names removed), each once,
    in order (rule 6). `decode` turns RFC 2047 encoded words into text; without it an
    address written as an encoded word is not found. Never raises (rule 5)."""
    found: list[str] = []
    for value in raw_values:
        try:
            mailboxes = getaddresses([value])
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception:   # RecursionError seen; whatever else the parser hits is the same
            found += _LOOSE_ADDR_SPEC.findall(value)
            if decode is not None and "=?" in value:
                found += _LOOSE_ADDR_SPEC.findall(decode(value))
            continue
        for name, address in mailboxes:
            if "@" in address:
                found.append(address)
            elif decode is not None and "=?" in name + address:
                found += _LOOSE_ADDR_SPEC.findall(decode(f"{name} {address}"))
    return list(dict.fromkeys(found))


# Rule 5: an addr-spec in text getaddresses cannot read — a run of characters that are not
# specials (RFC 5322 §3.2.3) or blanks, "@", another such run. A run starts only after a
# separator (the look-behind), so a long run without "@" is scanned once, not once per start.
_SEPARATORS = r'\s<>()\[\]\\,;:@"'
_LOOSE_ADDR_SPEC = re.compile(rf"(?<![^{_SEPARATORS}])[^{_SEPARATORS}]+@[^{_SEPARATORS}]+")
