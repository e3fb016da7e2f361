"""Saving settings from any console page: validate, store, record who changed what.

Rules:
- Settings are written only through `shared.settings_store.apply_changes` (one transaction,
  every rule checked, nothing changed on error), so the core sees a console change exactly
  as it sees `mailmoat config set` — within its 2-second reload. An edit of part of a list
  (`edit_list`) is made to the list as stored, inside that transaction.
- A save that changes something writes one `object_modified` event: who, from which client,
  which page, and every changed key as [old, new] with secrets shown as "***". The core's
  alert engine mails the config_change alert for it when `alerts.config_change` is on.
- Commands for the core (hold queue actions) go into the commands table with an
  `object_modified` event too.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Callable, Mapping, TypeVar

from console.context import console_context, forget_settings, request_db, settings
from console.rule_terms import numbered_terms
from shared import db
from shared.events import Action
from shared.settings import PAGES, SettingError, changes_shown
from shared.settings_store import Changes, apply_changes
from shared.settings_types import RuleError, entries_rule

__all__ = ["save_settings", "edit_list", "submit_command", "pending_command_items",
           "record_change", "rule_key",
           "check_rule_shown",
           "rule_errors", "rule_form_errors", "RULE_LIST_CHANGED", "RuleListChanged"]

T = TypeVar("T")
RULE_LIST_CHANGED = "the rule list changed meanwhile; reload the page"
RULE_FIELDS = ("name", "terms", "none_of")  # the fields of a rule form, named as in the rule


class RuleListChanged(SettingError):
    """The rule list is no longer the one the page showed: there is nothing to correct in
    what was typed, the page must be reloaded."""


def record_change(user: str, client_ip: str | None, page: str, changes: dict[str, list],
                  **extra: Any) -> None:
    title = PAGES.get(page, page)
    console_context().events.record(
        Action.OBJECT_MODIFIED, result="saved", client_ip=client_ip, info=title,
        rule=",".join(sorted(changes))[:500] or None,
        data={"user": user, "page": page, "changes": changes, **extra})


def save_settings(changes: Changes, *, user: str, client_ip: str | None,
                  page: str) -> dict[str, tuple]:
    """Store `changes` (or what a function of the stored settings returns: see
    shared.settings_store.apply_changes); returns {key: (old, new)} of what changed.

    Raises shared.settings.SettingError (nothing changed) when any rule is broken.
    """
    changed = apply_changes(request_db(), changes)
    forget_settings()
    if changed:
        record_change(user, client_ip, page, changes_shown(changed))
    return changed


def rule_key(rule: dict) -> str:
    """A rule as a page shows it: sent back with its index, so an edit or a delete can tell
    that the list changed meanwhile (another session edited or deleted a rule)."""
    return json.dumps(rule, sort_keys=True)


def edit_list(key: str, edit: Callable[[list], T], *, user: str, client_ip: str | None,
              page: str) -> T:
    """Apply `edit` (in place) to a copy of the list setting `key` as stored, inside the
    saving transaction, and save it; returns what `edit` returned. Two edits at the same
    moment (two tabs adding a rule, two moves into a whitelist) both land. A list the edit
    left as it was is not written (no change, no event)."""
    returned = []

    def changes(current):
        entries = list(current[key])
        returned.append(edit(entries))
        return {key: entries} if entries != current[key] else {}
    save_settings(changes, user=user, client_ip=client_ip, page=page)
    return returned[-1]


def check_rule_shown(key: str, rules: list, index: int, shown: str) -> None:
    """RuleListChanged (a SettingError) unless entry `index` of the rule list `key`
    (rules.content, rules.spam) is still the rule the page showed (`rule_key`)."""
    if not 0 <= index < len(rules) or rule_key(rules[index]) != shown:
        raise RuleListChanged([(key, RULE_LIST_CHANGED)])


def check_rule_name(rules: list, index: int | None, rule: dict) -> None:
    """SettingError by the rule form's name field when another rule of the list has the name
    of `rule`, to be saved at `index` (None: added at the end). Events and the Detail report
    name a rule by it (`rules.spam[4] pills`), and two of one name were told apart only by a
    position that changes when a rule before them is deleted (tester27b C6). Letter case,
    spaces around it and invisible characters do not make it another name. Checked where a
    rule is saved, not in the settings' rules: lists an older release stored, or `config
    set` writes, keep working (review27c R4)."""
    name = _name_form(rule.get("name"))
    if not name:
        return
    for number, other in enumerate(rules, 1):
        if number - 1 != index and _name_form(other.get("name")) == name:
            raise SettingError([("name", f"rule {number} has this name")])


def _name_form(name) -> str:
    if not isinstance(name, str):
        return ""
    return "".join(c for c in name if unicodedata.category(c) != "Cf").strip().lower()


def rule_errors(exc: SettingError, key: str, index: int,
                numbering: Mapping[str, list[int]] | None = None) -> list[tuple[str, str]]:
    """`exc`'s errors, those of rule `index` (from 0) of the list `key` (rules.content,
    rules.spam) as (rule form field, rule), so a page can show them next to what the
    administrator typed; the others as (key, rule).

    `numbering` gives, per field, the number the administrator sees for each of its list's
    entries (a term's place in the comma-separated line); the bad entries are then named by
    those numbers (shared.settings_types.entries_rule).
    """
    out = []
    for error_key, rule in exc.errors:
        cause = exc.causes.get(error_key) if error_key == key else None
        if cause is None or not cause.entries:
            out.append((error_key, rule))
            continue
        others = []
        for position, error in cause.entries:
            if position != index + 1:
                others.append((position, error.rule))
                continue
            for part in error.field_errors or (error,):      # every bad field of the rule
                if part.field in RULE_FIELDS:
                    out.append((part.field, _field_rule(part.inner,
                                                        (numbering or {}).get(part.field))))
                else:
                    out.append((error_key, part.rule))
        if others:
            out.append((error_key, entries_rule(others)))
    return out


def rule_form_errors(exc: SettingError, key: str, index: int | None, terms: str | None,
                     none_of: str | None) -> list[tuple[str, str]]:
    """The errors of a refused save of rule `index` of the list `key` (None: a new rule,
    added at the end) typed with these terms lines, for the rule form: by its fields where
    they belong, terms named by their place in the line (`rule_errors`). Errors already
    named by a field pass through."""
    position = len(settings()[key]) if index is None else index
    numbering = {"terms": [place for place, _t in numbered_terms(terms or "")],
                 "none_of": [place for place, _t in numbered_terms(none_of or "")]}
    return rule_errors(exc, key, position, numbering)


def _field_rule(error: RuleError, numbers: list[int] | None) -> str:
    if not error.entries or numbers is None or error.entries[-1][0] > len(numbers):
        return error.rule
    return entries_rule([(numbers[position - 1], entry.rule)
                         for position, entry in error.entries], unit="term")


def submit_command(kind: str, args: dict[str, Any], *, user: str, client_ip: str | None,
                   page: str, recorded_args: dict[str, Any] | None = None) -> int:
    """Queue a command for the core; returns its id. The core carries it out. Its event
    records `recorded_args` when given (a shorter form of `args`), else `args`."""
    conn = request_db()
    now = console_context().clock.now()
    with db.write_transaction(conn):
        cursor = conn.execute(
            "INSERT INTO commands (created_at, kind, args, requested_by) VALUES (?, ?, ?, ?)",
            (now, kind, json.dumps(args, sort_keys=True), user))
    record_change(user, client_ip, page, {}, command=kind,
                  args=args if recorded_args is None else recorded_args,
                  command_id=cursor.lastrowid)
    return cursor.lastrowid


def pending_command_items(kind: str, field: str) -> set[str]:
    """The items listed under `field` by `kind` commands the core has not carried out yet
    (it does within about a second): a page shown meanwhile leaves them out, so they are not
    acted on twice."""
    rows = request_db().execute(
        "SELECT args FROM commands WHERE state IN ('pending', 'running') AND kind = ?",
        (kind,)).fetchall()
    items: set[str] = set()
    for row in rows:
        try:
            items.update(json.loads(row["args"]).get(field) or ())
        except (ValueError, AttributeError, TypeError):
            continue
    return items
