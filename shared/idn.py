"""One form for a mail domain, however it was written (SMTPUTF8 mail, console input).

A sender at müll.example may arrive as `müll.example` (SMTPUTF8) or `xn--mll-hoa.example`,
and an administrator may type either; the sender lists compare `ascii_domain` of both, so an
entry in one form matches mail in the other. `entry_form` is that comparison for a list
entry as a whole (`@domain`, `.domain`, `local@domain`, a bare domain): two entries in the
same form are the same entry (the settings schema refuses the second; the console's list
pages compare with it).
"""

from __future__ import annotations

import idna

__all__ = ["ascii_domain", "entry_form"]


def ascii_domain(domain: str) -> str | None:
    """Lower case, without a root dot, non-ASCII labels as IDNA 2008 A-labels (RFC 5890,
    UTS #46 non-transitional, as registries issue them and browsers read them: straße.example
    is xn--strae-oqa.example, not strasse.example as Python's IDNA 2003 codec has it); None
    when a label cannot be one."""
    domain = domain.strip().lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def entry_form(entry: str) -> str:
    """A sender-list entry in the lists' one form: the local part in lower case, the domain
    as `ascii_domain` (lower case as written when it cannot be one); `@` or a leading `.`
    kept, since they say what the entry matches."""
    head, at, domain = entry.rpartition("@") if "@" in entry else ("", "", entry)
    if not at and domain.startswith("."):
        return "." + (ascii_domain(domain[1:]) or domain[1:].lower())
    return f"{head.lower()}{at}{ascii_domain(domain) or domain.lower()}"
