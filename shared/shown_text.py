"""Text from a message or a client, made safe to show a person: one place for what every
reader of it (pages, notifications, alerts, reports) must not be fooled by.

- `visible_bidi`: Unicode's explicit bidirectional formatting characters (UAX #9 §2) shown as
  visible marks `⟨U+202E⟩`. A right-to-left override turns "invoice‮fdp.scr" into what
  reads as "invoicercs.pdf": the disguise its sender meant, shown to the administrator.
- `one_line`: control characters and line separators shown as escapes (`\\x0a`), bidi
  controls as marks. What a sender or a logon form put in a subject, an address, a file name
  or a user name must not start a line of its own in an alert or notification (a forged
  "logon ... success" line), nor break a header field. `header_line` keeps the marks and
  isolates, for text that is the administrator's own (a Subject typed in Hebrew keeps its
  right-to-left marks; review25b D2).
- `quoted`: a value an error message quotes back to the person who typed it, in quotes, every
  character that does not print (controls, bidi controls, zero-width and other format
  characters, a lone surrogate) as a visible mark `⟨U+001B⟩`: the same marks the console
  shows elsewhere, not Python's `\\x1b` / `\\u202e` notation (console18 C2).
"""

from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "NOT_IN_HEADER_TEXT", "visible_bidi", "one_line",
           "header_line", "quoted"]

# Embeddings and overrides U+202A-U+202E, isolates U+2066-U+2069, the marks U+200E/U+200F
# and U+061C.
BIDI_CONTROLS = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                           0x200E, 0x200F, 0x061C])
_BIDI_SHOWN = {code: f"\u27e8U+{code:04X}\u27e9" for code in BIDI_CONTROLS}
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What text an administrator types for a mail header may not hold (settings_types.Str's
# `header`): the controls above but tab, and the embeddings and overrides U+202A-U+202E; the
# marks and isolates stay, as right-to-left text needs them.
NOT_IN_HEADER_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")
_OVERRIDES_SHOWN = {code: _BIDI_SHOWN[code] for code in range(0x202A, 0x202F)}


def visible_bidi(text: str) -> str:
    """`text` with each bidi control character replaced by a visible `⟨U+202E⟩`."""
    return text if text.isascii() else text.translate(_BIDI_SHOWN)


def one_line(text: str) -> str:
    """`text` as one line, its bidi controls visible."""
    return visible_bidi(_CONTROLS.sub(_escaped, text))


def header_line(text: str) -> str:
    """`text` as one line of a header field: controls as escapes, the embeddings and
    overrides a header's text may not hold (NOT_IN_HEADER_TEXT) as visible marks, the marks
    and isolates that right-to-left text needs kept."""
    text = _CONTROLS.sub(_escaped, text)
    return text if text.isascii() else text.translate(_OVERRIDES_SHOWN)


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return " " if code == 9 else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def quoted(text: str, limit: int | None = None) -> str:
    """`text` in single quotes for an error message, each character that does not print
    shown as `⟨U+XXXX⟩`; past `limit` characters cut, with "…" where it was cut."""
    shown = text if limit is None else text[:limit]
    if not shown.isprintable():
        shown = "".join(c if c.isprintable() else f"\u27e8U+{ord(c):04X}\u27e9" for c in shown)
    return f"'{shown}{'…' if limit is not None and len(text) > limit else ''}'"
