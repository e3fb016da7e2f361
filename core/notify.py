"""Alerts, violation notifications and resource checks, as mail through the spool
(SPEC §3 Alerts / Notifications, §6; ARCHITECTURE invariant 4: "Alerts are events; the
core's alert engine mails them").

What it owns
    `Notifier`        policy-violation notifications to the administrator and/or the sender,
                      with the metatags ${MSGINFO} ${VIRUSINFO} ${CONTENTINFO} ${ENCRYPTINFO}
                      and (administrator only) ${DISPOSITION}; called by the pipeline after
                      each message whose findings feed a metatag (never antispam, content
                      rules or spam rules: guide §3 note).
    `AlertEngine`     reads new events of both processes from SQLite (a cursor kept in
                      run/alerts.cursor with the events held by rule 2, so a restart
                      neither loses nor repeats alerts) and mails each enabled alert of
                      Table 3-2 to admin.emails, then writes `alert_sent`.
    `ResourceMonitor` low disk (under 10 % free on the data home's file systems) and low
                      memory (under 10 % available) -> low_disk / low_memory events, once
                      per crossing; looked at every RESOURCE_CHECK_SECONDS, and at once
                      when SMTP refuses mail for the spool's space (`check_soon`).

Rules
    1. Mail goes through `submit(sender, recipients, bytes, kind=...)` — the queue manager's
       submit_generated: the same durable spool path, never counted as accepted. Generated
       mail has the null sender, so it never bounces back into a loop.
    2. One mail per alert kind per THROTTLE_SECONDS, whatever the rate of its events: a
       client decides how fast it makes protocol violations, failed logons or unauthorized
       requests, and the guide warns that "sending alerts increases the load of the
       server". The events of a kind that come while it is quiet (no mail of that kind
       went out in the last THROTTLE_SECONDS) are mailed at once, those read by the same
       poll together; the ones that come in the THROTTLE_SECONDS after a mail are held
       and mailed as one alert when that time is up, listing MAX_EVENTS_LISTED and
       counting the rest (`alert_sent` data.events: all of them). No kind is exempt: the
       guide's one Frequent Failed Logon Attempts mail per failure after the third becomes
       one per THROTTLE_SECONDS listing them, and Service Start/Stop come too rarely for
       the rule to matter. The core's stop mails whatever is held with its Service Stop
       alert (poll_once(flush=True), core/app.py). What is held is saved with the cursor,
       so after an improper end the next start mails it at its first poll.
    3. With admin.emails empty nothing is sent (the console says so on the Alerts and
       Notifications tabs).
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import trio

from core.delivery import GENERATED_LINESEP, NO_ANSWER_STATUS
from shared import db
from shared.clock import mail_date
from shared.disk import LOW_DISK_FRACTION, disk_free_fraction, is_out_of_space
from shared.events import SUCCEEDED, Action
from shared.guide_texts import ALERT_TEXTS
from shared.report_format import data_user, detail_parts, event_data
from shared.settings_addresses import Sender
from shared.shown_text import header_line, one_line, visible_bidi
from shared.spool import CORRUPT_RULE

__all__ = ["Notifier", "AlertEngine", "ResourceMonitor", "alert_key", "fill_metatags",
           "compose_mail", "first_start_cursor"]

POLL_SECONDS = 1.0
CURSOR_FILE = "alerts.cursor"      # in the run directory, with the held events (rule 2)
READ_LIMIT = 1000
THROTTLE_SECONDS = 300.0           # rule 2
MAX_EVENTS_LISTED = 20
# One change of a Configuration Change alert at most this long; a list that would be longer
# is shown as what was added and removed (the detail report page's rule).
ALERT_DETAIL_CHARS = 400
ALERT_DETAIL_PARTS = 20     # changes listed per event (an import may change every key)
LOW_FRACTION = LOW_DISK_FRACTION   # Table 3-2: "less than 10 percent", memory too
REARM_FRACTION = 0.12
RESOURCE_CHECK_SECONDS = 60.0
RESOURCE_CHECK_MIN_SECONDS = 1.0   # checks asked for (check_soon) come at most this often
# Table 3-2 "The SMTP server that [the gateway] is trying to contact is not available": the
# delivery code's RFC 3463 status when no session with the next hop could be opened
# (NO_ANSWER_STATUS: refused, timed out, no greeting, a greeting other than 220, EHLO
# refused; core/delivery/session.py rule 6) or its name has no address (core/delivery/mx.py:
# 4.4.3 the lookup failed, 5.4.4 no MX host has one). Not X.4.2, a connection lost after
# the next hop took the session, nor 4.7.0, TLS required but not possible with a host that
# is there.
CONNECTION_FAILURE_STATUSES = (NO_ANSWER_STATUS, "4.4.3", "5.4.4")


# --- composing -----------------------------------------------------------------------------

# A name alone becomes the local part when it can be one (RFC 5322 dot-atom, ASCII).
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def from_address(settings: Mapping, hostname: str) -> tuple[str, str]:
    """(name, address) of the From of generated mail, from smtp.notify_from (a name, an
    address or both: shared/settings_addresses.py Sender). A name alone is at *hostname*, as
    itself in lower case with dots for spaces (Security Office: security.office@host) or,
    when that is no local part (Sicherheitsprüfung), as mailmoat@host."""
    name, address = Sender.parts(settings.get("smtp.notify_from") or "Mailmoat")
    if address is None:
        local = ".".join(name.lower().split())
        address = f"{local if _DOT_ATOM.fullmatch(local) else 'mailmoat'}@{hostname}"
    return name, address


def compose_mail(settings: Mapping, hostname: str, recipients, subject: str, body: str,
                 kind: str) -> bytes:
    """The bytes of a notification or alert to *recipients*. To an address with UTF-8 the
    message is an SMTPUTF8 one (submit_generated's envelope asks for it): its header fields
    are UTF-8 as they are (RFC 6532 §3.2), since RFC 2047 §5 allows no encoded-word in an
    address. Otherwise they are ASCII, a name or Subject that is not as encoded-words.
    Lines end in CRLF, as a DSN's (core/delivery/bounce.py rule 7): its spooled size is
    the octets sent, and the SIZE= it goes with. It was spooled with bare LFs, which
    delivery sent as CRLF: SIZE= promised less than was sent (outbound19 finding B2).
    QueueManager.submit_generated makes any line end CRLF too, for every generator."""
    name, address = from_address(settings, hostname)
    msg = EmailMessage()
    local, _, domain = address.rpartition("@")
    msg["From"] = Address(display_name=name, username=local, domain=domain)
    msg["To"] = ", ".join(recipients)
    # a metatag in the subject template may bring line breaks (${MSGINFO}): one line. What a
    # sender wrote was made visible when its tag was built (metatags); the rest is the
    # administrator's own text, whose right-to-left marks stay (review25b D2)
    msg["Subject"] = header_line(" ".join(subject.split("\n")))
    msg["Date"] = mail_date(time.time())
    msg["Message-ID"] = make_msgid(domain=hostname)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailmoat-Kind"] = kind
    msg.set_content(body)
    is_utf8 = not all(r.isascii() for r in recipients)
    return msg.as_bytes(policy=msg.policy.clone(linesep=GENERATED_LINESEP, utf8=is_utf8))


# --- notifications ---------------------------------------------------------------------------

def fill_metatags(template: str, tags: Mapping[str, str]) -> str:
    """`template` with each ${NAME} replaced by its tag's value. What a sender wrote is made
    visible where a tag's value is built (`metatags`: one_line, visible_bidi); the template,
    and a tag's own words of the administrator (a pattern, a forward address), are theirs."""
    out = template
    for name, value in tags.items():
        out = out.replace("${" + name + "}", value).replace("$ {" + name + "}", value)
    return out


def _disposition_text(verdict) -> str:
    d = verdict.disposition
    if d == "forward":
        return f"The message was forwarded to {', '.join(verdict.forward_addresses)}"
    if d == "deliver" and any(e.action == "remove_part" for e in verdict.edits):
        return "The message was delivered with attachments deleted"
    return {"drop": "The message was dropped", "hold": "The message was held",
            "quarantine": "The message was quarantined",
            "deliver": "The message was delivered"}.get(d, f"The message was {d}")


def metatags(envelope, outcome) -> dict[str, str]:
    recipients = one_line(", ".join(r.address for r in envelope.recipients))
    subject = one_line(outcome.subject[:300])
    msginfo = (f"From: {one_line(envelope.sender) or '<>'}\nTo: {recipients}\n"
               f"Subject: {subject}")
    virus, content, encrypt = [], [], []
    subject_shown = False
    for f in outcome.findings:
        if f.notify == "virus":
            virus.append(visible_bidi(f.reason))
        elif f.notify == "content":
            if f.event == "subject_blocked":
                # the Subject once, then each line it matched (one finding per line)
                content.append(("" if subject_shown else f"Subject: {subject}\n")
                               + f"Matching Subject: {f.data.get('pattern', '')}")
                subject_shown = True
            else:
                content.append(f"File: {one_line(str(f.data.get('file', '')))}\n"
                               f"Matching file name: {f.data.get('pattern', '')}")
        elif f.notify == "container":
            content.append(visible_bidi(f.text or f.reason))
        elif f.notify == "encrypted":
            encrypt.append(f"Message contained an encrypted container "
                           f"({one_line(str(f.data.get('file', '')))})")
    return {"MSGINFO": msginfo,
            "VIRUSINFO": ("Virus scan results follow\n" + "\n".join(virus)) if virus else "",
            "CONTENTINFO": "\n".join(content),
            "ENCRYPTINFO": "\n".join(dict.fromkeys(encrypt)),
            "DISPOSITION": _disposition_text(outcome.verdict)}


def _forged_sender(outcome) -> bool:
    """A mass-mailer worm forges its sender: notifying it mails an uninvolved third party
    (backscatter; alerts finding B6)."""
    return any(f.event == "mass_mailer_cleanup" for f in outcome.findings)


class Notifier:
    """Violation notifications (module header). `submit` is the queue manager's
    submit_generated; `hostname` a callable giving the core's host name."""

    def __init__(self, submit: Callable, hostname: Callable[[], str]):
        self.submit = submit
        self.hostname = hostname
        self.sent = 0

    async def violation(self, envelope, outcome, settings: Mapping) -> None:
        if not any(f.notify for f in outcome.findings) or envelope.is_generated:
            return
        if not (settings["notify.admin"] or settings["notify.sender"]):
            return
        tags = metatags(envelope, outcome)
        hostname = self.hostname()
        if settings["notify.admin"] and settings["admin.emails"]:
            body = fill_metatags(settings["notify.admin.body"], tags)
            subject = fill_metatags(settings["notify.admin.subject"], tags)
            await self._send(settings, hostname, list(settings["admin.emails"]), subject, body)
        if settings["notify.sender"] and envelope.sender and not envelope.is_bounce \
                and not _forged_sender(outcome):
            sender_tags = {**tags, "DISPOSITION": ""}
            body = fill_metatags(settings["notify.sender.body"], sender_tags)
            subject = fill_metatags(settings["notify.sender.subject"], sender_tags)
            await self._send(settings, hostname, [envelope.sender], subject, body)

    async def _send(self, settings, hostname, recipients, subject, body) -> None:
        message = compose_mail(settings, hostname, recipients, subject, body, "notification")
        await self.submit("", recipients, message, kind="notification")
        self.sent += 1


# --- alerts ------------------------------------------------------------------------------------

_SIMPLE_ALERTS = {"service_started": "service_start",
                  "service_start_improper": "service_start_improper",
                  "service_stopped": "service_stop", "low_disk": "low_disk",
                  "low_memory": "low_memory", "object_modified": "config_change",
                  "scan_error": "scan_error", "protocol_violation": "smtp_protocol_violation",
                  "http_protocol_violation": "http_protocol_violation",
                  "failed_logon": "failed_logons", "unauthorized_access": "unauthorized_access"}
# Every action alert_key() may answer for; the engine reads only these from SQLite (most
# events, such as accepted and delivered, never raise an alert).
ALERT_ACTIONS = tuple(sorted({*_SIMPLE_ALERTS, "held", "liveupdate", "definitions_updated",
                              "deferred", "delivery_failed"}))


def alert_key(row: Mapping) -> str | None:
    """The `alerts.<key>` an event row raises, or None (guide Table 3-2). A deferral or
    failure raises smtp_connection_failure by its status (CONNECTION_FAILURE_STATUSES), not
    by whether it names a host: a next hop that greets with 421 is named, and not available.
    Generated mail's own never does: an alert about an alert's delivery would loop.
    A queue entry set aside in corrupt/ (scan_error of rule CORRUPT_RULE) raises
    suspect_message, on by default, not scan_error, off by default: an accepted message
    that could not be processed, which only a person can deliver or drop now."""
    action = row["action"]
    if action not in ALERT_ACTIONS:
        return None
    if action == "scan_error" and row["rule"] == CORRUPT_RULE:
        return "suspect_message"
    if action == "service_started" and row["rule"]:
        # a part that could not start at first and started later (an smtp.listen address
        # that came back: core/smtp/server.py), not Mailmoat starting
        return None
    data = _data(row)
    if action in _SIMPLE_ALERTS:
        return _SIMPLE_ALERTS[action]
    if action == "held" and (row["rule"] == "suspect_message" or data.get("cannot_scan")):
        return "suspect_message"
    if action in ("liveupdate", "definitions_updated") and row["result"] == SUCCEEDED:
        return "liveupdate_complete"
    if action in ("deferred", "delivery_failed") and not data.get("generated") and \
            not data.get("remote_reply") and \
            str(data.get("status") or "") in CONNECTION_FAILURE_STATUSES:
        # a next hop's own 4.4.1 to RCPT/DATA tells of a failure beyond it, not of it
        return "smtp_connection_failure"
    return None


def _data(row) -> dict:
    try:
        return json.loads(row["data"]) if row["data"] else {}
    except (ValueError, TypeError):
        return {}


def _event_line(row) -> str:
    """One event as an alert mail lists it: time, action, queue id, client, info. A
    configuration change (object_modified) adds who made it and, a line each below, what
    changed as the detail report shows it (shared.report_format `detail_parts`: `key: old →
    new`, secrets and a URL's credentials "***" as the event holds them (shared.settings
    display_value), a long list as what was added and removed; at most ALERT_DETAIL_PARTS
    of them): its page alone did not tell a harmless change from relay.mode becoming
    `allow` (firstday20 B2). Every value is one line (`one_line`), so
    no field can forge a line of the mail."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row["time"]))
    detail = " ".join(one_line(str(x)) for x in (row["queue_id"], row["client_ip"],
                                                   row["info"]) if x)
    line = f"{stamp}  {row['action']}  {detail}".rstrip()
    if row["action"] != Action.OBJECT_MODIFIED:
        return line
    values = event_data(row["data"])
    user = data_user(values)
    if user:
        line += f"  by {one_line(user)}"
    parts = detail_parts(row["action"], values, limit=ALERT_DETAIL_CHARS, info=row["info"])
    if len(parts) > ALERT_DETAIL_PARTS:
        parts[ALERT_DETAIL_PARTS:] = [f"... and {len(parts) - ALERT_DETAIL_PARTS} more "
                                      "(the detail report lists every one)"]
    return line + "".join(f"\n    {one_line(part)}" for part in parts)


@dataclass
class HeldAlert:
    """The events of one alert kind not mailed yet (rule 2), as the mail will show them:
    kept as lines, so memory and the saved state stay small however many there are."""
    lines: list[str] = field(default_factory=list)   # the first MAX_EVENTS_LISTED
    count: int = 0                                   # all of them
    directory: str | None = None                     # low_disk: the first one named

    def add(self, row) -> None:
        self.count += 1
        if len(self.lines) < MAX_EVENTS_LISTED:
            self.lines.append(_event_line(row))
        self.directory = self.directory or _data(row).get("directory")


class AlertEngine:
    """The alerts of Table 3-2 (module header). `clock` measures the quiet time of rule 2;
    tests give their own."""

    def __init__(self, db_path, run_dir: Path, settings: Callable[[], Mapping], events,
                 submit: Callable, hostname: Callable[[], str], *,
                 poll_seconds: float = POLL_SECONDS, clock=time.monotonic,
                 first_cursor: int | None = None):
        """`first_cursor`: where a start without a cursor file begins — the newest event id
        before this start wrote any (`first_start_cursor`, core/app.py), so what its
        recovery finds (a queue entry set aside in corrupt/) is alerted; None: the newest id
        when the state is loaded."""
        self.db_path = db_path
        self.first_cursor = first_cursor
        self.cursor_file = Path(run_dir) / CURSOR_FILE
        self.settings = settings
        self.events = events
        self.submit = submit
        self.hostname = hostname
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.cursor: int | None = None
        self.held: dict[str, HeldAlert] = {}
        # Per kind, the clock time until which its events are held (rule 2); kept in memory
        # only: a new run starts quiet, and its clock may not be the last run's.
        self.quiet_until: dict[str, float] = {}
        self.sent = 0
        self._polling = trio.Lock()

    async def load(self) -> None:
        """Take up the cursor and the held events where the last run left them."""
        self.cursor, self.held = await trio.to_thread.run_sync(self._load_state)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.load()
        task_status.started()
        while True:
            try:
                await self.poll_once()
            except (OSError, sqlite3.Error) as exc:
                if not is_out_of_space(exc):
                    raise
                # A full disk: the alerts not mailed yet are tried at the next poll (the
                # low_disk alert went out at LOW_FRACTION free, before the disk filled).
            await trio.sleep(self.poll_seconds)

    async def poll_once(self, *, flush: bool = False) -> list[str]:
        """Mail the alerts that are due (rule 2): of the events written since the last poll
        and of the held ones; with `flush`, every one (the core's stop). Returns the queue
        ids of the mails. One poll at a time: the core's stop polls once more
        (core/app.py) while the poller may be at it, and both would mail the same events."""
        async with self._polling:
            return await self._poll(flush)

    async def _poll(self, flush: bool) -> list[str]:
        rows, last_id = await trio.to_thread.run_sync(self._read_new)
        moved = last_id != self.cursor
        if not moved and not self.held:
            return []
        settings = self.settings()
        for row in rows:
            key = alert_key(row)
            if key and settings.get(f"alerts.{key}"):
                self.held.setdefault(key, HeldAlert()).add(row)
        # In memory the rows are held now: a mail that fails below is tried again at the
        # next poll without reading them twice.
        self.cursor = last_id
        now = self.clock()
        due = [key for key in self.held
               if flush or now >= self.quiet_until.get(key, -math.inf)]
        sent = []
        for key in due:
            # rule 3, and an alert turned off while its events were held: dropped
            if settings["admin.emails"] and settings.get(f"alerts.{key}"):
                sent.append(await self._send(settings, key, self.held[key]))
                self.quiet_until[key] = now + THROTTLE_SECONDS
            del self.held[key]
        if moved or due:
            await trio.to_thread.run_sync(self._save_state)
        return sent

    async def _send(self, settings, key: str, held: HeldAlert) -> str:
        subject, body = ALERT_TEXTS[key]
        body = body.replace("{directory}", str(held.directory or "mail queuing"))
        lines = list(held.lines)
        if held.count > len(lines):
            lines.append(f"... and {held.count - len(lines)} more")
        text = body + "\n\n" + "\n".join(lines) + "\n"
        recipients = list(settings["admin.emails"])
        message = compose_mail(settings, self.hostname(), recipients, subject, text, "alert")
        queue_id = await self.submit("", recipients, message, kind="alert")
        self.sent += 1
        self.events.record(Action.ALERT_SENT, rule=f"alerts.{key}", info=subject,
                           recipients=recipients, queue_id=queue_id,
                           data={"alert": key, "events": held.count, "generated": True})
        return queue_id

    # --- cursor and held events ----------------------------------------------------------------
    def _load_state(self) -> tuple[int, dict[str, HeldAlert]]:
        """The last run's cursor and held events, or where a first start begins."""
        stored = _stored_state(self.cursor_file)
        if stored is not None:
            return stored
        # first start: alerts from this start on, not history
        first = self.first_cursor
        return (_newest_event_id(self.db_path) if first is None else first), {}

    def _save_state(self) -> None:
        state = {"cursor": self.cursor,
                 "held": {key: asdict(held) for key, held in self.held.items()}}
        tmp = self.cursor_file.with_name(self.cursor_file.name + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.cursor_file)

    def _read_new(self) -> tuple[list, int]:
        """The alert-relevant rows after the cursor (at most READ_LIMIT) and the id the
        cursor moves to: the newest event looked at."""
        conn = db.connect(self.db_path)
        try:
            newest = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0
            rows = conn.execute(
                "SELECT id, time, action, result, queue_id, client_ip, rule, info, data "
                f"FROM events WHERE id > ? AND id <= ? AND action IN "
                f"({','.join('?' * len(ALERT_ACTIONS))}) ORDER BY id LIMIT {READ_LIMIT}",
                (self.cursor, newest, *ALERT_ACTIONS)).fetchall()
        finally:
            conn.close()
        if len(rows) == READ_LIMIT:
            return rows, rows[-1]["id"]
        return rows, max(newest, self.cursor or 0)


# --- resources ----------------------------------------------------------------------------------

def memory_available_fraction(proc: Path = Path("/proc"),
                              cgroups: Path = Path("/sys/fs/cgroup")) -> float:
    """The fraction of memory still available to Mailmoat: the host's (MemAvailable of
    MemTotal), or less under a memory limit of its control group (cgroup v2 `memory.max`
    of its group or a group above it: a systemd MemoryMax=, a container's limit), where
    the kernel would kill it long before the host ran low (limits tester C3). 1.0 when
    nothing can be read."""
    return min((available / total for available, total in _memory_figures(proc, cgroups)),
               default=1.0)


def memory_available_octets(proc: Path = Path("/proc"),
                            cgroups: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory still available to Mailmoat in octets, by the same figures as
    `memory_available_fraction`: the least of the host's MemAvailable and what each memory
    limit of its control groups leaves (the scanning workers' memory share,
    core/pipeline/workers.py rule 6). None when nothing can be read."""
    return min((available for available, _ in _memory_figures(proc, cgroups)), default=None)


def _memory_figures(proc: Path, cgroups: Path) -> list[tuple[int, int]]:
    """(available, total) octets of the host and of each group of Mailmoat's control group
    path with a memory limit, those that can be read."""
    figures = [_host_memory(proc / "meminfo")]
    try:
        group = next((line.split("::", 1)[1].strip()
                      for line in (proc / "self" / "cgroup").read_text().splitlines()
                      if line.startswith("0::")), None)
    except OSError:
        group = None
    if group is not None:
        path = cgroups / group.lstrip("/")
        while True:
            figures.append(_cgroup_memory(path))
            if path == cgroups or cgroups not in path.parents:
                break
            path = path.parent
    return [figure for figure in figures if figure is not None and figure[1] > 0]


def _host_memory(meminfo: Path) -> tuple[int, int] | None:
    try:
        info = {}
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            info[name] = int(value.split()[0]) * 1024
        return info["MemAvailable"], info["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        return None


def _cgroup_memory(group: Path) -> tuple[int, int] | None:
    """What a control group with a memory limit has left of it, counting the page cache it
    could drop (inactive_file) as available, as MemAvailable does; None without a limit."""
    try:
        limit = (group / "memory.max").read_text().strip()
        if limit == "max":
            return None
        limit_octets = int(limit)
        used = int((group / "memory.current").read_text().strip())
        inactive = 0
        for line in (group / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "inactive_file":
                inactive = int(value)
        return max(0, limit_octets - max(0, used - inactive)), limit_octets
    except (OSError, ValueError):
        return None


class ResourceMonitor:
    """Low disk / low memory events (Table 3-2), once per crossing below 10 %.

    It looks every `interval_seconds`, and at once (RESOURCE_CHECK_MIN_SECONDS after its
    last look at the earliest) after `check_soon()`: SMTP's first 452 4.3.1 for the spool's
    space (core/smtp/server.py `refused_for_space`). A disk that fills within the minute
    between two looks had its low_disk event only once SQLite was full, so it was kept in
    memory and its alert came after the episode (diskfull21 B2). Asked often, it still
    looks once a second at most, and writes one event per crossing as ever."""

    def __init__(self, events, directories: Mapping[str, Path], *,
                 disk_free: Callable[[Path], float] = disk_free_fraction,
                 memory_free: Callable[[], float] = memory_available_fraction,
                 interval_seconds: float = RESOURCE_CHECK_SECONDS):
        self.events = events
        self.directories = directories      # label ("logging", "mail queuing", ...) -> path
        self.disk_free = disk_free
        self.memory_free = memory_free
        self.interval_seconds = interval_seconds
        self.low: set[str] = set()
        self._soon = trio.Event()

    def check_soon(self) -> None:
        """Look now, not at the next interval (the class's docstring). Never blocks; from
        the core's trio thread."""
        self._soon.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._soon = trio.Event()       # what asks from now on is for the next look
            await trio.to_thread.run_sync(self.check_once)
            await trio.sleep(RESOURCE_CHECK_MIN_SECONDS)
            with trio.move_on_after(self.interval_seconds - RESOURCE_CHECK_MIN_SECONDS):
                await self._soon.wait()

    def check_once(self) -> None:
        seen_devices = set()
        for label, path in self.directories.items():
            try:
                device = os.stat(path).st_dev
                fraction = self.disk_free(path)
            except OSError:
                continue
            if device in seen_devices:
                continue
            seen_devices.add(device)
            self._edge(f"disk:{label}", fraction, Action.LOW_DISK,
                       {"directory": label, "path": str(path), "free": round(fraction, 4)},
                       f"the {label} directory has {fraction:.1%} free disk space")
        fraction = self.memory_free()
        self._edge("memory", fraction, Action.LOW_MEMORY, {"free": round(fraction, 4)},
                   f"{fraction:.1%} of memory available")

    def _edge(self, key, fraction, action, data, info) -> None:
        if fraction < LOW_FRACTION and key not in self.low:
            self.low.add(key)
            self.events.record(action, info=info, data=data)
        elif fraction >= REARM_FRACTION:
            self.low.discard(key)


def _stored_state(cursor_file: Path) -> tuple[int, dict[str, HeldAlert]] | None:
    """The cursor and held events the last run left: {"cursor": id, "held": {kind:
    HeldAlert}}, or the bare id an older run wrote; None when there is none that reads (a
    first start). A held entry that does not read is dropped alone: the cursor still holds,
    else every alert since it would be skipped."""
    try:
        state = json.loads(cursor_file.read_text())
        cursor = state if isinstance(state, int) else int(state["cursor"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None
    held: dict[str, HeldAlert] = {}
    entries = state.get("held") if isinstance(state, dict) else None
    for key, value in (entries.items() if isinstance(entries, dict) else ()):
        if key not in ALERT_TEXTS:
            continue
        try:
            held[key] = HeldAlert(**value)
        except (TypeError, ValueError):
            continue
    return cursor, held


def first_start_cursor(db_path, run_dir: Path) -> int | None:
    """The AlertEngine's `first_cursor` for this start, read before it writes any event
    (core/app.py, before recovery): on a first start (no cursor that reads in *run_dir*)
    the newest event id, so that what the recovery finds is alerted; else None, and the
    database is not read (the engine takes up the last run's cursor). Before, every start
    read the newest id there, so a locked or unreadable database stopped any start at that
    point, not only a first one (review19 r3 D2). In a thread: it reads a file, and
    perhaps the database."""
    if _stored_state(Path(run_dir) / CURSOR_FILE) is not None:
        return None
    return _newest_event_id(db_path)


def _newest_event_id(db_path) -> int:
    """The id of the newest event in the database at *db_path* (0 when there is none)."""
    conn = db.connect(db_path)
    try:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    finally:
        conn.close()


class AlertServices:
    """The alert engine and the resource monitor as one service for core/app.py; also
    gives the pipeline its Notifier once the queue manager exists."""

    def __init__(self, home, settings: Callable[[], Mapping], events, queue,
                 hostname: Callable[[], str], pipeline=None, scratch_dir: Path | None = None,
                 first_cursor: int | None = None):
        self.engine = AlertEngine(home.db, home.run, settings, events, queue.submit_generated,
                                  hostname, first_cursor=first_cursor)
        self.monitor = ResourceMonitor(events, {"mail queuing": home.spool,
                                                "logging": home.logs,
                                                "email": scratch_dir or home.tmp})
        if pipeline is not None and hasattr(pipeline, "notifier"):
            pipeline.notifier = Notifier(queue.submit_generated, hostname)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.engine.run)
            await nursery.start(self.monitor.run)
            task_status.started()
