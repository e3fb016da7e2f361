"""The syntax of a mailbox's local part, in one place (RFC 5321 §4.1.2, with the UTF-8 of RFC
6531 §3.3): the SMTP server parses paths with it (core/smtp/commands.py), and the sender
lists' entries are held to it and compared in one form (`canonical_local`).

Rules
    1. A local part is a dot-string (atoms of `ATEXT` joined by single dots: no leading,
       trailing or double dot) or a quoted string (printable ASCII and UTF-8 but `"` and `\\`,
       which a backslash escapes).
    2. One mailbox, one form (`canonical_local`): a quoted string whose content is a
       dot-string names the same mailbox as that dot-string (RFC 5322 §3.2.4: the quotes and
       the backslashes of a quoted string are not part of it), so it is written so; any other
       keeps its quotes, with a backslash only before `"` and `\\`. Letter case and Unicode
       composition are the lists' business (shared/idn.py `local_form`). What a local part
       says (`local_content`: its quotes and escapes taken off) is what a blacklist wildcard
       is matched against.
    3. A sender list's entry takes the local parts of rule 1 and also atext with dots
       anywhere (`taro..yamada`, `.x`): the blacklist reads header From too, where such
       addresses occur (legacy mobile addresses; review25c R2).
"""

from __future__ import annotations

import re

__all__ = ["UTF8_NON_ASCII", "ATEXT", "DOT_STRING", "QUOTED_STRING", "is_list_local_part",
           "canonical_local", "local_content"]

UTF8_NON_ASCII = "\u0080-\U0010ffff"     # allowed by RFC 6531; checked where it matters
ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{UTF8_NON_ASCII}]"
DOT_STRING = rf"{ATEXT}+(?:\.{ATEXT}+)*"
QUOTED_STRING = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{UTF8_NON_ASCII}]|\\[\x20-\x7e])*"'

_DOT_STRING = re.compile(DOT_STRING)
_LIST_LOCAL_PART = re.compile(rf"(?:{ATEXT}|\.)+|{QUOTED_STRING}")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_TO_ESCAPE = re.compile(r'(["\\])')


def is_list_local_part(local: str) -> bool:
    """Rule 3."""
    return _LIST_LOCAL_PART.fullmatch(local) is not None


def _quoted(local: str) -> bool:
    return len(local) >= 2 and local.startswith('"') and local.endswith('"')


def local_content(local: str) -> str:
    """Rule 2: what a local part says (`"bad guy"` says `bad guy`)."""
    return _ESCAPED.sub(r"\1", local[1:-1]) if _quoted(local) else local


def canonical_local(local: str) -> str:
    """Rule 2; anything that is not a quoted string is given back as it is."""
    if not _quoted(local):
        return local
    content = local_content(local)
    if _DOT_STRING.fullmatch(content):
        return content
    return '"' + _TO_ESCAPE.sub(r"\\\1", content) + '"'
