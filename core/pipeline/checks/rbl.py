"""Real-time blacklists after DATA (SPEC §3 rbl.*; §5 step 3; guide §5 "Blocking by real-time
antispam blacklists").

The lookup happened at connect (core/smtp/rbl.py); the session stored a listing in the
envelope (`meta["rbl"]`: zone, the returned codes, the client IP). Here a listing becomes a
`spam_list_block` finding asking for rbl.action drop | log | forward. With rbl.action
"reject" the session has already refused the sender at MAIL FROM — a message that got
through anyway came from a whitelisted sender, so it passes. Whitelisted senders are never
blocked (the guide checks the whitelist first), under any action: their `spam_list_block`
event reads "whitelisted" and names the whitelist rule and what the listing would have done
(whitelist.py rule 1).

The listing counts only under the settings snapshot the message is processed with (SPEC §3
"every setting applies live"; ARCHITECTURE invariant 5): its zone must still be enabled in
`rbl.zones`, and its codes must still match that zone's return codes (shared/dnsxl.py) —
a message queued before the zone was removed, or accepted in a session that was open when it
was, is not blocked by it.
"""

from __future__ import annotations

from core.pipeline.checks.whitelist import stood_aside, whitelisted
from core.pipeline.findings import Finding
from shared.dnsxl import enabled_zone, listing_codes
from shared.events import Action

__all__ = ["check"]


def check(view, settings) -> list[Finding]:
    listing = view.meta.get("rbl")
    action = settings["rbl.action"]
    if not listing or view.skip_antispam or view.is_generated:
        return []
    whitelist = whitelisted(view, settings)
    if whitelist:
        return stood_aside(_listed(listing, settings, "log" if action == "reject" else action),
                           whitelist, would=action)
    if action == "reject":
        return []
    return _listed(listing, settings, action)


def _listed(listing, settings, action: str) -> list[Finding]:
    """The finding of the listing under `settings` asking for `action`; [] when the listing
    no longer counts."""
    zone = enabled_zone(settings, str(listing.get("zone") or ""))
    hits = listing_codes(listing.get("codes") or (), zone) if zone is not None else ()
    if not hits:
        return []
    codes = ", ".join(hits)
    common = dict(rule=f"rbl.zones {listing.get('zone')}", event=Action.SPAM_LIST_BLOCK.value,
                  reason=f"client {listing.get('ip')} listed in {listing.get('zone')} ({codes})",
                  data={"zone": listing.get("zone"), "codes": list(hits)})
    if action == "forward":
        return [Finding(action="forward", forward_to=settings["rbl.forward_to"],
                        forward_subject=settings["rbl.forward_subject"] or None, **common)]
    return [Finding(action=action, **common)]
