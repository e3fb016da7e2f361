"""PDF active content: JavaScript with a launch/open action (medium), any JavaScript (high).

Names are read as PDF writes them, including #xx escapes in names (/J#61vaScript)."""

from __future__ import annotations

import re

from core.scan.heuristics import Heuristic

_NAME_ESCAPE = re.compile(rb"#([0-9a-fA-F]{2})")
SCAN_OCTETS = 8 * 2**20


def _names(data: bytes) -> bytes:
    return _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data[:SCAN_OCTETS])


def check(view, part) -> list[Heuristic]:
    if part.true_type != "pdf" or part.encrypted:
        return []
    text = _names(part.data)
    has_js = bool(re.search(rb"/(?:JS|JavaScript)\b", text))
    if not has_js:
        return []
    actions = [a.decode() for a in (b"/Launch", b"/OpenAction", b"/AA")
               if re.search(re.escape(a) + rb"\b", text)]
    name = part.filename or part.location
    if actions:
        return [Heuristic("Heuristic.PDF.JavaScriptLaunch", "medium",
                          f"PDF {name!r} has JavaScript and {', '.join(actions)} actions that "
                          "run it when the document opens")]
    return [Heuristic("Heuristic.PDF.JavaScript", "high", f"PDF {name!r} contains JavaScript")]
