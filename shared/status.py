"""The status snapshot (guide Table 7-1): what the core writes every second, the console reads.

The core owns the `status` row named "core" (ARCHITECTURE invariant 4); `write_snapshot` is its
only writer and `read_snapshot` what the Status page uses. Counter names are declared here
once so both sides agree.

`smtp_not_listening` lists the addresses of smtp.listen the SMTP listener leaves out while it
serves the others (core/smtp/server.py rules), each {"address": host:port, "problem": why,
"retry_seconds": how often it is tried again}; `not_listening_notices` is how the Status page
and the Setup tab say it, so an administrator sees it where they look, not only in the events.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

__all__ = ["COUNTERS", "SPAM_COUNTERS", "HEURISTIC_ROWS", "PREMIUM_ROWS", "QUEUES",
           "new_snapshot", "write_snapshot", "read_snapshot", "live_snapshot",
           "STALE_AFTER_SECONDS",
           "not_listening_notices"]

# Table 7-1 counters, since the core last started.
COUNTERS = (
    "accepted", "rejected", "delivered", "forwarded", "dropped", "held", "quarantined",
    "bounced", "delivery_failures", "mass_mailers_deleted",
    "infections_repaired", "infections_deleted", "infections_logged",
    "attachments_stripped", "encryptions_deleted", "encryptions_logged",
    "spam_blacklist", "spam_rbl", "spam_heuristic", "spam", "suspected_spam",
    "reputation_spam", "policy_violations", "protocol_violations", "connections",
    "bytes_received", "spam_messages",
    "rbl_refused",     # real-time blacklist answers that were error codes (core/smtp/rbl.py 2a)
    "rbl_skipped",     # real-time blacklist lookups skipped: zone suspended (core/smtp/rbl.py 5)
)
# The per-check spam counters; "spam_messages" counts each message once however many of them
# it adds to (the guide's "Total number of spam messages detected").
SPAM_COUNTERS = frozenset(("spam_blacklist", "spam_rbl", "spam_heuristic", "spam",
                           "suspected_spam", "reputation_spam"))
# The Antispam detections rows the Status page shows after the two blacklists' (guide
# Table 7-1): the heuristic engine's, or with Premium AntiSpam (`premium.enabled`) in its
# place Spam, Suspected spam and Reputation spam. Premium's Spam takes in the heuristic
# engine's detections, as the guide's Spam action does (Table 7-7: "heuristic spam detection
# events and spam detection from the premium antispam service"); the heuristic counter
# includes the spam rules' hits (score 100, handled as heuristic spam: SPEC §3 rules.spam).
# The summary report counts the same messages from their events (shared.report.PREMIUM_ITEMS).
# The row says both: a spam rule adds to it while the engine is off (tester27b C2).
HEURISTIC_ROWS = (("Heuristic engine and spam rules", ("spam_heuristic",)),)
PREMIUM_ROWS = (("Spam", ("spam", "spam_heuristic")), ("Suspected spam", ("suspected_spam",)),
                ("Reputation spam", ("reputation_spam",)))
QUEUES = ("fast", "slow", "hold")
# The core writes every second; an older snapshot is not live: the core is not running, or
# it runs but has not written (starting, stopping, a full disk, a locked database: the
# Status page asks run/core.lock which). Nothing takes an older one's content as the
# running core's.
STALE_AFTER_SECONDS = 5


def new_snapshot(**facts: Any) -> dict[str, Any]:
    base = {
        "version": None, "hostname": None, "smtp_port": None, "started_at": None,
        "improper_shutdown": False, "delivery_mode": "delivery", "incoming": "accept",
        "virus_scanning": True, "central_quarantine": "disabled",
        "counters": {name: 0 for name in COUNTERS},
        "queues": {name: 0 for name in QUEUES},
        "definitions": {"virus": None, "spam": None},
        "auto_whitelist_entries": 0,
        "smtp_not_listening": [],
        # queue id -> since when (unix time, whole seconds) its delivery attempt is in
        # progress, at most MAX_ATTEMPTS (core/spool/manager.py): `mailmoat queue list`
        "attempts": {},
    }
    base.update(facts)
    return base


def write_snapshot(conn: sqlite3.Connection, snapshot: dict[str, Any],
                   now: float | None = None, process: str = "core") -> None:
    conn.execute("INSERT INTO status (process, updated_at, data) VALUES (?, ?, ?) "
                 "ON CONFLICT(process) DO UPDATE SET updated_at = excluded.updated_at, "
                 "data = excluded.data",
                 (process, now if now is not None else time.time(), json.dumps(snapshot)))


def read_snapshot(conn: sqlite3.Connection, process: str = "core") -> tuple[dict, float] | None:
    """(snapshot, updated_at) or None when the process never wrote one."""
    row = conn.execute("SELECT data, updated_at FROM status WHERE process = ?",
                       (process,)).fetchone()
    if row is None:
        return None
    return json.loads(row["data"]), row["updated_at"]


def live_snapshot(conn: sqlite3.Connection, now: float) -> dict | None:
    """The running core's snapshot; None when there is no live one at `now` (none written,
    or one older than STALE_AFTER_SECONDS: no core runs, or it has not written for a
    while)."""
    found = read_snapshot(conn)
    if found is None or now - found[1] > STALE_AFTER_SECONDS:
        return None
    return found[0]


def not_listening_notices(snapshot: dict[str, Any]) -> list[str]:
    """One line for each address of smtp.listen the running core's listener leaves out
    (module header), in the snapshot's order; [] for a snapshot without any, or of a
    release that did not say."""
    notices = []
    for entry in snapshot.get("smtp_not_listening") or ():
        if not isinstance(entry, dict):
            continue
        retry = entry.get("retry_seconds")
        notices.append(f"Not listening for SMTP on {entry.get('address')}, an address of "
                       f"smtp.listen: {entry.get('problem')}"
                       + (f"; tried again every {retry:.0f} s." if retry else "."))
    return notices
