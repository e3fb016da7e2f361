"""Saving settings from any console page: validate, store, record who changed what.

Rules:
- Settings are written only through `shared.settings_store.apply_changes` (one transaction,
  every rule checked, nothing changed on error), so the core sees a console change exactly
  as it sees `mailmoat config set` — within its 2-second reload.
- A save that changes something writes one `object_modified` event: who, from which client,
  which page, and every changed key as [old, new] with secrets shown as "***". The core's
  alert engine mails the config_change alert for it when `alerts.config_change` is on.
- Commands for the core (hold queue actions) go into the commands table with an
  `object_modified` event too.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from console.context import console_context, forget_settings, request_db, settings
from shared.events import Action
from shared.settings import PAGES, SettingError, display_value
from shared.settings_store import apply_changes

__all__ = ["save_settings", "submit_command", "record_change", "rule_key", "rules_as_shown",
           "RULE_LIST_CHANGED"]

RULE_LIST_CHANGED = "the rule list changed meanwhile; reload the page"


def record_change(user: str, client_ip: str | None, page: str, changes: dict[str, list],
                  **extra: Any) -> None:
    title = PAGES.get(page, page)
    console_context().events.record(
        Action.OBJECT_MODIFIED, result="saved", client_ip=client_ip, info=title,
        rule=",".join(sorted(changes))[:500] or None,
        data={"user": user, "page": page, "changes": changes, **extra})


def save_settings(changes: Mapping[str, Any], *, user: str, client_ip: str | None,
                  page: str) -> dict[str, tuple]:
    """Store `changes`; returns {key: (old, new)} of what changed.

    Raises shared.settings.SettingError (nothing changed) when any rule is broken.
    """
    changed = apply_changes(request_db(), changes)
    forget_settings()
    if changed:
        record_change(user, client_ip, page, {
            key: [display_value(key, old), display_value(key, new)]
            for key, (old, new) in changed.items()})
    return changed


def rule_key(rule: dict) -> str:
    """A rule as a page shows it: sent back with its index, so an edit or a delete can tell
    that the list changed meanwhile (another session edited or deleted a rule)."""
    return json.dumps(rule, sort_keys=True)


def rules_as_shown(key: str, index: int, shown: str) -> list:
    """A copy of the rule list `key` (rules.content, rules.spam) when its entry `index` is
    still the one the page showed (`rule_key`); else SettingError, nothing changed."""
    rules = list(settings()[key])
    if not 0 <= index < len(rules) or rule_key(rules[index]) != shown:
        raise SettingError([(key, RULE_LIST_CHANGED)])
    return rules


def submit_command(kind: str, args: dict[str, Any], *, user: str, client_ip: str | None,
                   page: str) -> int:
    """Queue a command for the core; returns its id. The core carries it out."""
    conn = request_db()
    now = console_context().clock.now()
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO commands (created_at, kind, args, requested_by) VALUES (?, ?, ?, ?)",
            (now, kind, json.dumps(args, sort_keys=True), user))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    record_change(user, client_ip, page, {}, command=kind, args=args, command_id=cursor.lastrowid)
    return cursor.lastrowid
