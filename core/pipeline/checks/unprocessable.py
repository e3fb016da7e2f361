"""Content that cannot be decoded or expanded (SPEC §3 scan.unprocessable).

One finding per error in `view.errors` (a corrupt archive or member, an undecodable
transfer encoding of an attachment, a scanner error), asking for `scan.unprocessable`
(deliver | drop | hold), reported as `scan_error`. MIME defects alone are not errors
(checks/malformed.py). A container limit hit while `container.enabled` is off also leaves
content unexpanded, so it counts here too.

A message/partial part (RFC 2046 §5.2.2) is one fragment of a message sent in pieces: no
check sees the whole, so a virus split across fragments passed every engine (av finding 7).
Its content counts as unprocessable. (message/external-body carries no content, only a
reference, and is left alone.)
"""

from __future__ import annotations

import re

from core.pipeline.findings import Finding

MAX_FINDINGS = 20   # one event per error, but a hostile message cannot flood the log


def check(view, settings) -> list[Finding]:
    action = settings["scan.unprocessable"]
    errors = [(e.part, e.reason) for e in view.errors]
    errors += [(part.id, "a fragment of a message sent in pieces (message/partial): its "
                         "whole cannot be scanned")
               for part in view.parts if part.content_type == "message/partial"]
    if view.limit_hit is not None and not settings["container.enabled"]:
        errors.append((None, f"not expanded past {view.limit_hit.limit} at "
                             f"{view.limit_hit.location}"))
    out = []
    for part, reason in errors[:MAX_FINDINGS]:
        location = view.parts[part].location if part is not None else "message"
        name = view.parts[part].filename if part is not None else None
        where = f"{name} ({_shown(location)})" if name else _shown(location)
        out.append(Finding(rule="scan.unprocessable", action=action, event="scan_error",
                           part=part, reason=f"cannot process {where}: {reason}",
                           data={"location": location}))
    if len(errors) > MAX_FINDINGS:
        out.append(Finding(rule="scan.unprocessable", action=action, event="scan_error",
                           reason=f"{len(errors) - MAX_FINDINGS} more unprocessable parts"))
    return out


_REPEATED_STEP = re.compile(r"(\.\d+)\1{3,}")


def _shown(location: str) -> str:
    """A location for reading: a step repeated many times once, with its count
    ("part1.1.1.1.1.1" -> "part1.1×5"); a 100-deep nest took 200 characters of the event."""
    return _REPEATED_STEP.sub(lambda m: f"{m.group(1)}×{len(m.group(0)) // len(m.group(1))}",
                              location)
