"""What the Status page shows: Table 7-1 items from the status snapshot, plus traffic per hour.

Rules:
- The core writes the snapshot every second (shared.status); an older one means the core is
  not running or cannot write it (next rule), and the page says so instead of showing stale
  numbers as live.
- A stale snapshot is not taken for a stopped core on its own: the core holds run/core.lock
  for as long as it runs (shared.home CORE_LOCK; `lock_holder` asks the kernel), so the page
  says "running" when a process holds that lock and "not running" when none does. While the
  data home's disk is full (under FULL_DISK_OCTETS free, or no inode left) the core cannot
  write its snapshot (SQLite's "database or disk is full") and the page says so, with how
  much is free. It said "The core is not running" while the core answered 452 and delivered,
  which led an administrator to restart it (diskfull21 B3). With room on the disk the page
  names no single cause but the likely ones: a core takes its lock before it recovers the
  spool and writes its first report only after, so a start over a large queue, a slow stop,
  another program's lock on mailmoat.db and a hung core all look the same from here (it
  named the lock alone: review21b R2).
- Licensing is not built yet and the page says so plainly; the definitions rows show the
  version in force (the core's snapshot).
- Traffic per hour (accepted, delivered, dropped, rejected) over the last 24 hours is the
  reports' chart count (shared.report.disposition_counts), bucketed on whole hours of the
  wall clock in the `timezone` setting (in a half-hour zone such as Asia/Kolkata too:
  09:00–10:00 local, not the UTC hour 09:30–10:30). Rejected counts messages there, as the
  counters do.
- The Virus scanning row says, while the settings scan with clamd and the core has found it
  not answering (the snapshot's `clamd`, core/status.py `ClamdHealth`), since when, why,
  and what becomes of mail meanwhile (scan.unprocessable, `unanswered_mail`): guide45
  finding 3, where a mistyped address held every message under a plain "Enabled".
- The Antispam detections rows after the blacklists' are shared.status's HEURISTIC_ROWS, or
  PREMIUM_ROWS while `premium.enabled` is on: there Spam takes in the heuristic engine's
  detections (spam rules included), as the guide's Spam action does (Table 7-7), so a
  detection counted in "Spam messages detected" is in one of the rows, and Spam agrees with
  the summary report's Spam Detected (shared.report.PREMIUM_ITEMS). Before, Premium
  AntiSpam (not built) hid the only engine that scores and showed Spam 0.
- While the core runs, each address of smtp.listen its listener leaves out (an interface
  gone, the port taken there) is a warning at the top, in the words of shared.status
  `not_listening_notices`: "Server and port" alone looked as if all were well.
- The "SSL certificate installed" row marks a certificate that expired, is not valid yet
  or expires within shared.tls.EXPIRY_WARNING_DAYS (console.certs `dates_mark`): the
  servers go on offering an expired one, so nothing else on the page said it (certs17 C3).
  It says too when the pair in tls/ does not load, and what is served instead (console.
  certs `problem_mark`): the date shown is then of a certificate not in use (upgrade17 B3).
- Settings that work as set but that a new administrator must hear of are warnings at the
  top, in the words the core says them at start: relay.mode allow, an open relay
  (shared.settings OPEN_RELAY_WARNING), and an empty smtp.hostname while the machine's name
  is a single label or localhost (shared.home `hostname_notice`, of the name the core
  reported). "Server and port" gives the name the SMTP banner gives (shared.home
  `gateway_name`), not a third one (dayone17 findings 1, 2).
- A Heuristic antispam row says whether that engine is on (`heuristic.enabled`), as the
  Virus scanning row does for scanning: it is off until turned on (SPEC), and the page said
  nothing of antispam (dayone17 finding 3).
- Stored settings that the current rules refuse (shared.settings_store
  `refused_on_this_host`: values an older release accepted, the host's refusals among them,
  the list `config export` warns of) are listed as a warning, each with its key, rule and
  console page: they block no other save, so nothing else would tell the administrator. The
  list is worked out again only when a settings row or the host's broadcast networks
  (shared.ports `broadcast_networks`, what the host's refusals read) have changed since
  (review 13: ~130 ms a view with 10,000-entry lists): every save stamps the rows it writes
  (`updated_at`, shared.settings_store), whichever process saves, and the stamps are read in
  the same snapshot as the values they stamp, so a save between the two cannot leave a
  stale list.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from console.certs import CertificateStatus, certificate_status
from console.context import console_context, request_db, settings
from shared.events import Action
from shared.report import disposition_counts
from shared.report_time import ReportRange
from shared.home import CORE_LOCK, gateway_name, hostname_notice, lock_holder
from shared.known_failures import FULL_DISK_OCTETS, full_notice
from shared.ports import broadcast_networks
from shared.settings import OPEN_RELAY_WARNING, PAGES, SCHEMA
from shared.settings_store import load, refused_on_this_host
from shared.status import (COUNTERS, HEURISTIC_ROWS, PREMIUM_ROWS, QUEUES, STALE_AFTER_SECONDS,
                           not_listening_notices, read_snapshot)

__all__ = ["StatusView", "Traffic", "status_view", "traffic_last_24h", "TRAFFIC_SERIES",
           "format_duration", "definitions_in_force", "definitions_line", "refused_settings",
           "virus_scanning_line", "unanswered_mail", "setting_warnings", "disk_full_notice",
           "FULL_DISK_OCTETS"]

TRAFFIC_SERIES = (Action.ACCEPTED, Action.DELIVERED, Action.DROPPED, Action.REJECTED)
HOURS = 24
NOT_BUILT = "not built yet"
# What becomes of mail while a scanner does not answer: scan.unprocessable, as for any
# scanner error (SPEC §3).
UNANSWERED_MAIL = {"hold": "mail is held", "deliver": "mail is delivered without clamd's scan",
                   "drop": "mail is dropped"}


@dataclass
class Traffic:
    hour_starts: list[float]                       # unix time of each bucket's start
    counts: dict[str, list[int]]                   # action → count per hour
    timezone: str = "UTC"

    def total(self, action: str) -> int:
        return sum(self.counts[action])


@dataclass
class StatusView:
    # running | stopped | never, or stale: the snapshot is old, but a process holds
    # run/core.lock (module rules); unknown: old, and the lock could not be looked at
    core_state: str
    updated_at: float | None
    sections: list[tuple[str, list[tuple[str, Any]]]] = field(default_factory=list)
    traffic: Traffic | None = None
    now_text: str = ""
    updated_text: str = ""
    hour_labels: list[str] = field(default_factory=list)
    refused_settings: list[tuple[str, str, str]] = field(default_factory=list)  # key, page, rule
    setting_warnings: list[str] = field(default_factory=list)   # open relay, name (rules)
    not_listening: list[str] = field(default_factory=list)   # the running core's (rules)
    core_pid: str = ""          # stale: the pid the lock's holder wrote; unknown: why not
    disk_full: str = ""         # while the report is not live: the full disk, said (rules)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = ([f"{days} day{'s' if days != 1 else ''}"] if days else []) + \
        [f"{hours} hour{'s' if hours != 1 else ''}", f"{minutes} minute{'s' if minutes != 1 else ''}"]
    return ", ".join(parts)


def _zone() -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(settings()["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def format_time(unix: float | None) -> str:
    if not unix:
        return "—"
    return dt.datetime.fromtimestamp(unix, _zone()).strftime("%Y-%m-%d %H:%M:%S %Z")


def definitions_line(value: Any) -> str:
    """The set in force as the core reports it, in the words of `mailmoat definitions
    status` (shared.definitions.describe): the same line in both places."""
    if not value:
        return "Not reported yet (the core reports the definitions in force while it runs)"
    if isinstance(value, dict):
        from shared.definitions import describe
        return describe(value)
    return str(value)


def unanswered_mail(values) -> str:
    """What becomes of mail while clamd does not answer, under the settings `values`."""
    return UNANSWERED_MAIL[values["scan.unprocessable"]]


def _since_text(unix: float, now: float) -> str:
    """HH:MM in the `timezone` setting; the date too when it is not today's."""
    zone = _zone()
    at = dt.datetime.fromtimestamp(unix, zone)
    same_day = at.date() == dt.datetime.fromtimestamp(now, zone).date()
    return at.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")


def virus_scanning_line(snap: dict, values, now: float) -> str:
    """The Virus scanning row: Enabled or Disabled, and while clamd does not answer, since
    when, why and what becomes of mail (module rules)."""
    if not snap.get("virus_scanning", values["av.enabled"]):
        return "Disabled"
    clamd = snap.get("clamd")
    if not isinstance(clamd, dict) or clamd.get("answering") is not False:
        return "Enabled"
    since = clamd.get("since")
    return (f"Enabled — clamd at {clamd.get('address')} not answering"
            + (f" since {_since_text(since, now)}" if since else "")
            + f" ({clamd.get('problem') or 'no answer'}; {unanswered_mail(values)})")


def traffic_last_24h(now: float) -> Traffic:
    """Counts per hour for the 24 whole local hours ending with the current one, counted as
    the reports count them (shared.report.disposition_counts: one definition of each series,
    "Rejected" included)."""
    local = dt.datetime.fromtimestamp(now, _zone())
    current_hour = local.replace(minute=0, second=0, microsecond=0).timestamp()
    start = current_hour - (HOURS - 1) * 3600
    starts = [start + i * 3600 for i in range(HOURS)]
    buckets = disposition_counts(request_db(), ReportRange(start, current_hour + 3600),
                                 TRAFFIC_SERIES, starts=starts)
    counts = {str(a): [buckets.get(s, {}).get(str(a), 0) for s in starts]
              for a in TRAFFIC_SERIES}
    return Traffic(starts, counts, settings()["timezone"])


def definitions_in_force(kind: str) -> str:
    """The line for the `kind` definitions the core scans with, from its status snapshot —
    not the set installed on disk, which may be one the core could not use."""
    found = read_snapshot(request_db())
    return definitions_line(((found[0] if found else {}).get("definitions") or {}).get(kind))


# The last refused_on_this_host answer, with the database, the settings rows' change stamps
# and the host's broadcast networks it was worked out from. One slot (a console process
# serves one data home), replaced whole: a request thread reads either the old pair or the
# new one (console.serve runs several).
_refused_last: tuple[tuple, list[tuple[str, str]]] | None = None


def refused_settings() -> list[tuple[str, str, str]]:
    """`(key, page, rule)` for each stored value the current rules refuse on this host, in
    the schema's order; worked out again only after a settings row or the host's broadcast
    networks changed (module rules)."""
    global _refused_last
    conn = request_db()
    conn.execute("BEGIN")       # the stamps and the values they stamp: one read snapshot
    try:
        stamps = (str(console_context().home.db),
                  tuple(tuple(row) for row in
                        conn.execute("SELECT key, updated_at FROM settings ORDER BY key")),
                  tuple(broadcast_networks() or ()))
        last = _refused_last
        values = load(conn) if last is None or last[0] != stamps else None
    finally:
        conn.execute("COMMIT")
    if values is not None:
        last = _refused_last = (stamps, refused_on_this_host(values))
    return [(key, PAGES[SCHEMA[key].page], rule) for key, rule in last[1]]


def _certificate_line(cert: CertificateStatus) -> str:
    """The "SSL certificate installed" row: its date, and a mark when the pair does not load
    (what is served instead: upgrade17 B3) or the certificate served is out of its dates or
    soon will be (an expired certificate is still served: certs17 C3)."""
    marks = [mark for mark in (cert.problem_mark, cert.dates_mark) if mark]
    if not cert.cert_installed_at:      # none, or a cert.pem that is no certificate
        shown = "No certificate" if marks else "Not installed"
    else:
        shown = format_time(cert.cert_installed_at)
    if not marks:
        return shown
    return f"{shown} — {'; '.join(marks)} (see Certificate Management)"


def _holder_of_core_lock() -> tuple[str, str]:
    """(state, pid or reason) of a core whose snapshot is old: ("stale", pid) when a process
    holds run/core.lock, ("stopped", "") when none does, ("unknown", why) when the lock
    cannot be looked at."""
    try:
        pid = lock_holder(console_context().home, CORE_LOCK.name)
    except OSError as exc:
        return "unknown", f"{CORE_LOCK.name}: {exc.strerror or exc}"
    return ("stale", pid) if pid is not None else ("stopped", "")


def disk_full_notice() -> str:
    """How much is free ("0.2 MB free", "no inode free") while the data home's file system
    is full (module rules), or "" while it is not."""
    return full_notice(console_context().disk_space(console_context().home.root))


def setting_warnings(values, core_hostname: str | None) -> list[str]:
    """The warnings of settings that work as set but must be heard of (module rules), in
    the words the core says them at start; `core_hostname`: the name in the core's
    snapshot, None before it wrote one."""
    notices = [OPEN_RELAY_WARNING if values["relay.mode"] == "allow" else None,
               hostname_notice(values, core_hostname)]
    return [notice for notice in notices if notice]


def status_view() -> StatusView:
    now = console_context().clock.now()
    values = settings()
    found = read_snapshot(request_db())
    if found is None:
        snap, updated_at, state = None, None, "never"
    else:
        snap, updated_at = found
        state = "running" if now - updated_at <= STALE_AFTER_SECONDS else "stopped"
    core_pid = ""
    if state == "stopped":
        state, core_pid = _holder_of_core_lock()
    counters = {name: 0 for name in COUNTERS}
    queues = {name: 0 for name in QUEUES}
    if snap:
        counters.update(snap.get("counters") or {})
        queues.update(snap.get("queues") or {})
    snap = snap or {}
    cert = certificate_status(console_context().home, now)
    started = snap.get("started_at")
    premium = bool(values["premium.enabled"])

    system = [
        ("Server and port", f"{snap.get('hostname') or gateway_name(values)}:"
                            f"{snap.get('smtp_port') or values['smtp.port']}"),
        ("Version", snap.get("version") or "—"),
        ("Product license", f"Licensing is {NOT_BUILT}"),
        ("Content license", f"Licensing is {NOT_BUILT}"),
        ("Premium AntiSpam license", f"Licensing is {NOT_BUILT}"),
        ("Last started", format_time(started)),
        ("Running for", format_duration(now - started) if started and state == "running"
         else "—"),
        ("Virus scanning", virus_scanning_line(snap, values, now)),
        ("Heuristic antispam", "Enabled" if values["heuristic.enabled"] else "Disabled"),
        ("Central Quarantine forwarding", str(snap.get("central_quarantine") or "disabled")
         .replace("_", " ").capitalize()),
        ("Data received (MB)", f"{counters['bytes_received'] / 2**20:.1f}"),
        ("Message delivery mode", str(snap.get("delivery_mode") or
                                      ("pause" if values["delivery.paused"] else "delivery"))
         .capitalize()),
        ("Incoming messages", str(snap.get("incoming") or
                                  ("reject" if values["delivery.reject_incoming"] else "accept"))
         .capitalize()),
        ("Virus definitions", definitions_line((snap.get("definitions") or {}).get("virus"))),
        ("Spam definitions", definitions_line((snap.get("definitions") or {}).get("spam"))),
        ("SSL certificate installed", _certificate_line(cert)),
        ("Viruses repaired, deleted and logged", counters["infections_repaired"]
         + counters["infections_deleted"] + counters["infections_logged"]),
        ("Spam messages detected", counters["spam_messages"]),
        ("Auto-generated whitelist entries", snap.get("auto_whitelist_entries", 0)),
        ("Policy violations", counters["policy_violations"]),
    ]
    messages = [("Accepted", counters["accepted"]), ("Rejected", counters["rejected"]),
                ("Delivered", counters["delivered"]), ("Forwarded", counters["forwarded"]),
                ("Dropped", counters["dropped"]), ("Held", counters["held"]),
                ("Quarantined", counters["quarantined"]), ("Bounced", counters["bounced"]),
                ("Delivery failures", counters["delivery_failures"]),
                ("Mass mailers deleted", counters["mass_mailers_deleted"])]
    infections = [("Repaired", counters["infections_repaired"]),
                  ("Deleted", counters["infections_deleted"]),
                  ("Logged", counters["infections_logged"])]
    attachments = [("Top-level attachments stripped", counters["attachments_stripped"]),
                   ("Encryptions deleted", counters["encryptions_deleted"]),
                   ("Encryptions logged", counters["encryptions_logged"])]
    queue_rows = [("Fast queue", queues["fast"]), ("Slow queue", queues["slow"]),
                  ("Hold queue", queues["hold"])]
    antispam = [("Custom blacklist", counters["spam_blacklist"]),
                ("Real-time blacklists", counters["spam_rbl"]),
                ("Real-time blacklist queries refused", counters["rbl_refused"]),
                ("Real-time blacklist lookups skipped", counters["rbl_skipped"])]
    antispam += [(label, sum(counters[name] for name in names))
                 for label, names in (PREMIUM_ROWS if premium else HEURISTIC_ROWS)]
    connections = [("SMTP connections", counters["connections"]),
                   ("Protocol violations", counters["protocol_violations"])]

    traffic = traffic_last_24h(now)
    return StatusView(
        core_state=state, updated_at=updated_at,
        sections=[("System status", system), ("Messages", messages),
                  ("Infections", infections), ("Attachments", attachments),
                  ("Queue status", queue_rows), ("Antispam detections", antispam),
                  ("Connections", connections)],
        traffic=traffic, now_text=format_time(now), updated_text=format_time(updated_at),
        hour_labels=[dt.datetime.fromtimestamp(t, _zone()).strftime("%Y-%m-%d %H:%M")
                     for t in traffic.hour_starts],
        refused_settings=refused_settings(),
        setting_warnings=setting_warnings(values, snap.get("hostname")),
        not_listening=not_listening_notices(snap) if state == "running" else [],
        core_pid=core_pid, disk_full=disk_full_notice() if state != "running" else "")
