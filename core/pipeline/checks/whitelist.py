"""Whitelists (SPEC §3 whitelist.*; guide §5 "Creating a custom whitelist", "Activating and
managing an auto-generated whitelist"): not a check of its own — the blacklist, RBL and
heuristic checks ask `whitelisted(view, settings)` and stand aside for a whitelisted sender.
Spam rules, content rules and antivirus never ask (the guide: "Spam rule processing still
applies").

The custom whitelist is matched here on the envelope sender (core/scan/antispam/lists.py
rule 1). The auto-generated whitelist lives in the core's memory and SQLite
(core/scan/antispam/autowhitelist.py); the core marks the envelope `meta["auto_whitelisted"]`
before the message reaches a worker, so this module stays a pure function of its inputs.

Rules
    1. A check that stands aside still works out what it would have done, and when it would
       have acted, says so: `stood_aside` turns its deciding finding into one "whitelisted"
       finding — the check's own event (sender_blocked, spam_list_block, heuristic_spam),
       result WHITELISTED, the whitelist rule as its rule, what it would have asked for and
       under which rule in its data. So the detail report answers "why was mail from a
       sender I blacklisted, or from a listed host, delivered?" (SPEC §5: every decision
       names its rule; antispam21 B1: nothing did). The whitelist is the easy way past the
       gateway — an envelope sender is forged at will — so its use must leave a trace.
    2. A "whitelisted" finding decides nothing and edits nothing (verdict.py), and counts as
       no block: neither on the Status page (core/pipeline/service.py) nor in the summary
       report (shared/report.py NOT_COUNTED).
"""

from __future__ import annotations

from dataclasses import replace

from core.pipeline.findings import Finding
from core.scan.antispam.lists import whitelist_match

__all__ = ["whitelisted", "stood_aside"]


def whitelisted(view, settings) -> str | None:
    """The rule that whitelists the sender ("whitelist.custom @example.com",
    "whitelist.auto"), or None."""
    if settings["whitelist.custom.enabled"]:
        entry = whitelist_match(view.sender, settings["whitelist.custom"])
        if entry:
            return f"whitelist.custom {entry}"
    if settings["whitelist.auto.enabled"] and view.meta.get("auto_whitelisted"):
        return "whitelist.auto"
    return None


def stood_aside(findings: list[Finding], whitelist: str, *,
                would: str | None = None) -> list[Finding]:
    """Rule 1: the findings a check would have returned, as the one "whitelisted" finding of
    its deciding finding (the first that has an event); [] when it would have asked for
    nothing. Its edits (the spam marks) are left out: they would only have gone with it.
    `would`: what it would have done, when not its finding's action (the RBL's reject at
    MAIL FROM, which the session let pass)."""
    deciding = next((f for f in findings if f.event is not None), None)
    if deciding is None:
        return []
    would = would or deciding.action
    # a check that failed (core/pipeline/run.py rule 1) asked for scan.unprocessable only
    done = ("delivered" if would == "deliver" and deciding.event == "scan_error"
            else _DONE.get(would, would))
    return [replace(deciding, action="whitelisted", rule=whitelist, forward_to=None,
                    forward_subject=None,
                    data={**deciding.data, "whitelist": whitelist, "would_have": would,
                          "overridden_rule": deciding.rule,
                          **({"forward_to": deciding.forward_to} if deciding.forward_to
                             else {})},
                    reason=f"{deciding.reason}; would have been {done}, "
                           f"but the sender is whitelisted by {whitelist}")]


# what the check would have done, as the reason says it
_DONE = {"drop": "dropped", "forward": "forwarded", "hold": "held", "log": "logged", "reject":
         "rejected at MAIL FROM", "deliver": "delivered marked as spam"}
