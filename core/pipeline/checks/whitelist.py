"""Whitelists (SPEC §3 whitelist.*; guide §5 "Creating a custom whitelist", "Activating and
managing an auto-generated whitelist"): not a check of its own — the blacklist, RBL and
heuristic checks ask `whitelisted(view, settings)` and stand aside for a whitelisted sender.
Spam rules, content rules and antivirus never ask (the guide: "Spam rule processing still
applies").

The custom whitelist is matched here on the envelope sender (core/scan/antispam/lists.py
rule 1). The auto-generated whitelist lives in the core's memory and SQLite
(core/scan/antispam/autowhitelist.py); the core marks the envelope `meta["auto_whitelisted"]`
before the message reaches a worker, so this module stays a pure function of its inputs.
"""

from __future__ import annotations

from core.scan.antispam.lists import whitelist_match

__all__ = ["whitelisted"]


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
