"""One form for a mail domain, however it was written (SMTPUTF8 mail, console input).

A sender at müll.example may arrive as `müll.example` (SMTPUTF8) or `xn--mll-hoa.example`,
and an administrator may type either; the sender lists compare `ascii_domain` of both, so an
entry in one form matches mail in the other.
"""

from __future__ import annotations

__all__ = ["ascii_domain"]


def ascii_domain(domain: str) -> str | None:
    """Lower case, without a root dot, non-ASCII labels as IDNA A-labels (RFC 5890); None when
    a label cannot be one."""
    domain = domain.strip().lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
