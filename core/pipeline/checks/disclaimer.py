"""Disclaimer (SPEC §3 disclaimer.*, §5 step 6): appended to the text and HTML bodies of
scanned messages with a recipient whose domain is not local (routing.local). The copy is
shared by all recipients of the message, so one non-local recipient is enough. Mail that
Mailmoat generates gets none. An edit, not a decision: it has no event of its own.
"""

from __future__ import annotations

from core.pipeline.findings import Finding
from shared.idn import any_matches_domain


def is_local(address: str, settings) -> bool:
    """core/smtp/policy.py is_local_domain's rule, on an address (either form of domain)."""
    return any_matches_domain((str(entry["match"]) for entry in settings["routing.local"]),
                              address.rpartition("@")[2])


def check(view, settings) -> list[Finding]:
    text = settings["disclaimer.text"]
    if not settings["disclaimer.enabled"] or not text.strip() or view.is_generated:
        return []
    outside = [r for r in view.recipients if not is_local(r, settings)]
    if not outside:
        return []
    return [Finding(rule="disclaimer.text", action="add_text", event=None, text=text,
                    reason=f"disclaimer for non-local recipients ({outside[0]}...)",
                    data={"disclaimer": True})]
