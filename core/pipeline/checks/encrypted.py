"""Encrypted containers (SPEC §3 encrypted.*; guide §6 "Blocking if an encrypted container
is detected"): password-protected zip, 7z, rar, PDF and Office documents, found by the
decomposer (`Part.encrypted`).

encrypted.action: delete -> the container is removed and the message delivered (default);
drop; log; forward -> to encrypted.forward_to with encrypted.forward_subject.
One finding per encrypted container (an encrypted container inside another is reported on
its own; deleting removes the outermost attachment that carries it).
"""

from __future__ import annotations

from core.pipeline.findings import Finding

ENCRYPT_TEXT = "Message contained an encrypted container"


def check(view, settings) -> list[Finding]:
    action = settings["encrypted.action"]
    out = []
    for part in view.parts:
        if not part.encrypted:
            continue
        name = part.filename or part.location
        reason = f"encrypted container {name} ({part.true_type or part.content_type})"
        common = dict(rule="encrypted.action", event="encrypted_container", reason=reason,
                      part=part.id, notify="encrypted", text=ENCRYPT_TEXT,
                      data={"file": name, "type": part.true_type, "action": action})
        if action == "delete":
            out.append(Finding(action="remove_part", **{**common, "part": _carrier(part)},
                               header=None))
        elif action == "forward":
            out.append(Finding(action="forward", forward_to=settings["encrypted.forward_to"],
                               forward_subject=settings["encrypted.forward_subject"] or None,
                               **common))
        else:
            out.append(Finding(action=action, **common))
    return out


def _carrier(part) -> int:
    return part.carrier if part.carrier is not None else part.id
