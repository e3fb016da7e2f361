"""Antivirus Policy pages beyond a plain save: the virus quarantine (read from the spool,
never written — ARCHITECTURE invariant 4), its safe download and its Delete, and the
definitions in force.

Delete is a command the core carries out (core/scan/service.py `delete_command`), as the
hold queue's actions are; until it has, the page no longer lists the copies it names
(`pending_command_items`). There is no Release: a message found infected is not delivered from
here (docs/antivirus.md).

Send to central quarantine again is a command too (core/scan/central_forwarder.py
`resend_command`, its rule 4): for copies whose sending to the central quarantine ended
("failed"), refused here at once while av.central_quarantine is off or when a selected copy
is not one of them, so the administrator reads why on the page rather than in the commands
table. Until the core has carried it out the page shows those copies as pending.

The list, for a quarantine of thousands of copies (a worm during a central outage):
- Newest first, by queue id (ids sort by the time they were made, near enough for a list:
  shared/spool.py `new_queue_id`), PAGE_SIZE to a page, every page reachable; a filter on
  the central state (CENTRAL_FILTERS). Before, the newest 500 were listed and no more: the
  oldest failed copies could be neither sent again nor deleted (guide45 finding 2).
- A page reads the envelopes of its own copies only. The filter needs every copy's central
  state: that is kept per console process by the envelope file's (inode, mtime, size)
  (`_CentralStates`), so a filtered page stats each copy and reads only the envelopes the
  core wrote since (it writes one at each change of a copy's state), not all of them.
- Delete and Send again act on the selected copies, or on every copy the filter selects
  ("all N failed copies", confirmed on a page of its own). Delete of selected copies is
  confirmed too, on a page listing them (`selected_copies`): the copies are named by queue
  id, which no other copy ever has, so a confirmation shown before one of them was deleted
  elsewhere can ask for no other copy than those it listed (accessibility finding C7). Either way the console names the
  copies, IDS_PER_COMMAND to a command: a command (and the `object_modified` event naming
  it) stays bounded, the core's handlers stay as they are, and what the core acts on is
  exactly what the administrator confirmed, not whatever a filter selects by the time the
  core gets to it. The confirmation posts back how many copies it counted and a digest of
  their ids (`BulkScope.confirmed`); when the filter no longer selects exactly those (one
  kept, deleted or changed state since), nothing is asked and the confirmation is shown
  again as things are now (`ScopeChanged`). The ids cannot bound the set instead: they sort
  by time only within one process and while its clock does not step back, so a copy kept
  after the confirmation may sort before those it counted (review14 B3).

A download is a 7z archive encrypted with AES-256 and encrypted headers, password
SAFE_ARCHIVE_PASSWORD ("infected", the convention of malware archives): neither the
browser, a desktop virus scanner nor a mail client opens the infected message by accident.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import threading
from dataclasses import dataclass

from console.context import console_context, settings
from console.settings_service import pending_command_items, submit_command
from shared.commands import Command
from shared.settings import SettingError
from shared.shown_text import quoted
from shared.spool import SUBJECT_META

__all__ = ["QuarantinedMessage", "QuarantinePage", "BulkScope", "ScopeChanged",
           "list_quarantine", "bulk_scope", "selected_copies", "safe_archive", "request_delete",
           "request_central_resend", "request_delete_all", "request_central_resend_all",
           "require_central_quarantine", "SAFE_ARCHIVE_PASSWORD",
           "PAGE_SIZE", "IDS_PER_COMMAND", "CENTRAL_FILTERS"]

SAFE_ARCHIVE_PASSWORD = "infected"
PAGE_SIZE = 100             # copies on a page of the list
IDS_PER_COMMAND = 500       # copies one Delete or Send again command names, at most
# The filter on the central state (the Central column): its value -> (its label, the
# copies it selects as a sentence says them); "" every copy.
CENTRAL_FILTERS = {
    "": ("every message", ""),
    "failed": ("failed", "whose sending to the central quarantine failed"),
    "pending": ("pending", "waiting to be sent to the central quarantine"),
    "sent": ("sent", "sent to the central quarantine"),
}
_QUEUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENVELOPE = "envelope.json"


# The pipeline's action names as the page says them (the guide's words for virus actions).
ACTION_WORDS = {"remove_part": "attachment deleted", "replace_part": "repaired",
                "drop": "message dropped", "log": "logged only", "hold": "held"}


@dataclass(frozen=True)
class QuarantinedMessage:
    queue_id: str
    quarantined_at: float | None
    sender: str
    recipients: tuple[str, ...]
    subject: str
    size: int | None
    viruses: tuple[str, ...]
    files: tuple[str, ...]
    actions: tuple[str, ...]
    central: str        # sending: pending | sent | failed: <the central host's reply>; a copy
                        # a gateway sent here: received from …
    is_central_failed: bool     # its sending ended: it may be sent again


@dataclass(frozen=True)
class QuarantinePage:
    """One page of the list: `total` copies in the quarantine, `matching` of them selected
    by the filter `central` (a CENTRAL_FILTERS key), page `page` of `pages`."""
    total: int
    matching: int
    central: str
    page: int
    pages: int
    messages: list[QuarantinedMessage]


@dataclass(frozen=True)
class BulkScope:
    """Every copy a filter selects, as a confirmation names it: how many, when the oldest
    and the newest were quarantined; `confirmed`: what the confirmation posts back, which
    stands for exactly these copies (`_confirmed`)."""
    count: int
    confirmed: str
    oldest_at: float | None
    newest_at: float | None


class ScopeChanged(Exception):
    """The filter no longer selects exactly the copies the confirmation counted: nothing was
    asked. `scope`: what it selects now, to be confirmed again."""

    def __init__(self, scope: BulkScope):
        super().__init__(scope)
        self.scope = scope


def _folder():
    return console_context().home.queue("quarantine/virus")


def list_quarantine(central: str = "", page: int = 1) -> QuarantinePage:
    """The copies the filter `central` selects (a CENTRAL_FILTERS key; unknown: every
    copy), page `page` (clamped to the pages there are), newest first, without the copies
    being deleted."""
    central = central if central in CENTRAL_FILTERS else ""
    names, resending = _names(), _resending()
    chosen = names if not central else _matching(names, central, resending)
    pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = (_message(name, resending) for name in
            chosen[(page - 1) * PAGE_SIZE:page * PAGE_SIZE])
    return QuarantinePage(len(names), len(chosen), central, page, pages,
                          [row for row in rows if row is not None])


def bulk_scope(central: str) -> BulkScope:
    """The copies the filter `central` (a CENTRAL_FILTERS key; unknown: every copy) selects
    now, for the confirmation of an action on all of them."""
    return _scope(_selected(central))


def _selected(central: str) -> list[str]:
    """The copies the filter `central` selects, newest first."""
    central = central if central in CENTRAL_FILTERS else ""
    return _matching(_names(), central, _resending()) if central else _names()


def _scope(chosen: list[str]) -> BulkScope:
    if not chosen:
        return BulkScope(0, _confirmed(chosen), None, None)
    newest, oldest = (_message(name, set()) for name in (chosen[0], chosen[-1]))
    return BulkScope(len(chosen), _confirmed(chosen), oldest and oldest.quarantined_at,
                     newest and newest.quarantined_at)


def _confirmed(chosen: list[str]) -> str:
    """How many copies, and a digest of their sorted ids: bounded in size however many
    there are, and equal only for the same copies."""
    digest = hashlib.sha256("\n".join(sorted(chosen)).encode()).hexdigest()
    return f"{len(chosen)}:{digest}"


def _names() -> list[str]:
    """The copies, newest first, without those a pending Delete names."""
    leaving = pending_command_items(Command.VIRUS_QUARANTINE_DELETE, "ids")
    try:
        return sorted((p.name for p in _folder().iterdir()
                       if _QUEUE_ID.match(p.name) and p.name not in leaving), reverse=True)
    except FileNotFoundError:
        return []


def _resending() -> set[str]:
    return pending_command_items(Command.VIRUS_QUARANTINE_CENTRAL_RESEND, "ids")


def _matching(names: list[str], central: str, resending: set[str]) -> list[str]:
    """Those of `names` whose central state is `central`; a failed copy a pending Send
    again names is pending (as the page shows it)."""
    states = _STATES.of(_folder(), names)
    return [name for name in names
            if (state := states.get(name)) is not None and
            ("pending" if state == "failed" and name in resending else state) == central]


class _CentralStates:
    """Each copy's central state ("pending", "sent", "failed", "" for a copy not for the
    central quarantine) as last read, by its envelope file's (inode, mtime_ns, size): the
    core replaces the file at each change (shared/spool.py `write_envelope`), so a copy
    whose file is as it was needs no read. One per console process; entries of copies gone
    from the folder are dropped at each look.

    The lock is held only to take and to replace a folder's entries, never while a look
    stats and reads (thousands of files when the cache is cold), so concurrent views do not
    wait on one another's disk reads: a folder's dict is never changed once stored, and of
    two looks at once the last to finish is kept, which costs at most reads, never a wrong
    state (each entry is checked against its file at every look)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_folder: dict[str, dict[str, tuple[tuple[int, int, int], str]]] = {}

    def of(self, folder, names: list[str]) -> dict[str, str]:
        """{name: its state} for those of `names` whose envelope can be read."""
        with self._lock:
            known = self._by_folder.get(str(folder), {})
        fresh: dict[str, tuple[tuple[int, int, int], str]] = {}
        for name in names:
            path = os.path.join(folder, name, _ENVELOPE)
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            entry = known.get(name)
            if entry is None or entry[0] != key:
                data = _read(path)
                if data is None:
                    continue
                entry = (key, _state(data))
            fresh[name] = entry
        with self._lock:
            self._by_folder[str(folder)] = fresh
        return {name: state for name, (_key, state) in fresh.items()}


_STATES = _CentralStates()


def _state(data: dict) -> str:
    central = (data.get("meta") or {}).get("central")
    return str(central.get("state") or "") if isinstance(central, dict) else ""


def _message(name: str, resending: set[str]) -> QuarantinedMessage | None:
    """The row of one copy, None when it is gone or unreadable."""
    data = _envelope(name)
    if data is None:
        return None
    meta = data.get("meta") or {}
    central, received = meta.get("central"), meta.get("received")
    is_resending = _is_failed(central) and name in resending
    return QuarantinedMessage(
        name, meta.get("quarantined_at") or data.get("received_at"),
        data.get("sender") or "<>",
        tuple(r["address"] if isinstance(r, dict) else str(r)
              for r in data.get("recipients", [])),
        str(meta.get(SUBJECT_META) or ""), data.get("size"),
        tuple(meta.get("virus") or ()), tuple(meta.get("files") or ()),
        tuple(ACTION_WORDS.get(a, a) for a in meta.get("actions") or ()),
        ("pending" if is_resending else
         _central_state(central) if isinstance(central, dict) else
         f"received from {received.get('gateway') or '?'}"
         if isinstance(received, dict) else ""),
        _is_failed(central) and not is_resending)


def _envelope(name: str) -> dict | None:
    """A copy's envelope as JSON, None when it is gone or unreadable."""
    return _read(_folder() / name / _ENVELOPE)


def _read(path) -> dict | None:
    try:
        with open(path, "rb") as file:
            data = json.loads(file.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_failed(central) -> bool:
    return isinstance(central, dict) and central.get("state") == "failed"


def _central_state(central: dict) -> str:
    """A copy the central host refused for good, or whose sending expired, says why
    (core/scan/central_forwarder.py rule 1)."""
    state = str(central.get("state", ""))
    if state == "failed" and central.get("last_error"):
        return f"failed: {central['last_error']}"
    return state


def _chosen(ids: list[str], what: str) -> list[str]:
    """The selected queue ids, each once. SettingError (key "ids") when none is selected
    or one is not a queue id."""
    chosen = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not chosen:
        raise SettingError([("ids", f"select the messages to {what}")])
    for queue_id in chosen:
        if not _QUEUE_ID.match(queue_id):
            raise SettingError([("ids", f"{quoted(queue_id, 64)} is not a queue id")])
    return chosen


def _submit(kind: Command, ids: list[str], *, user: str, client_ip: str | None) -> None:
    """One command per IDS_PER_COMMAND copies, the oldest first: retention deletes them
    first. Each command's request is its own `object_modified` event naming its copies."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), IDS_PER_COMMAND):
        submit_command(kind, {"ids": ordered[start:start + IDS_PER_COMMAND]}, user=user,
                       client_ip=client_ip, page="virus_quarantine")


def require_central_quarantine() -> None:
    """SettingError (key "av.central_quarantine") while the central quarantine is off."""
    if not settings()["av.central_quarantine"]:
        raise SettingError([("av.central_quarantine",
                             "the central quarantine is off: set its host on the Antivirus "
                             "Settings tab first")])


def _as_confirmed(chosen: list[str], confirmed: str) -> list[str]:
    """`chosen` (what a filter selects now) when it is what the confirmation counted
    (`confirmed`: `BulkScope.confirmed`). SettingError (key "ids") when none is left;
    ScopeChanged when they differ."""
    if not chosen:
        raise SettingError([("ids", "no copy matches any more")])
    if _confirmed(chosen) != confirmed:
        raise ScopeChanged(_scope(chosen))
    return chosen


def selected_copies(ids: list[str]) -> list[QuarantinedMessage]:
    """The selected copies as the list shows them, for the confirmation of their Delete,
    less those gone since (deleted, or named by a Delete not carried out yet).

    Raises SettingError (key "ids") when none is selected or one is not a queue id.
    """
    leaving = pending_command_items(Command.VIRUS_QUARANTINE_DELETE, "ids")
    resending = _resending()
    rows = (_message(queue_id, resending) for queue_id in _chosen(ids, "delete")
            if queue_id not in leaving)
    return [row for row in rows if row is not None]


def request_delete(ids: list[str], *, user: str, client_ip: str | None) -> int:
    """Ask the core to delete these copies; returns how many were named. The requests'
    `object_modified` events name them (console.settings_service.submit_command).

    Raises SettingError (key "ids") when none is selected or one is not a queue id.
    """
    chosen = _chosen(ids, "delete")
    _submit(Command.VIRUS_QUARANTINE_DELETE, chosen, user=user, client_ip=client_ip)
    return len(chosen)


def request_delete_all(central: str, confirmed: str, *, user: str,
                       client_ip: str | None) -> int:
    """Ask the core to delete every copy the filter `central` selects, when those are the
    copies the confirmation counted (`confirmed`: `bulk_scope(central).confirmed`); returns
    how many were named.

    Raises SettingError (key "ids") when none is left to delete, ScopeChanged (nothing
    asked) when the filter selects other copies now.
    """
    chosen = _as_confirmed(_selected(central), confirmed)
    _submit(Command.VIRUS_QUARANTINE_DELETE, chosen, user=user, client_ip=client_ip)
    return len(chosen)


def request_central_resend(ids: list[str], *, user: str, client_ip: str | None) -> int:
    """Ask the core to send these copies to the central quarantine again; returns how many
    were named. The requests' `object_modified` events name them.

    Raises SettingError: "av.central_quarantine" while it is off; "ids" when none is
    selected, one is not a queue id, or one is not a copy whose sending failed.
    """
    require_central_quarantine()
    chosen = _chosen(ids, "send to the central quarantine again")
    not_failed = [queue_id for queue_id in chosen
                  if not _is_failed(((_envelope(queue_id) or {}).get("meta") or {})
                                    .get("central"))]
    if not_failed:
        raise SettingError([("ids", "only copies whose sending to the central quarantine "
                                    "failed can be sent again, not " + ", ".join(not_failed))])
    _submit(Command.VIRUS_QUARANTINE_CENTRAL_RESEND, chosen, user=user, client_ip=client_ip)
    return len(chosen)


def request_central_resend_all(confirmed: str, *, user: str, client_ip: str | None) -> int:
    """Ask the core to send every failed copy to the central quarantine again, when those
    are the copies the confirmation counted (`confirmed`: `bulk_scope("failed").confirmed`);
    returns how many were named.

    Raises SettingError as `request_central_resend`, "ids" when none is left; ScopeChanged
    (nothing asked) when other copies are failed now.
    """
    require_central_quarantine()
    chosen = _as_confirmed(_selected("failed"), confirmed)
    _submit(Command.VIRUS_QUARANTINE_CENTRAL_RESEND, chosen, user=user, client_ip=client_ip)
    return len(chosen)


def safe_archive(queue_id: str) -> bytes | None:
    """The quarantined message as an encrypted 7z, or None when there is no such entry."""
    if not _QUEUE_ID.match(queue_id):
        return None
    path = _folder() / queue_id / "message"
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    import py7zr
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=SAFE_ARCHIVE_PASSWORD,
                            header_encryption=True) as archive:
        archive.writestr(data, f"{queue_id}.eml")
    return out.getvalue()


