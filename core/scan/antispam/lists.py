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
       subdomains).
    3. Blacklist entries are checked on the envelope sender and on the header From, in the
       guide's order: the exact address -> entries with wildcards (`*`, `?`) in the local
       part for the same domain -> `@domain` -> `@parent` for each parent domain, removing
       the leftmost label each time ("@example.com" blocks user@mail.example.com;
       "@mail.example.com" does not block user@example.com). The first match names the
       rule. `.domain` (the guide: "Domain names must begin with either @ or a period")
       blocks what `@domain` blocks.
    4. Addresses compare case-insensitively, domains in one form (shared/idn.py: an entry
       for müll.example matches mail from xn--mll-hoa.example and the other way round); a
       null or local-part-only sender matches nothing.
"""

from __future__ import annotations

from email.utils import getaddresses

from shared.idn import ascii_domain
from shared.wildcard import matches

__all__ = ["address_domain", "whitelist_match", "is_excluded", "blacklist_match",
           "header_addresses", "parent_domains"]


def address_domain(address: str) -> str:
    """The address's domain in the lists' one form (rule 4); "" for none."""
    return (ascii_domain(address.rpartition("@")[2]) or "") if "@" in address else ""


def _entry(entry: str) -> str:
    """A list entry with its domain in the lists' one form."""
    head, at, domain = entry.rpartition("@") if "@" in entry else ("", "", entry)
    if not at and domain.startswith("."):
        return "." + (ascii_domain(domain[1:]) or domain[1:])
    return f"{head.lower()}{at}{ascii_domain(domain) or domain.lower()}"


def parent_domains(domain: str) -> list[str]:
    """"a.b.example.com" -> ["b.example.com", "example.com", "com"]."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def whitelist_match(sender: str, entries) -> str | None:
    """The custom-whitelist entry that lets `sender` through (rule 1), or None."""
    domain = address_domain(sender)
    if not domain:
        return None
    sender = f"{sender.strip().rpartition('@')[0].lower()}@{domain}"
    for entry in entries:
        form = _entry(entry)
        if form.startswith("@"):
            if domain == form[1:]:
                return entry
        elif form.startswith("."):
            if domain == form[1:] or domain.endswith(form):
                return entry
        elif form == sender:
            return entry
    return None


def is_excluded(domain: str, exclusions) -> bool:
    """Rule 2: the domain or a parent of it is in whitelist.auto.exclusions."""
    domain = ascii_domain(domain) or domain.lower()
    excluded = {_entry(e).lstrip(".") for e in exclusions}
    return domain in excluded or any(p in excluded for p in parent_domains(domain))


def blacklist_match(address: str, entries) -> str | None:
    """The blacklist entry that blocks `address` (rule 3), or None."""
    local = address.strip().rpartition("@")[0].lower()
    domain = address_domain(address)
    if not local or not domain:
        return None
    address = f"{local}@{domain}"
    forms = [(_entry(e), e) for e in entries]
    for form, entry in forms:                   # the exact address
        if form == address:
            return entry
    for form, entry in forms:                   # wildcard local part, same domain
        entry_local, _, entry_domain = form.rpartition("@")
        if entry_local and ("*" in entry_local or "?" in entry_local) \
                and entry_domain == domain and matches(entry_local, local):
            return entry
    domains = {form[1:]: entry for form, entry in reversed(forms)
               if form.startswith(("@", "."))}
    for candidate in [domain, *parent_domains(domain)]:
        if candidate in domains:
            return domains[candidate]
    return None


def header_addresses(raw_values, decoded_values=()) -> list[str]:
    """The addresses of header From values (display names removed), each once: parsed from
    the values as received, where an encoded word is an atom of the display name (RFC 2047
    §5), and from the decoded values too, so an address hidden in an encoded word — which a
    mail client may show as the sender — is checked as well."""
    found = [addr for _, addr in getaddresses(list(raw_values) + list(decoded_values))
             if "@" in addr]
    return list(dict.fromkeys(found))
