"""HTML smuggling (medium): an HTML attachment whose script assembles a file in the browser
(atob / Uint8Array / Blob) and saves it (a download attribute, msSaveOrOpenBlob, or an
object URL clicked by the script)."""

from __future__ import annotations

import re

from core.scan.heuristics import Heuristic

SCAN_OCTETS = 4 * 2**20
_ASSEMBLE = re.compile(rb"\b(?:atob\s*\(|new\s+Uint8Array|new\s+Blob\s*\(|"
                       rb"fromCharCode\s*\()", re.IGNORECASE)
_SAVE = re.compile(rb"(?:msSaveOrOpenBlob|msSaveBlob|\.download\s*=|\bdownload\s*=\s*[\"']|"
                   rb"createObjectURL\s*\()", re.IGNORECASE)
_CLICK = re.compile(rb"\.click\s*\(\s*\)|dispatchEvent\s*\(|location(?:\.href)?\s*=",
                    re.IGNORECASE)


def check(view, part) -> list[Heuristic]:
    if not part.is_attachment:
        return []
    # any name the part declares (content_fields.py rule 2: readers differ in which they use)
    if not (part.content_type == "text/html" or any(
            name.lower().endswith((".htm", ".html", ".shtml", ".xhtml")) for name in part.names)):
        return []
    data = part.data[:SCAN_OCTETS]
    if b"<script" not in data.lower():
        return []
    if _ASSEMBLE.search(data) and _SAVE.search(data) and (
            _CLICK.search(data) or b"msSaveOrOpenBlob" in data):
        return [Heuristic("Heuristic.HTML.Smuggling", "medium",
                          f"HTML attachment {part.filename or part.location!r} builds a file "
                          "in script and makes the browser save it (HTML smuggling)")]
    return []
