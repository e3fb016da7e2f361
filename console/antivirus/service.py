"""Antivirus Policy pages beyond a plain save: the virus quarantine (read from the spool,
never written — ARCHITECTURE invariant 4) and its safe download, and the definitions in
force.

A download is a 7z archive encrypted with AES-256 and encrypted headers, password
SAFE_ARCHIVE_PASSWORD ("infected", the convention of malware archives): neither the
browser, a desktop virus scanner nor a mail client opens the infected message by accident.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from console.context import console_context

__all__ = ["QuarantinedMessage", "list_quarantine", "safe_archive", "SAFE_ARCHIVE_PASSWORD",
           "LIST_LIMIT"]

SAFE_ARCHIVE_PASSWORD = "infected"
LIST_LIMIT = 500
_QUEUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class QuarantinedMessage:
    queue_id: str
    quarantined_at: float | None
    sender: str
    recipients: tuple[str, ...]
    size: int | None
    viruses: tuple[str, ...]
    files: tuple[str, ...]
    actions: tuple[str, ...]
    central: str


def _folder():
    return console_context().home.queue("quarantine/virus")


def list_quarantine(limit: int = LIST_LIMIT) -> tuple[int, list[QuarantinedMessage]]:
    """(total, newest first up to limit)."""
    try:
        names = sorted((p.name for p in _folder().iterdir() if _QUEUE_ID.match(p.name)),
                       reverse=True)
    except FileNotFoundError:
        names = []
    out = []
    for name in names[:limit]:
        try:
            data = json.loads((_folder() / name / "envelope.json").read_bytes())
        except (OSError, ValueError):
            continue
        meta = data.get("meta") or {}
        central = meta.get("central")
        out.append(QuarantinedMessage(
            name, meta.get("quarantined_at") or data.get("received_at"),
            data.get("sender") or "<>",
            tuple(r["address"] if isinstance(r, dict) else str(r)
                  for r in data.get("recipients", [])),
            data.get("size"), tuple(meta.get("virus") or ()), tuple(meta.get("files") or ()),
            tuple(meta.get("actions") or ()),
            (central.get("state", "") if isinstance(central, dict) else "")))
    return len(names), out


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


