"""The report service (guide ch. 7 "Generating reports", SPEC §2 and §7): summary and detail
reports over a time range, used by the console's Reporting page and `mailmoat report`.

Rules:
- Read-only. Nothing here writes the database; the event writers (and, through triggers,
  migration 0002's hourly roll-ups) are the only writers of what is read here.
- Summary figures and chart series come from `event_hourly` for the whole UTC hours inside
  the range and from the raw events (through the `event_facts` view, same keys) for the
  partial hours at either edge, so a report over 30 days reads ~720 roll-up hours plus at
  most two hours of events, and is exact to the second. The chart's buckets are local time:
  a UTC hour one of them cuts (a half-hour time zone) is counted from its events too.
- Detail rows stream: `iter_detail` reads in keyset pages of `BATCH_ROWS` (time, id), each its
  own short statement, so an export of millions of rows holds neither memory nor a long read
  transaction (the core's writer and WAL checkpoints carry on meanwhile).
- Ranges are [start, end) in UTC unix seconds (see shared.report_time for parsing).
- Detail rows are read in today's words: a `connected_to` an older release wrote with the
  result "plain" or "tls" reads as succeeded, an actual connection (LEGACY_CONNECTED_RESULTS),
  on every output and in the search; the stored row is not rewritten.
- Which event feeds which figure is written once, in `MESSAGE_ITEMS` and friends below.
- The detail report can leave out the antispam events whose result is WHITELISTED
  (`DetailFilter.without_whitelisted`: what a whitelist let past, no block); its total then
  subtracts them, counted as the summary counts the NOT_COUNTED ones.
- Messages Rejected counts messages (guide Tables 7-1, 7-2), not refused recipients: a
  `rejected` event whose result is RECIPIENT_REFUSED is left out of it and of the charts'
  Rejected series; so is a `quarantined` event whose result is COPY_NOT_KEPT from Messages
  Quarantined and the Quarantined series (no copy, so the Status page does not count it
  either). The roll-ups do not key `result`, so these few are counted from the events,
  `NOT_COUNTED`, through a partial index that holds them alone (events_not_counted,
  migration 0005): through events_action_time, the count read every event of the action in
  the range (review21b D1). So is an antispam event whose result is WHITELISTED (a check
  that a whitelist made stand aside, core/pipeline/checks/whitelist.py): Spam Detected
  leaves out such a `heuristic_spam`.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from dataclasses import dataclass, field
from typing import Iterator, Mapping, NamedTuple, Sequence

from shared.events import (CATEGORY_OF, CONNECTION_ACTUAL, CONNECTION_SUCCEEDED, COPY_NOT_KEPT,
                           RECIPIENT_REFUSED, WHITELISTED, Action, Category)
from shared.idn import spellings
from shared.report_time import ReportRange
from shared.settings_types import without_surrogates

__all__ = ["Summary", "SummarySection", "DetailFilter", "DetailRow", "ACTION_GROUPS",
           "ACTION_LABELS", "DISPOSITION_SERIES", "summarise", "disposition_counts",
           "iter_detail", "detail_page", "count_detail", "DetailPage", "BATCH_ROWS",
           "ENCRYPTED_DELETED_RESULTS", "UNKNOWN_ITEM", "action_filter", "parse_key",
           "top_items", "INFECTION_ITEMS", "VIRUS_ACTIONS", "LEGACY_CONNECTED_RESULTS",
           "WHITELISTED_ACTIONS"]

HOUR = 3600
BATCH_ROWS = 5_000
UNKNOWN_ITEM = "(unknown)"
# What an encrypted_container event's `result` says when the file was deleted
# (`encrypted.action` "delete"); counted as "Encrypted Files Deleted".
ENCRYPTED_DELETED_RESULTS = frozenset({"deleted", "delete"})
# The `result` of a `connected_to` that releases before these words wrote (4705b58): "plain"
# or "tls", for a connection they opened (they wrote none for a pooled one, nor for one
# that failed); data `tls` says the same. The detail report reads such a row in today's
# words, result CONNECTION_SUCCEEDED and data `connection` CONNECTION_ACTUAL
# (`_COLUMNS_AS_READ`), so a range across an upgrade speaks one vocabulary. The stored row
# stays as written: events are append-only facts, and no migration rewrites one.
LEGACY_CONNECTED_RESULTS = ("plain", "tls")
# The events of an action that its figures leave out, by their `result`. SENDER_BLOCKED and
# SPAM_LIST_BLOCK feed no figure today; they are here so that one that comes to count them
# leaves the whitelisted passes out.
NOT_COUNTED = {Action.REJECTED: RECIPIENT_REFUSED, Action.QUARANTINED: COPY_NOT_KEPT,
               Action.SENDER_BLOCKED: WHITELISTED, Action.SPAM_LIST_BLOCK: WHITELISTED,
               Action.HEURISTIC_SPAM: WHITELISTED}
# The actions whose WHITELISTED events say what a whitelist let past: the detail report may
# leave them out (DetailFilter.without_whitelisted), for an administrator who looks for what
# was blocked.
WHITELISTED_ACTIONS = frozenset(a for a, result in NOT_COUNTED.items() if result == WHITELISTED)
# The partial index events_not_counted (migration 0005) holds just these rows; a query may
# use it only when it names its WHERE term as written there, so every read of them adds it.
_NOT_COUNTED_INDEXED = "result IN ({})".format(
    ", ".join(f"'{result}'" for result in dict.fromkeys(NOT_COUNTED.values())))

# --- summary definitions (guide Tables 7-2..7-4, SPEC §2 summary CSV) -------------------------
# (item label, action, how): how = "events" | "events_not_generated" | "kb_not_generated"
# | "encrypted_deleted" | "events_counted" (less the NOT_COUNTED ones)
MESSAGE_ITEMS: tuple[tuple[str, Action, str], ...] = (
    ("Messages Accepted", Action.ACCEPTED, "events_not_generated"),
    ("Data Accepted (KB)", Action.ACCEPTED, "kb_not_generated"),
    ("Messages Rejected", Action.REJECTED, "events_counted"),
    ("Messages Bounced", Action.BOUNCED, "events"),
    ("Messages Dropped", Action.DROPPED, "events"),
    ("Messages Delivered", Action.DELIVERED, "events"),
    ("Message Delivery Failures", Action.DELIVERY_FAILED, "events"),
    ("Messages Completed", Action.COMPLETED, "events"),
    ("Encrypted Files Deleted", Action.ENCRYPTED_CONTAINER, "encrypted_deleted"),
    ("Messages Quarantined", Action.QUARANTINED, "events_counted"),
)
# (item label, the actions it counts). Spam Detected takes in the heuristic engine's
# detections, as the guide's Spam action does (Table 7-7: "heuristic spam detection events
# and spam detection from the premium antispam service"), the spam rules' hits with them
# (score 100, handled as heuristic spam: SPEC §3 rules.spam), and spam reported only as
# malformed (guide Table 7-9; SPAM_AS_MALFORMED). The Status page's Antispam detections
# count the same messages from the core's counters (shared.status.PREMIUM_ROWS).
PREMIUM_ITEMS: tuple[tuple[str, tuple[Action, ...]], ...] = (
    ("Spam Detected", (Action.SPAM, Action.HEURISTIC_SPAM, Action.SPAM_RULE_VIOLATION,
                       Action.MALFORMED)),
    ("Suspected Spam Detected", (Action.SUSPECTED_SPAM,)),
    ("Reputation Spam Detected", (Action.REPUTATION_SPAM,)))
# A malformed message that a spam check caught has only its `malformed` event, which then
# carries the spam finding's rule as data `spam_rule` (core/pipeline/service.py); the other
# malformed events are not spam. The roll-ups do not key `data`: counted from the events.
SPAM_AS_MALFORMED = "spam_rule"
# (item label, the actions it counts). A mass-mailer cleanup deletes the whole message, the
# infected file with it: an infection deleted, as a virus in the message body itself is
# (its `file_deleted`, rule av.outer_message). The outbreak alert counts these messages
# too, so the summary of an outbreak shows the worm (guide finding 3). The Status page's
# counters count the same (core.scan.service.COUNTER_OF).
INFECTION_ITEMS: tuple[tuple[str, tuple[Action, ...]], ...] = (
    ("Infections Logged", (Action.VIRUS_LOGGED,)),
    ("Infections Repaired", (Action.FILE_REPAIRED,)),
    ("Infections Deleted", (Action.FILE_DELETED, Action.MASS_MAILER_CLEANUP)))
# Viruses Found: every detection the infection items count, by virus name.
VIRUS_ACTIONS = frozenset(a for _, actions in INFECTION_ITEMS for a in actions)
SECTION_TITLES = {
    "message": "Message Summary", "premium": "Premium AntiSpam Summary",
    "infection": "Infection Summary", "viruses": "Viruses Found",
    "subjects_blocked": "Subjects Blocked", "attachments_deleted": "Attachments Deleted",
}

# The chart's series: what became of messages, hour by hour (Accepted is the intake).
DISPOSITION_SERIES: tuple[Action, ...] = (
    Action.ACCEPTED, Action.DELIVERED, Action.FORWARDED, Action.DROPPED, Action.REJECTED,
    Action.HELD, Action.QUARANTINED, Action.BOUNCED)

# --- detail report action groups (guide Tables 7-5..7-9, in the guide's order) -------------
_GUIDE_ORDER = (
    (Category.SYSTEM, "System", "logon logoff failed_logon liveupdate definitions_updated "
     "object_modified service_started service_start_failed service_stopped "
     "service_start_improper reordering_started reordering_stopped unauthorized_access "
     "low_disk low_memory http_protocol_violation outbreak alert_sent"),
    (Category.SMTP, "SMTP", "connection_from connected_to disconnected connection_closed "
     "protocol_violation rejected"),
    (Category.PREMIUM, "Premium AntiSpam", "spam suspected_spam reputation_spam "
     "spam_quarantined"),
    (Category.MESSAGE, "Message", "accepted dropped forwarded bounced delivery_failed "
     "delivered deferred completed delivery_suppressed held quarantined"),
    (Category.BLOCKING, "Blocking", "malformed virus_logged file_repaired file_deleted "
     "subject_blocked scan_error sender_blocked attachment_deleted spam_list_block "
     "heuristic_spam mass_mailer_cleanup content_rule_violation spam_rule_violation "
     "encrypted_container container_limit"),
)


_KNOWN = frozenset(a.value for a in Action)


def _groups() -> tuple[tuple[Category, str, tuple[Action, ...]], ...]:
    groups = []
    placed: set[Action] = set()
    for category, title, names in _GUIDE_ORDER:
        actions = [Action(n) for n in names.split() if n in _KNOWN]
        # Actions added to shared.events later land at the end of their category's group.
        actions += [a for a in Action if CATEGORY_OF[a] is category and a not in actions]
        placed.update(actions)
        groups.append((category, title, tuple(actions)))
    assert placed == set(Action), "every action belongs to a detail-report group"
    return tuple(groups)


ACTION_GROUPS = _groups()
_LABEL_OVERRIDES = {Action.FILE_REPAIRED: "Files repaired", Action.FILE_DELETED: "Files deleted",
                    Action.SUBJECT_BLOCKED: "Subjects blocked",
                    Action.MASS_MAILER_CLEANUP: "Mass mailer cleanup",
                    Action.HTTP_PROTOCOL_VIOLATION: "HTTP protocol violation",
                    Action.LIVEUPDATE: "LiveUpdate",
                    # the guide's alert of that name (Table 3-2): the third failure and on
                    Action.FAILED_LOGON: "Frequent failed logon attempts"}
ACTION_LABELS: dict[Action, str] = {
    a: _LABEL_OVERRIDES.get(a, a.value.replace("_", " ").capitalize()) for a in Action}


# --- summary ------------------------------------------------------------------------------

@dataclass
class SummarySection:
    key: str                      # the CSV `section`
    title: str
    rows: list[tuple[str, int]]   # (item, count)
    total: int | None = None      # shown as "Total" (premium, infection: also a CSV row)


@dataclass
class Summary:
    range: ReportRange
    sections: list[SummarySection] = field(default_factory=list)

    def section(self, key: str) -> SummarySection | None:
        return next((s for s in self.sections if s.key == key), None)

    def figure(self, section: str, item: str) -> int:
        found = self.section(section)
        if found is None:
            raise KeyError(section)
        return dict(found.rows)[item]


def _whole_hours(start: float, end: float) -> tuple[int, int]:
    """[h0, h1): the whole UTC hours inside [start, end) (h0 >= h1 when there are none)."""
    return int(math.ceil(start / HOUR) * HOUR), int(math.floor(end / HOUR) * HOUR)


def _edges(start: float, end: float) -> list[tuple[float, float]]:
    h0, h1 = _whole_hours(start, end)
    if h0 >= h1:
        return [(start, end)]
    return [(a, b) for a, b in ((start, h0), (h1, end)) if a < b]


def _totals(conn: sqlite3.Connection, start: float, end: float,
            actions: tuple[str, ...] | None = None) -> dict[tuple[str, str, int], list[int]]:
    """(action, item, generated) → [events, bytes] over [start, end)."""
    totals: dict[tuple[str, str, int], list[int]] = {}
    where_action = ""
    params: tuple = ()
    if actions:
        where_action = f" AND action IN ({','.join('?' * len(actions))})"
        params = tuple(actions)
    queries = []
    h0, h1 = _whole_hours(start, end)
    if h0 < h1:
        queries.append(("SELECT action, item, generated, SUM(events), SUM(bytes) FROM "
                        "event_hourly WHERE hour >= ? AND hour < ?" + where_action +
                        " GROUP BY action, item, generated", (h0, h1, *params)))
    for a, b in _edges(start, end):
        queries.append(("SELECT action, item, generated, COUNT(*), COALESCE(SUM(size), 0) "
                        "FROM event_facts WHERE time >= ? AND time < ?" + where_action +
                        " GROUP BY action, item, generated", (a, b, *params)))
    for sql, args in queries:
        for action, item, generated, events, size in conn.execute(sql, args):
            slot = totals.setdefault((action, item, generated), [0, 0])
            slot[0] += events
            slot[1] += size or 0
    return totals


def summarise(conn: sqlite3.Connection, rng: ReportRange, *, premium: bool) -> Summary:
    """The summary report (guide Tables 7-2..7-4): sections in the SPEC §2 CSV order.

    The premium section is present only when `premium` (the `premium.enabled` setting).
    Mail that Mailmoat generated counts as delivered and completed, never as accepted.
    """
    totals = _totals(conn, rng.start, rng.end)
    by_action: dict[str, int] = {}
    for (action, _item, _gen), (events, _bytes) in totals.items():
        by_action[action] = by_action.get(action, 0) + events

    def counted(action: Action) -> int:
        """The action's events less its NOT_COUNTED ones."""
        events = by_action.get(action.value, 0)
        if not events or action not in NOT_COUNTED:
            return events
        return events - _not_counted_count(conn, action, rng.start, rng.end)

    def figure(action: Action, how: str) -> int:
        if how == "events":
            return by_action.get(action.value, 0)
        if how == "events_counted":
            return counted(action)
        picked = [v for (a, item, gen), v in totals.items() if a == action.value and
                  (how != "encrypted_deleted" or item in ENCRYPTED_DELETED_RESULTS) and
                  (how == "encrypted_deleted" or not gen)]
        if how == "kb_not_generated":
            return (sum(v[1] for v in picked) + 512) // 1024
        return sum(v[0] for v in picked)

    sections = [SummarySection("message", SECTION_TITLES["message"],
                               [(label, figure(a, how)) for label, a, how in MESSAGE_ITEMS])]
    if premium:
        rows = [(label, sum(_spam_as_malformed(conn, rng.start, rng.end)
                            if a is Action.MALFORMED else counted(a) for a in actions))
                for label, actions in PREMIUM_ITEMS]
        sections.append(SummarySection("premium", SECTION_TITLES["premium"], rows,
                                       sum(n for _, n in rows)))
    rows = [(label, sum(by_action.get(a.value, 0) for a in actions))
            for label, actions in INFECTION_ITEMS]
    sections.append(SummarySection("infection", SECTION_TITLES["infection"], rows,
                                   sum(n for _, n in rows)))
    for key, actions in (("viruses", VIRUS_ACTIONS),
                         ("subjects_blocked", {Action.SUBJECT_BLOCKED}),
                         ("attachments_deleted", {Action.ATTACHMENT_DELETED})):
        names: dict[str, int] = {}
        for (action, item, _gen), (events, _bytes) in totals.items():
            if action in actions:
                name = item or UNKNOWN_ITEM
                names[name] = names.get(name, 0) + events
        rows = sorted(names.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
        sections.append(SummarySection(key, SECTION_TITLES[key], rows,
                                       sum(names.values())))
    return Summary(rng, sections)


_NOT_COUNTED_WHERE = (f"FROM events WHERE action = ? AND time >= ? AND time < ? AND "
                      f"result = ? AND {_NOT_COUNTED_INDEXED}")


def _not_counted(conn: sqlite3.Connection, action: Action, start: float,
                 end: float) -> list[float]:
    """The times of the `action` events in [start, end) that its figures leave out
    (NOT_COUNTED), read through the index of those alone (events_not_counted)."""
    return [t for (t,) in conn.execute(f"SELECT time {_NOT_COUNTED_WHERE}",
                                       (action.value, start, end, NOT_COUNTED[action]))]


def _not_counted_count(conn: sqlite3.Connection, action: Action, start: float,
                       end: float) -> int:
    """How many `_not_counted` there are."""
    return conn.execute(f"SELECT COUNT(*) {_NOT_COUNTED_WHERE}",
                        (action.value, start, end, NOT_COUNTED[action])).fetchone()[0]


def _spam_as_malformed(conn: sqlite3.Connection, start: float, end: float) -> int:
    """How many `malformed` events in [start, end) were spam (SPAM_AS_MALFORMED)."""
    return conn.execute(
        "SELECT COUNT(*) FROM events WHERE action = ? AND time >= ? AND time < ? AND "
        "json_valid(data) AND json_extract(data, ?) IS NOT NULL",
        (Action.MALFORMED.value, start, end, f"$.{SPAM_AS_MALFORMED}")).fetchone()[0]


def _split(a: float, b: float, cuts: list[float]) -> list[tuple[float, float]]:
    """[a, b) cut at the UTC hours and the `cuts` (sorted) inside it."""
    hours = (h * HOUR for h in range(int(a // HOUR) + 1, math.ceil(b / HOUR)))
    inside = cuts[bisect.bisect_right(cuts, a):bisect.bisect_left(cuts, b)]
    bounds = sorted({a, b, *hours, *inside})
    return list(zip(bounds, bounds[1:]))


def disposition_counts(conn: sqlite3.Connection, rng: ReportRange,
                       series: tuple[Action, ...] = DISPOSITION_SERIES, *,
                       starts: Sequence[float] = ()) -> dict[float, dict[str, int]]:
    """Bucket start → {action: events} for the chart's series over the range.

    The buckets are `starts` (ascending, the first at or before the range's start; each runs
    to the next, the last to the range's end), else the UTC hours. A whole UTC hour inside
    one bucket is read from the roll-ups; an hour that a bucket boundary cuts (local hours
    in a half-hour time zone) or the range's edge cuts is counted from its events, so every
    count is in the bucket its time belongs to. The NOT_COUNTED events are left out.
    """
    names = tuple(a.value for a in series)
    marks = ",".join("?" * len(names))
    if starts:
        def bucket_of(time: float) -> float:
            return starts[max(bisect.bisect_right(starts, time) - 1, 0)]
    else:
        def bucket_of(time: float) -> float:
            return int(time // HOUR) * HOUR
    out: dict[float, dict[str, int]] = {}

    def add(time: float, action: str, events: int) -> None:
        bucket = out.setdefault(bucket_of(time), {})
        bucket[action] = bucket.get(action, 0) + events

    cuts = sorted(s for s in starts if rng.start < s < rng.end and s % HOUR)
    cut_hours = {int(c // HOUR) * HOUR for c in cuts}
    h0, h1 = _whole_hours(rng.start, rng.end)
    partial = list(_edges(rng.start, rng.end))
    if h0 < h1:
        for hour, action, events in conn.execute(
                f"SELECT hour, action, SUM(events) FROM event_hourly WHERE hour >= ? AND "
                f"hour < ? AND action IN ({marks}) GROUP BY hour, action", (h0, h1, *names)):
            if hour not in cut_hours:
                add(hour, action, events)
        partial += [(h, h + HOUR) for h in cut_hours if h0 <= h < h1]
    pieces = sorted(piece for a, b in partial for piece in _split(a, b, cuts))
    merged: list[tuple[float, float]] = []
    for a, b in pieces:           # one query per bucket's run of pieces, not per piece
        if merged and merged[-1][1] == a and bucket_of(merged[-1][0]) == bucket_of(a):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    for a, b in merged:
        for action, events in conn.execute(
                f"SELECT action, COUNT(*) FROM events WHERE time >= ? AND time < ? AND "
                f"action IN ({marks}) GROUP BY action", (a, b, *names)):
            add(a, action, events)
    for action in NOT_COUNTED:
        if action.value in names:
            for time in _not_counted(conn, action, rng.start, rng.end):
                add(time, action.value, -1)
    return out


# --- detail -------------------------------------------------------------------------------

DETAIL_FIELDS = ("id", "time", "category", "action", "result", "queue_id", "connection_id",
                 "client_ip", "sender", "recipients", "subject", "size", "rule", "info", "data")
# Every text column, for the one search term (guide: "a single search term … not case-sensitive").
SEARCH_FIELDS = ("category", "action", "result", "queue_id", "connection_id", "client_ip",
                 "sender", "recipients", "subject", "rule", "info", "data")
# Columns the report reads otherwise than stored: a legacy connected_to row in today's words
# (LEGACY_CONNECTED_RESULTS). The page, CSV, JSON, text and the search all read these.
_LEGACY_CONNECTED = (f"(events.action = '{Action.CONNECTED_TO.value}' AND events.result IN "
                     f"({', '.join(repr(r) for r in LEGACY_CONNECTED_RESULTS)}))")
_COLUMNS_AS_READ = {
    "result": f"(CASE WHEN {_LEGACY_CONNECTED} THEN '{CONNECTION_SUCCEEDED}' "
              f"ELSE events.result END)",
    "data": f"(CASE WHEN {_LEGACY_CONNECTED} AND json_valid(events.data) THEN "
            f"json_set(events.data, '$.connection', '{CONNECTION_ACTUAL}') "
            f"ELSE events.data END)",
}


def _as_read(column: str) -> str:
    return _COLUMNS_AS_READ.get(column, f"events.{column}")


# `data` is JSON written with json.dumps' defaults, so a quote, a backslash or any non-ASCII
# character in it is stored as an escape (`\"`, `\u00fc`). Where the text holds a backslash,
# the search reads the decoded keys and values instead (SQLite's json_tree, still one SQL
# statement), so what the report shows as user and details is what a term finds; the rest
# (most rows) is searched as stored, at no extra cost.
_DATA_SEARCH_TEXT = (
    "CASE WHEN instr(events.data, '\\') AND json_valid(events.data) THEN "
    "(SELECT group_concat(CASE WHEN typeof(key) = 'text' THEN key ELSE '' END || char(31) || "
    f"COALESCE(atom, ''), char(31)) FROM json_tree({_as_read('data')})) "
    f"ELSE COALESCE({_as_read('data')}, '') END")
_SEARCH_TEXT = " || char(31) || ".join(
    _DATA_SEARCH_TEXT if f == "data" else f"COALESCE({_as_read(f)}, '')" for f in SEARCH_FIELDS)


@dataclass(frozen=True)
class DetailFilter:
    range: ReportRange
    actions: frozenset[Action] = frozenset()   # empty: every action (the guide's default)
    search: str = ""
    # leave out the WHITELISTED events of WHITELISTED_ACTIONS (a check that stood aside for
    # a whitelisted sender: no block); the console's Detail Report has this, the CLI not
    without_whitelisted: bool = False

    def action_values(self) -> tuple[str, ...]:
        return tuple(sorted(a.value for a in self.actions))


class DetailRow(NamedTuple):
    """One event as the detail report reads it (a tuple: millions of them stream by)."""

    id: int
    time: float
    category: str
    action: str
    result: str | None
    queue_id: str | None
    connection_id: str | None
    client_ip: str | None
    sender: str | None
    recipients: str | None
    subject: str | None
    size: int | None
    rule: str | None
    info: str | None
    data: str | None

    @property
    def key(self) -> str:
        """The keyset position of this row, for "next page" links."""
        return f"{self.time!r}:{self.id}"


def _casefold_contains(raw: bytes | None, *needles: str) -> int:
    """The search function, given the row's text as bytes (`CAST … AS BLOB`): SQLite's
    json_tree reads a lone surrogate's escape, which an older release wrote into an event's
    data ("\\ud800", upgrade16 finding 2), as bytes that are no UTF-8, and Python would refuse
    them as a text argument, failing the whole search. Read as the report shows the data
    (shared.report_format `event_data`): the surrogate as U+FFFD."""
    if raw is None:
        return 0
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = without_surrogates(raw.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
    text = text.casefold()
    return int(any(needle in text for needle in needles))


def _search_clause(conn: sqlite3.Connection, term: str) -> tuple[str, tuple]:
    # Events keep a domain as the mail wrote it, münchen.de or xn--mnchen-3ya.de: a term
    # naming one finds both (shared/idn.py `spellings`).
    terms = spellings(term)
    if len(terms) == 1 and term.isascii():
        # LIKE folds ASCII letters, which is all an ASCII term can match.
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f" AND ({_SEARCH_TEXT}) LIKE ? ESCAPE '\\'", (f"%{escaped}%",)
    conn.create_function("mailmoat_contains", -1, _casefold_contains, deterministic=True)
    marks = ", ?" * len(terms)
    return (f" AND mailmoat_contains(CAST(({_SEARCH_TEXT}) AS BLOB){marks})",
            tuple(t.casefold() for t in terms))


def _action_counts(conn: sqlite3.Connection, rng: ReportRange) -> dict[str, int]:
    """Events per action over the range: roll-ups for whole hours, events at the edges."""
    counts: dict[str, int] = {}
    h0, h1 = _whole_hours(rng.start, rng.end)
    queries = []
    if h0 < h1:
        queries.append(("SELECT action, SUM(events) FROM event_hourly WHERE hour >= ? AND "
                        "hour < ? GROUP BY action", (h0, h1)))
    for a, b in _edges(rng.start, rng.end):
        queries.append(("SELECT action, COUNT(*) FROM events WHERE time >= ? AND time < ? "
                        "GROUP BY action", (a, b)))
    for sql, args in queries:
        for action, events in conn.execute(sql, args):
            counts[action] = counts.get(action, 0) + events
    return counts


def _selected(counts: Mapping[str, int], flt: DetailFilter) -> int:
    if not flt.actions:
        return sum(counts.values())
    return sum(counts.get(a, 0) for a in flt.action_values())


def _total(conn: sqlite3.Connection, counts: Mapping[str, int], flt: DetailFilter) -> int:
    """How many events the filter selects, from the roll-ups' `counts`: less the whitelisted
    ones it leaves out, counted through the index that holds them alone (events_not_counted),
    as the summary's figures count theirs."""
    total = _selected(counts, flt)
    if flt.without_whitelisted:
        for action in WHITELISTED_ACTIONS:
            if counts.get(action.value) and (not flt.actions or action in flt.actions):
                total -= _not_counted_count(conn, action, flt.range.start, flt.range.end)
    return total


def count_detail(conn: sqlite3.Connection, flt: DetailFilter) -> int | None:
    """How many events the filter selects, from the roll-ups (exact, no scan); None when a
    search term is set (that needs the scan the report itself does)."""
    if flt.search:
        return None
    return _total(conn, _action_counts(conn, flt.range), flt)


def _plan(counts: Mapping[str, int], flt: DetailFilter, page: int) -> str:
    """Which index the page query walks. With a few matching events among many, the
    (action, time) index finds them directly and sorts them; otherwise walking the time index
    in order and skipping the rest reaches a page sooner. Cost estimates: matching·log vs
    page·total/matching rows."""
    if not flt.actions:
        return "time"
    everything = sum(counts.values())
    matching = _selected(counts, flt)
    if matching == 0:
        return "action"
    return "action" if matching * matching < page * max(everything, 1) * 4 else "time"


def _detail_sql(conn: sqlite3.Connection, flt: DetailFilter, *, plan: str,
                after: tuple[float, int] | None, before: tuple[float, int] | None,
                limit: int) -> tuple[str, tuple]:
    """The page query. The keyset position narrows the *index range* itself (one lower and
    one upper bound on `time`, so SQLite seeks instead of scanning from the range's start);
    only rows at exactly the position's time need the id comparison."""
    lower, lower_op = flt.range.start, ">="
    upper, upper_op = flt.range.end, "<"
    if after is not None and after[0] >= lower:
        lower, lower_op = after[0], ">="
    if before is not None and before[0] < upper:
        upper, upper_op = before[0], "<="
    sql = (f"SELECT {', '.join(map(_as_read, DETAIL_FIELDS))} FROM events "
           f"WHERE time {lower_op} ? AND time {upper_op} ?")
    params: list = [lower, upper]
    if flt.actions:
        column = "action" if plan == "action" else "+action"   # `+` keeps the index unused
        sql += f" AND {column} IN ({','.join('?' * len(flt.actions))})"
        params += flt.action_values()
    if flt.without_whitelisted:
        sql += (f" AND NOT (action IN ({','.join('?' * len(WHITELISTED_ACTIONS))}) "
                f"AND result IS ?)")
        params += sorted(a.value for a in WHITELISTED_ACTIONS)
        params.append(WHITELISTED)
    if flt.search:
        clause, args = _search_clause(conn, flt.search)
        sql += clause
        params += args
    if after is not None:
        sql += " AND (+time > ? OR id > ?)"
        params += after
    if before is not None:
        sql += " AND (+time < ? OR id < ?)"
        params += before
    order = "DESC" if before is not None else "ASC"
    sql += f" ORDER BY time {order}, id {order} LIMIT ?"
    params.append(limit)
    return sql, tuple(params)


def _rows(conn: sqlite3.Connection, sql: str, params: tuple) -> list[DetailRow]:
    cursor = conn.execute(sql, params)
    cursor.row_factory = None          # plain tuples: DetailRow._make is the cheap path
    return list(map(DetailRow._make, cursor))


def iter_detail(conn: sqlite3.Connection, flt: DetailFilter, *,
                batch: int = BATCH_ROWS) -> Iterator[DetailRow]:
    """Every selected event in time order, streamed in keyset batches (flat memory)."""
    plan = _plan(_action_counts(conn, flt.range), flt, batch)
    after = None
    while True:
        sql, params = _detail_sql(conn, flt, plan=plan, after=after, before=None, limit=batch)
        rows = _rows(conn, sql, params)
        yield from rows
        if len(rows) < batch:
            return
        after = (rows[-1].time, rows[-1].id)


@dataclass
class DetailPage:
    rows: list[DetailRow]
    has_next: bool
    has_previous: bool
    total: int | None        # None when a search term makes counting a scan

    @property
    def next_key(self) -> str | None:
        return self.rows[-1].key if self.rows and self.has_next else None

    @property
    def previous_key(self) -> str | None:
        return self.rows[0].key if self.rows and self.has_previous else None


def parse_key(text: str | None) -> tuple[float, int] | None:
    """A row key from a page link (`time:id`); None for a missing or malformed one."""
    if not text or ":" not in text:
        return None
    time_text, _, id_text = text.rpartition(":")
    try:
        return float(time_text), int(id_text)
    except ValueError:
        return None


def detail_page(conn: sqlite3.Connection, flt: DetailFilter, *, size: int = 100,
                after: str | None = None, before: str | None = None,
                with_total: bool = True) -> DetailPage:
    """One page of the detail report, in time order: the first, the one after the row key
    `after`, or the one before `before`."""
    counts = _action_counts(conn, flt.range)
    plan = _plan(counts, flt, size)
    after_key, before_key = parse_key(after), parse_key(before)
    if before_key is not None:
        sql, params = _detail_sql(conn, flt, plan=plan, after=None, before=before_key,
                                  limit=size + 1)
        rows = _rows(conn, sql, params)
        has_previous = len(rows) > size
        rows = list(reversed(rows[:size]))
        has_next = True
    else:
        sql, params = _detail_sql(conn, flt, plan=plan, after=after_key, before=None,
                                  limit=size + 1)
        rows = _rows(conn, sql, params)
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = after_key is not None
    total = _total(conn, counts, flt) if with_total and not flt.search else None
    return DetailPage(rows, has_next, has_previous, total)


def action_filter(values: list[str] | tuple[str, ...]) -> frozenset[Action]:
    """Actions from their identifiers (SPEC §6); raises ValueError naming an unknown one."""
    out = set()
    for value in values:
        try:
            out.add(Action(value.strip().lower()))
        except ValueError:
            raise ValueError(f"unknown action {value!r}") from None
    return frozenset(out)


def top_items(summary: Summary, section: str, limit: int = 10) -> list[tuple[str, int]]:
    found = summary.section(section)
    return list(found.rows[:limit]) if found else []

