"""What the Configuration tabs do beyond a plain save: port checks, the local routing list,
hold-queue actions (commands for the core), certificate changes and what the Diagnostics
tab says about the diagnostics directory.

Rules:
- Every save goes through `console.settings_service.save_settings`, so the schema validates
  it, nothing changes on error, and an object_modified event records it.
- A port is refused when another program is listening on it; a port that one of Mailmoat's
  own listeners holds now (the current smtp/http/https ports) is not "in use" (SPEC §3),
  unless the same save moves that listener too (shared.ports: one port at a time).
- The hold queue is read from the spool, never written: actions are commands the core runs.
- The Setup tab says that the temporary files directory waits for a restart only while the
  running core uses another one than the one stored, and when the one stored could not be
  used, as the core's status snapshot says (`_temp_dir_note`). The directories compared
  are the ones meant: empty means tmp/ in the data home, so setting it back to empty while
  the core scans there (it fell back to it) waits for nothing (settings16 §7).
- The Setup tab says which addresses of smtp.listen the running core is not listening on,
  and why, as the Status page does (shared.status `not_listening_notices`): the setting is
  on this tab, and the events were the only place that said so.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from console import certs
from console.context import console_context, request_db, settings
from console.settings_service import edit_list, record_change, save_settings, submit_command
from shared.commands import HOLD_ACTIONS
from shared.home import CORE_LOCK, lock_holder
from shared.idn import address_pattern, first_matching
from shared.retention import DirectoryUsage, diagnostics_usage
from shared.settings import FORWARD_SUBJECT, SettingError
from shared.settings_addresses import Email
from shared.settings_entries import RoutingEntry
from shared.settings_store import check_on_this_host
from shared.settings_types import RuleError, integer_from_text
from shared.shown_text import quoted
from shared.status import live_snapshot, not_listening_notices

__all__ = ["HOLD_ACTION_LIMIT", "save_page", "page_warnings", "DiagnosticsFolder",
           "diagnostics_folder", "add_route", "update_route", "route_at", "AfterDelete",
           "route_after_delete", "delete_route", "HeldMessage",
           "HoldListing", "HoldRequest", "list_hold", "last_hold_request", "core_running",
           "hold_selection", "confirmed_selection", "request_hold_action",
           "create_certificate_request",
           "install_ca_certificate", "install_self_signed_certificate", "RequestFieldsError"]

HOLD_LIST_LIMIT = 500  # messages shown; the actions still reach all of them
# The most messages one confirmation names (tester28c B1: it names them, so that a message
# held after the question was asked is not acted on unseen); 50,000 queue ids make a
# 700 KB form, inside the console's largest request (security.MAX_POST_OCTETS).
HOLD_ACTION_LIMIT = 50_000
HOLD_IDS_RECORDED = 100    # queue ids its object_modified event names; the rest counted
# The guide's warning on the Diagnostics tab (§3 "Configuring queue file save and SMTP
# conversation logging"), with "support" for the vendor's Technical Support.
DIAGNOSTICS_WARNING = ("Do not change this setting unless you are instructed by support to "
                       "do so. Changing the setting can result in undesirable system "
                       "behavior.")
_QUEUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- settings pages ------------------------------------------------------------------------

def save_page(page: str, changes: dict[str, Any], *, user: str, client_ip: str | None) -> dict:
    """Save one tab's settings; raises SettingError (nothing saved) on any broken rule. The
    host's refusals (a port in use, an address this host lacks) come with the schema's of
    the tab's other fields (settings_store.check_on_this_host)."""
    if page == "setup":
        context = console_context()
        check_on_this_host(settings(), changes,
                           ours={f"{scheme}.port": port
                                 for scheme, port in context.bound_ports.items()},
                           conn=request_db(), clock=context.clock)
    return save_settings(changes, user=user, client_ip=client_ip, page=page)


def page_warnings(page: str) -> list[str]:
    values = settings()
    warnings = []
    if page in ("alerts", "notifications", "accounts") and not values["admin.emails"]:
        if page != "notifications" or values["notify.admin"]:
            warnings.append("No administrator email address is set (Configuration › Accounts), "
                            "so alerts and administrator notifications cannot be delivered.")
    if page == "setup":
        snapshot = _running_core_snapshot()
        if snapshot is not None:
            warnings += not_listening_notices(snapshot)
            note = _temp_dir_note(snapshot, values["scan.temp_dir"] or "")
            if note:
                warnings.append(note)
    if page == "diagnostics":
        warnings.append(DIAGNOSTICS_WARNING)
    return warnings


def _running_core_snapshot() -> dict | None:
    """The status snapshot of the running core; None when there is no live one (none
    written, or one older than the Status page allows: no core runs, or it has not
    written for a while, shared.status STALE_AFTER_SECONDS)."""
    return live_snapshot(request_db(), console_context().clock.now())


def _temp_dir_note(snapshot: dict, stored: str) -> str | None:
    """What the Setup page says about `scan.temp_dir`: the core reads it at start only and
    reports, in its status snapshot, what it read, the directory it scans in and whether it
    fell back to tmp/ in the data home because the one set could not be used (core/app.py
    `_scratch_dir`). None when all is as stored."""
    temp_dir = snapshot.get("scan_temp_dir")
    if not isinstance(temp_dir, dict):
        return None
    in_use = temp_dir.get("in_use") or "tmp/ in the data home"
    if _directory(temp_dir.get("read_at_start", "")) == _directory(stored):
        if temp_dir.get("fell_back"):
            return (f"The temporary files directory {stored} could not be used when "
                    f"Mailmoat started (a scan_error event says why); scanning uses "
                    f"{in_use}.")
        return None
    if _directory(stored) == _directory(temp_dir.get("in_use") or ""):
        return None             # a restart would scan where the core scans now
    return (f"The temporary files directory takes effect when Mailmoat restarts; until "
            f"then scanning uses {in_use}.")


def _directory(temp_dir: str) -> str:
    """The directory a value of scan.temp_dir means (module rules): tmp/ in the data home
    when empty; written without a trailing slash or a "." step."""
    return os.path.normpath(temp_dir or str(console_context().home.tmp))


@dataclass(frozen=True)
class DiagnosticsFolder:
    """Where the diagnostic files are and what the folder holds now."""
    path: str
    usage: DirectoryUsage
    problem: str            # why it could not be read ("" when it could)
    retention_days: int     # logging.retention_days: they are deleted after it (0 = never)

    @property
    def size_text(self) -> str:
        return f"{self.usage.octets / 2**20:.1f} MB"   # SPEC §3: MB are MiB


def diagnostics_folder() -> DiagnosticsFolder:
    path = console_context().home.diagnostics
    try:
        usage, problem = diagnostics_usage(path), ""
    except OSError as exc:
        usage, problem = DirectoryUsage(0, 0), exc.strerror or str(exc)
    return DiagnosticsFolder(str(path), usage, problem, settings()["logging.retention_days"])


# --- local routing list (guide §3 "Configuring local routing") ----------------------------

class RouteEntryError(SettingError):
    """Errors of one routing entry; keys are the entry form's field names."""


def _entry(match: str, relay: str, port: str) -> dict:
    if not match.strip():
        raise RouteEntryError([("match", "must not be empty")])
    entry: dict[str, Any] = {"match": match.strip()}
    if relay.strip():
        entry["relay"] = relay.strip()
    port = port.strip()
    number = integer_from_text(port)            # ASCII digits only: int() also reads "٣"
    entry["port"] = (port or 25) if number is None else number
    try:
        return RoutingEntry().check(entry)
    except RuleError as exc:
        rule = exc.rule
        if rule.startswith("match") or "'match'" in rule:
            raise RouteEntryError([("match", rule.removeprefix("match ").strip())]) from None
        if rule.startswith("port"):
            raise RouteEntryError([("port", rule.removeprefix("port ").strip())]) from None
        raise RouteEntryError([("relay", rule)]) from None


def _edit_routes(edit, user: str, client_ip: str | None):
    """`edit` applied to the routing list as stored (console.settings_service.edit_list)."""
    try:
        return edit_list("routing.local", edit, user=user, client_ip=client_ip, page="routing")
    except RouteEntryError:
        raise
    except SettingError as exc:
        raise RouteEntryError([("match", rule) for _key, rule in exc.errors]) from None


CHANGED_ROUTE = "the routing list was changed meanwhile; reload the page and try again"


def _find(routes: list[dict], index: int, original: str) -> None:
    if not 0 <= index < len(routes) or routes[index]["match"] != original:
        raise RouteEntryError([("match", CHANGED_ROUTE)])


def _check_unique(routes: list[dict], entry: dict, skip: int | None = None) -> None:
    for i, other in enumerate(routes):
        if i != skip and other["match"] == entry["match"]:
            raise RouteEntryError([("match", f"{entry['match']} is already in the local "
                                             "routing list")])


def add_route(match: str, relay: str, port: str, *, user: str, client_ip: str | None) -> dict:
    entry = _entry(match, relay, port)

    def edit(routes):
        _check_unique(routes, entry)
        routes.append(entry)
    _edit_routes(edit, user, client_ip)
    return entry


def update_route(index: int, original: str, match: str, relay: str, port: str, *, user: str,
                 client_ip: str | None) -> dict:
    entry = _entry(match, relay, port)

    def edit(routes):
        _find(routes, index, original)
        _check_unique(routes, entry, skip=index)
        routes[index] = entry
    _edit_routes(edit, user, client_ip)
    return entry


def route_at(index: int, original: str) -> dict:
    """Entry `index` of the local routing list, when it is still `original` (its match), for
    the confirmation of its Delete; raises RouteEntryError (key "match") when the list was
    changed meanwhile."""
    routes = settings()["routing.local"]
    _find(routes, index, original)
    return routes[index]


@dataclass(frozen=True)
class AfterDelete:
    """Where mail to a local routing entry's match goes once the entry is deleted: `entry`,
    another entry that matches it (`above` it in the list, so it takes that mail already),
    or the default routing (None). `wildcard`: the entry's match has wildcards, so its mail
    may spread over several other entries, or none."""
    entry: dict | None
    above: bool = False
    wildcard: bool = False


def route_after_delete(index: int) -> AfterDelete:
    """For the Delete confirmation: "Mail to it then follows the default routing" was said
    of an entry repeating one above it (good.test. after good.test, which an older release
    let in), whose mail that entry takes now and after (upgrade17 C2). Entries are tried in
    order, as core.delivery.routing does (shared.idn.first_matching). An entry naming an IP
    address is looked up as the address literal it routes, as the core reads it
    (shared.idn.address_pattern): an older release stored the address bare (192.0.2.10,
    2001:DB8::10, 192.0.2.10.), which looked up as a domain matched no other entry, so
    "the default routing" was said of mail an entry below it takes (settingsfix18 item 2)."""
    routes = settings()["routing.local"]
    match = str(routes[index]["match"])
    if "*" in match or "?" in match:
        return AfterDelete(None, wildcard=True)
    address = address_pattern(match)
    destination = (match if address is None
                   else f"[IPv6:{address}]" if ":" in address else f"[{address}]")
    others = [*routes[:index], *routes[index + 1:]]
    found = first_matching((str(other["match"]) for other in others), destination)
    if found is None:
        return AfterDelete(None)
    return AfterDelete(others[found], above=found < index)


def delete_route(index: int, original: str, shown: dict | None = None, *, user: str,
                 client_ip: str | None) -> dict:
    """Remove entry `index` when it is still `original` (its match) and, given `shown` (the
    entry as a confirmation showed it), still exactly that: a confirmation shown before
    another administrator edited or moved the entry removes nothing. Returns the entry;
    raises RouteEntryError (key "match") when the list was changed meanwhile."""
    def edit(routes):
        _find(routes, index, original)
        if shown is not None and routes[index] != shown:
            raise RouteEntryError([("match", CHANGED_ROUTE)])
        return routes.pop(index)
    return _edit_routes(edit, user, client_ip)


# --- hold queue (guide §3 "Processing messages in the hold queue") ------------------------

@dataclass(frozen=True)
class HeldMessage:
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    received_at: float | None
    size: int | None
    hold_reason: str | None


@dataclass(frozen=True)
class HoldListing:
    total: int
    messages: list[HeldMessage]
    unreadable: int
    queue_ids: tuple[str, ...] = ()     # every message in hold, oldest queue ids first


def list_hold(limit: int = HOLD_LIST_LIMIT) -> HoldListing:
    """The hold queue as the spool has it (read-only; oldest queue ids first)."""
    folder = console_context().home.queue("hold")
    try:
        names = sorted(n for n in (p.name for p in folder.iterdir()) if _QUEUE_ID.match(n))
    except FileNotFoundError:
        names = []
    messages, unreadable = [], 0
    for name in names[:limit]:
        try:
            data = json.loads((folder / name / "envelope.json").read_bytes())
            recipients = tuple(r["address"] if isinstance(r, dict) else str(r)
                               for r in data.get("recipients", []))
            messages.append(HeldMessage(name, data.get("sender") or "<>", recipients,
                                        data.get("received_at"), data.get("size"),
                                        data.get("hold_reason")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            unreadable += 1
    return HoldListing(len(names), messages, unreadable, tuple(names))


@dataclass(frozen=True)
class HoldRequest:
    """The last hold-queue request, for the page that made it (tester28c C1: the page said
    "the hold queue shows the result" whatever happened, a stopped core or a failure)."""
    kind: str                   # "drop", "reprocess" or "forward"
    named: int                  # messages the request named
    requested_by: str
    created_at: float
    state: str                  # pending, running, done, failed
    result: str | None


def last_hold_request() -> HoldRequest | None:
    """The newest hold-queue command of any user, or None."""
    kinds = {kind: action for action, kind in HOLD_ACTIONS.items()}
    row = request_db().execute(
        "SELECT kind, args, requested_by, created_at, state, result FROM commands "
        f"WHERE kind IN ({','.join('?' * len(kinds))}) ORDER BY id DESC LIMIT 1",
        tuple(kinds)).fetchone()
    if row is None:
        return None
    try:
        named = len(json.loads(row["args"]).get("ids") or ())
    except (ValueError, AttributeError, TypeError):
        named = 0
    return HoldRequest(kinds[row["kind"]], named, row["requested_by"] or "",
                       row["created_at"], row["state"], row["result"])


def core_running() -> bool:
    """Whether a core holds its lock (shared.home CORE_LOCK), as the Status page asks."""
    try:
        return lock_holder(console_context().home, CORE_LOCK.name) is not None
    except OSError:
        return True             # unknown: say nothing a running core would make untrue


def hold_selection(ids_text: str) -> list[str]:
    """The queue ids a hold-queue action acts on, from the comma-separated `ids_text`: what
    the confirmation page counts and what the action then asks the core for, read by this
    one function so that both say the same. `[]` (from an empty `ids_text` only) is no
    selection: the confirmation then names every message in the hold queue, and an action
    naming none is refused (request_hold_action); blank entries are skipped and repeats
    counted once.

    Raises SettingError (key "ids") for a text that holds no queue id (",", " "): a
    selection of nothing is refused, never taken for "all" (console18 B1), and for an entry
    that is no queue id."""
    if ids_text == "":
        return []
    ids = list(dict.fromkeys(i.strip() for i in ids_text.split(",") if i.strip()))
    if not ids:
        raise SettingError([("ids", "the selection holds no queue id: select the messages "
                                    "in the list, or none to act on every message in the "
                                    "hold queue")])
    for queue_id in ids:
        if not _QUEUE_ID.match(queue_id):
            raise SettingError([("ids", f"{quoted(queue_id, 64)} is not a queue id")])
    return ids


def confirmed_selection(ids_text: str) -> list[str]:
    """The queue ids a confirmation names (`hold_selection`); SettingError (key "ids") when
    it names none. The confirmation names the messages it counted, "all" too (tester28c B1):
    one naming none is from a page older than that, and "all" would act on whatever is in
    hold when the core gets to it, messages no one was asked about among them."""
    ids = hold_selection(ids_text)
    if not ids:
        raise SettingError([("ids", "the confirmation named no message: open the hold "
                                    "queue and choose again")])
    return ids


def request_hold_action(action: str, ids_text: str, address: str, subject: str, *,
                        user: str, client_ip: str | None) -> int:
    """Queue a hold-queue command for the core; returns the command id.

    Raises SettingError (keys "address", "subject", "ids", "action") for bad input.
    """
    if action not in HOLD_ACTIONS:
        raise SettingError([("action", "must be reprocess, drop or forward")])
    args: dict[str, Any] = {"ids": confirmed_selection(ids_text)}
    if action == "forward":
        errors = []
        try:
            args["address"] = Email().check(address.strip())
        except RuleError as exc:
            errors.append(("address", exc.rule))
        try:
            # blank keeps the message's own Subject (None), as the CLI without --subject
            args["subject"] = FORWARD_SUBJECT.check(subject.strip()) or None
        except RuleError as exc:
            errors.append(("subject", exc.rule))
        if errors:
            raise SettingError(errors)
    ids = args["ids"]
    # the event names as many as a report shows well: a confirmation of "all" names up to
    # HOLD_ACTION_LIMIT, 700 KB of queue ids in one event row (review28d R3)
    recorded = args if len(ids) <= HOLD_IDS_RECORDED else {
        **args, "ids": ids[:HOLD_IDS_RECORDED], "more_ids": len(ids) - HOLD_IDS_RECORDED}
    return submit_command(HOLD_ACTIONS[action], args, user=user, client_ip=client_ip,
                          page="hold", recorded_args=recorded)


# --- certificates --------------------------------------------------------------------------

class RequestFieldsError(SettingError):
    """A certificate operation refused; the key names the form field."""


def create_certificate_request(fields: certs.RequestFields, *, user: str,
                               client_ip: str | None) -> str:
    try:
        # the A-label form: emailAddress is an IA5String (RFC 5280 §4.1.2.6), ASCII only
        email = Email().check(fields.email.strip())
    except RuleError as exc:
        raise RequestFieldsError([("email", exc.rule)]) from None
    try:
        pem = certs.create_request(console_context().home, replace(fields, email=email))
    except certs.CertificateError as exc:
        raise RequestFieldsError([("common_name", str(exc))]) from None
    record_change(user, client_ip, "certificates",
                  {"tls.request": [None, f"CN={fields.common_name}"]})
    return pem


def install_ca_certificate(pem_text: str, *, user: str, client_ip: str | None) -> bool:
    """Install the CA's certificate; False when it was already installed (nothing changed,
    no event). Raises RequestFieldsError."""
    try:
        changes = certs.install_certificate(console_context().home, pem_text)
    except certs.CertificateError as exc:
        raise RequestFieldsError([("certificate", str(exc))]) from None
    if changes:
        record_change(user, client_ip, "certificates", changes)
    return bool(changes)


def install_self_signed_certificate(common_name: str, *, user: str,
                                    client_ip: str | None) -> None:
    try:
        changes = certs.install_self_signed(console_context().home, common_name)
    except certs.CertificateError as exc:
        raise RequestFieldsError([("common_name", str(exc))]) from None
    record_change(user, client_ip, "certificates", changes)
