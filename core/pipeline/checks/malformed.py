"""MIME defects (SPEC §6 `malformed`): reported, never a reason to stop delivery by itself
(SPEC §3 scan.unprocessable: "MIME defects alone do not make a message unprocessable")."""

from __future__ import annotations

from core.pipeline.findings import Finding

SHOWN = 5


def check(view, settings) -> list[Finding]:
    if not view.defects:
        return []
    shown = "; ".join(view.defects[:SHOWN])
    more = f" (+{len(view.defects) - SHOWN} more)" if len(view.defects) > SHOWN else ""
    return [Finding(rule="mime.defects", action="log", event="malformed",
                    reason=f"MIME defects: {shown}{more}",
                    data={"defects": len(view.defects)})]
