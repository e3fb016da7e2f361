"""Filtering Policy saves: every change goes through console.settings_service.save_settings
(schema validation, nothing changes on error, an object_modified event).

Content rules are edited one at a time in the list `rules.content`; a rule's terms come
from one comma-separated line (the guide: "Separate all terms with commas"), read and
written, and a rule built from its form, as the Spam Rules page does
(console.rule_terms: `\\,` is a comma in a term, so a term with a comma, which the CLI and
an import can store, reads back as it is stored; a term with the guide's AND, OR or NOT
between words is refused with what to type instead). An edit or a delete names the rule as
it was shown, so a list changed meanwhile is refused rather than the wrong rule changed.
"""

from __future__ import annotations

from typing import Any

from console.context import settings
from console.settings_service import (check_rule_name, check_rule_shown, edit_list, rule_key,
                                      save_settings)
from shared.settings import OPEN_RELAY_WARNING

__all__ = ["save_page", "add_rule", "update_rule", "delete_rule", "rule_key", "page_warnings"]


def save_page(page: str, changes: dict[str, Any], *, user: str, client_ip: str | None) -> dict:
    return save_settings(changes, user=user, client_ip=client_ip, page=page)


def _edit(edit, *, user, client_ip):
    return edit_list("rules.content", edit, user=user, client_ip=client_ip,
                     page="content_rules")


def add_rule(rule: dict, *, user, client_ip) -> None:
    def edit(rules):
        check_rule_name(rules, None, rule)
        rules.append(rule)
    _edit(edit, user=user, client_ip=client_ip)


def update_rule(index: int, original: str, rule: dict, *, user, client_ip) -> bool:
    """Replace rule `index`; False when it already is `rule` (nothing is written then)."""
    def edit(rules):
        check_rule_shown("rules.content", rules, index, original)
        check_rule_name(rules, index, rule)
        changed, rules[index] = rules[index] != rule, rule
        return changed
    return _edit(edit, user=user, client_ip=client_ip)


def delete_rule(index: int, original: str, *, user, client_ip) -> dict:
    def edit(rules):
        check_rule_shown("rules.content", rules, index, original)
        return rules.pop(index)
    return _edit(edit, user=user, client_ip=client_ip)


def page_warnings(page: str) -> list[str]:
    values = settings()
    warnings = []
    if page == "relay" and values["relay.mode"] == "allow":
        warnings.append(OPEN_RELAY_WARNING)
    if page == "relay" and values["relay.mode"] == "deny_except" and not values["relay.allowed"]:
        warnings.append("No hosts are listed: all mail to non-local destinations is refused "
                        "(550 5.7.1). Local destinations are the Local Routing entries.")
    if page == "content" and values["filename.enabled"] and not values["filename.patterns"]:
        warnings.append("File-name blocking is on but the list is empty.")
    if page == "content_rules":
        total = len(values["rules.content"]) + len(values["rules.spam"])
        warnings.append(f"{total} of 100 spam and content rules in use (at most 50 terms each).")
    return warnings
