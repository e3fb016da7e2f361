"""Real-time blacklists after DATA (SPEC §3 rbl.*; §5 step 3; guide §5 "Blocking by real-time
antispam blacklists").

The lookup happened at connect (core/smtp/rbl.py); the session stored a listing in the
envelope (`meta["rbl"]`: zone, the returned codes, the client IP). Here a listing becomes a
`spam_list_block` finding asking for rbl.action drop | log | forward. With rbl.action
"reject" the session has already refused the sender at MAIL FROM — a message that got
through anyway came from a whitelisted sender, so it passes. Whitelisted senders are never
blocked (the guide checks the whitelist first).
"""

from __future__ import annotations

from core.pipeline.checks.whitelist import whitelisted
from core.pipeline.findings import Finding
from shared.events import Action

__all__ = ["check"]


def check(view, settings) -> list[Finding]:
    listing = view.meta.get("rbl")
    action = settings["rbl.action"]
    if not listing or action == "reject" or view.skip_antispam or view.is_generated \
            or whitelisted(view, settings):
        return []
    codes = ", ".join(listing.get("codes") or ())
    common = dict(rule=f"rbl.zones {listing.get('zone')}", event=Action.SPAM_LIST_BLOCK.value,
                  reason=f"client {listing.get('ip')} listed in {listing.get('zone')} ({codes})",
                  data={"zone": listing.get("zone"), "codes": list(listing.get("codes") or ())})
    if action == "forward":
        return [Finding(action="forward", forward_to=settings["rbl.forward_to"],
                        forward_subject=settings["rbl.forward_subject"] or None, **common)]
    return [Finding(action=action, **common)]
