"""Settings in SQLite: read the full set, validate and write changes, export and import.

Only the console and the CLI write settings (ARCHITECTURE invariant 4); the core reads them
through `load()` into an immutable snapshot and notices changes with `PRAGMA data_version`.
Only values that were set are stored; a key never set reads as its schema default, so a new
release's defaults reach installations that never changed them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from types import MappingProxyType
from typing import Any, Callable, Mapping

from shared import db
from shared.ports import check_ports, stored_host_problems
from shared.settings import SCHEMA, SettingError, defaults, refused_values, validate_changes
from shared.settings_types import loads_stored

__all__ = ["load", "snapshot", "apply_changes", "Changes", "export_settings", "import_settings",
           "stored_keys", "load_one", "check_on_this_host", "refused_on_this_host"]


def load(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every key: the stored value, else the default. Unknown stored keys are ignored.

    A lone UTF-16 surrogate an older release let in (stored as its JSON escape: the settings
    table holds ASCII JSON) reads as U+FFFD (settings_types `loads_stored`): no UTF-8
    text can hold it, and the mail, page or `config get` using it would fail (settings
    finding 1). The stored value stays until it is changed."""
    values = defaults()
    for row in conn.execute("SELECT key, value FROM settings"):
        if row["key"] in SCHEMA:
            values[row["key"]] = loads_stored(row["value"])
    return values


def snapshot(conn: sqlite3.Connection) -> Mapping[str, Any]:
    """A read-only view for the core's per-message snapshot."""
    return MappingProxyType(load(conn))


def load_one(conn: sqlite3.Connection, key: str) -> Any:
    """One key as `load` reads it (the stored value, else the default), from its one row:
    for a reader that polls one setting often (console.jobs follows `timezone`)."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return SCHEMA[key].default if row is None else loads_stored(row["value"])


def stored_keys(conn: sqlite3.Connection) -> set[str]:
    return {row["key"] for row in conn.execute("SELECT key FROM settings")}


Changes = Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]]


def apply_changes(conn: sqlite3.Connection, changes: Changes) -> dict[str, tuple]:
    """Validate `changes` against the current settings and store them in one transaction.

    `changes` may be a function of the settings as stored, called inside the transaction:
    an edit of a list (add an entry, move entries in) then starts from the list as it is,
    so two edits at the same moment both land instead of the later one undoing the other.

    Returns {key: (old, new)} for the keys whose value changed (secrets as stored hashes).
    Raises SettingError (every broken rule) and changes nothing then.
    """
    with db.write_transaction(conn):
        current = load(conn)
        if callable(changes):
            changes = changes(MappingProxyType(current))
        normalised = validate_changes(current, dict(changes))
        now = time.time()
        changed = {}
        for key, value in normalised.items():
            if current.get(key) != value:
                changed[key] = (current.get(key), value)
            conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                         "updated_at = excluded.updated_at",
                         (key, json.dumps(value), now))
    return changed


def check_on_this_host(current: Mapping[str, Any], changes: Mapping[str, Any],
                       **where: Any) -> None:
    """`shared.ports.check_ports` (`where`: its `ours`, `conn`, `clock`), for the console's
    Setup tab, `config set` and `config import`. Its refusals (a port in use, an address
    this host lacks) come with the schema's of the other keys, so one save or import names
    every value to correct (regress17 R4, upgrade17 B4: a broadcast listen address hid a bad
    host name, or an import's other refused keys, until the next round). Where both refuse
    a key, the schema's rule is the one given."""
    try:
        check_ports(current, changes, **where)
    except SettingError as host:
        try:
            validate_changes(dict(current), dict(changes))
        except SettingError as schema:
            named = {key for key, _rule in schema.errors}
            raise SettingError(
                schema.errors + [(k, r) for k, r in host.errors if k not in named],
                {**{k: c for k, c in host.causes.items() if k not in named},
                 **schema.causes}) from None
        raise


def refused_on_this_host(stored: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(key, rule)` for each value of `stored` (a full settings dict, as `load` reads it)
    that this release refuses on this host, in the schema's order: the schema's and the
    cross rules' (shared.settings `refused_values`) and the host's (shared.ports
    `stored_host_problems`: a broadcast address of its networks in smtp.listen or
    dns.resolvers), the schema's rule where both refuse a key, as `check_on_this_host`
    gives them. The one list of them: the Status page shows it and `config export` warns
    of it, and an import of that export or a save of the page holding one refuses each
    (settingsfix18 item 1: the Status page left out the host's). Never raises for a stored
    value."""
    refused = refused_values(stored)
    named = {key for key, _rule in refused}
    refused += [(key, rule) for key, rule in stored_host_problems(stored) if key not in named]
    order = {key: index for index, key in enumerate(SCHEMA)}
    return sorted(refused, key=lambda error: order[error[0]])


def export_settings(conn: sqlite3.Connection) -> dict[str, Any]:
    """The full flat object, secrets as stored (hashes for passwords), sorted by key."""
    values = load(conn)
    return {key: values[key] for key in sorted(values)}


def import_settings(conn: sqlite3.Connection, data: Any) -> dict[str, tuple]:
    """Validated restore: every key of `data` checked before anything changes.

    Keys missing from `data` are left as they are (an export from an older release missing
    keys added since restores cleanly). Raises SettingError listing every bad key, one line
    each (SPEC §2); an older release's export may hold values that release accepted and this
    one refuses (upgrade finding 2): the file must change (docs/operations.md, Upgrading).
    """
    if not isinstance(data, dict):
        raise SettingError([("(file)", "must be a JSON object of settings")])
    return apply_changes(conn, data)
