"""Container limits (SPEC §3 container.*; guide §6 "Blocking by container file limits").

Decomposition enforces the limits as it expands (decompose/limits.py) and records the first
one hit in `view.limit_hit`; this check turns that into the message's drop. With
`container.enabled` off the limits still stop decomposition (ARCHITECTURE invariant 3: a bomb
is never expanded), the hit is only logged, and the unexpanded content is unprocessable.
"""

from __future__ import annotations

from core.pipeline.findings import Finding

TEXTS = {
    "container.max_depth": "The extracted attachment depth exceeded set limits.",
    "container.max_files": "The number of extracted files exceeded set limits.",
    "container.max_total_mb": "The total size of extracted files exceeded set limits.",
    "container.max_file_mb": "The size of an extracted file exceeded set limits.",
    "container.max_ratio": "The compression ratio of an extracted file exceeded set limits.",
}


def check(view, settings) -> list[Finding]:
    hit = view.limit_hit
    if hit is None:
        return []
    text = TEXTS.get(hit.limit, "A container limit was exceeded.")
    reason = f"{text} ({hit.limit}: {hit.value:g} > {hit.maximum:g} at {hit.location})"
    data = {"limit": hit.limit, "value": hit.value, "maximum": hit.maximum,
            "location": hit.location}
    if settings["container.enabled"]:
        return [Finding(rule=hit.limit, action="drop", event="container_limit", reason=reason,
                        notify="container", text=text, data=data)]
    return [Finding(rule="container.enabled", action="log", event="container_limit",
                    reason=reason + " (limits not enforced: container.enabled is off)",
                    data=data)]
