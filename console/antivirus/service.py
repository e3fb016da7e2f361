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

A download is a 7z archive encrypted with AES-256 and encrypted headers, password
SAFE_ARCHIVE_PASSWORD ("infected", the convention of malware archives): neither the
browser, a desktop virus scanner nor a mail client opens the infected message by accident.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from console.context import console_context, settings
from console.settings_service import pending_command_items, submit_command
from shared.commands import Command
from shared.settings import SettingError
from shared.spool import SUBJECT_META

__all__ = ["QuarantinedMessage", "list_quarantine", "safe_archive", "request_delete",
           "request_central_resend", "SAFE_ARCHIVE_PASSWORD", "LIST_LIMIT"]

SAFE_ARCHIVE_PASSWORD = "infected"
LIST_LIMIT = 500
_QUEUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


def _folder():
    return console_context().home.queue("quarantine/virus")


def list_quarantine(limit: int = LIST_LIMIT) -> tuple[int, list[QuarantinedMessage]]:
    """(total, newest first up to limit), without the copies being deleted."""
    leaving = pending_command_items(Command.VIRUS_QUARANTINE_DELETE, "ids")
    resending = pending_command_items(Command.VIRUS_QUARANTINE_CENTRAL_RESEND, "ids")
    try:
        names = sorted((p.name for p in _folder().iterdir()
                        if _QUEUE_ID.match(p.name) and p.name not in leaving), reverse=True)
    except FileNotFoundError:
        names = []
    out = []
    for name in names[:limit]:
        data = _envelope(name)
        if data is None:
            continue
        meta = data.get("meta") or {}
        central, received = meta.get("central"), meta.get("received")
        is_resending = _is_failed(central) and name in resending
        out.append(QuarantinedMessage(
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
            _is_failed(central) and not is_resending))
    return len(names), out


def _envelope(name: str) -> dict | None:
    """A copy's envelope as JSON, None when it is gone or unreadable."""
    try:
        return json.loads((_folder() / name / "envelope.json").read_bytes())
    except (OSError, ValueError):
        return None


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
            raise SettingError([("ids", f"{queue_id!r} is not a queue id")])
    return chosen


def request_delete(ids: list[str], *, user: str, client_ip: str | None) -> int:
    """Ask the core to delete these copies; returns how many were named. The request's
    `object_modified` event names them (console.settings_service.submit_command).

    Raises SettingError (key "ids") when none is selected or one is not a queue id.
    """
    chosen = _chosen(ids, "delete")
    submit_command(Command.VIRUS_QUARANTINE_DELETE, {"ids": chosen}, user=user, client_ip=client_ip,
                   page="virus_quarantine")
    return len(chosen)


def request_central_resend(ids: list[str], *, user: str, client_ip: str | None) -> int:
    """Ask the core to send these copies to the central quarantine again; returns how many
    were named. The request's `object_modified` event names them.

    Raises SettingError: "av.central_quarantine" while it is off; "ids" when none is
    selected, one is not a queue id, or one is not a copy whose sending failed.
    """
    if not settings()["av.central_quarantine"]:
        raise SettingError([("av.central_quarantine",
                             "the central quarantine is off: set its host on the Antivirus "
                             "Settings tab first")])
    chosen = _chosen(ids, "send to the central quarantine again")
    not_failed = [queue_id for queue_id in chosen
                  if not _is_failed(((_envelope(queue_id) or {}).get("meta") or {})
                                    .get("central"))]
    if not_failed:
        raise SettingError([("ids", "only copies whose sending to the central quarantine "
                                    "failed can be sent again, not " + ", ".join(not_failed))])
    submit_command(Command.VIRUS_QUARANTINE_CENTRAL_RESEND, {"ids": chosen}, user=user,
                   client_ip=client_ip, page="virus_quarantine")
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


